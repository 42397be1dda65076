"""Extension modules: every Cython source in _kernels/ becomes mixframe._ext.<name>.

Set MIXFRAME_DEBUG=1 to build with bounds checks and wraparound back on, and MIXFRAME_KERNELS=a,b to build only
those kernels (while developing one of them).
"""
import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("MIXFRAME_DEBUG") == "1"
directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
}
extensions = [
    Extension(
        f"mixframe._ext.{src.stem}",
        [str(src)],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    )
    for src in sorted(Path("_kernels").glob("*.pyx"))
    if not os.environ.get("MIXFRAME_KERNELS") or src.stem in os.environ["MIXFRAME_KERNELS"].split(",")
]
setup(ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["_kernels"]))
