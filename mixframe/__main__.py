"""``python -m mixframe demo`` / ``python -m mixframe fit DATA FORMULA``."""
import sys

from .cli import main

sys.exit(main())
