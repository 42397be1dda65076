"""Benchmark (not a test): an LMM on a Parquet dataset larger than one wants in memory.

Generates ``y ~ x + (1|g1) + (1|g2)`` with crossed factors (default 50,000 x 2,000 levels) as Parquet
files written one chunk at a time, then fits it from ``pl.scan_parquet`` or through a Dask LocalCluster,
reporting wall time (total, the two passes over the data, the optimisation) and the peak resident memory
of the process (``resource.getrusage``; with ``processes=False`` the Dask workers are threads of it).

Usage::

    python benchmarks/stream_bench.py --rows 100_000_000 --dir /work/bench-cache --generate-only
    nice -n 10 python benchmarks/stream_bench.py --rows 100_000_000 --dir /work/bench-cache
    nice -n 10 python benchmarks/stream_bench.py --rows 10_000_000 --dir /work/bench-cache --dask
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings

import numpy as np

FORMULA = "y ~ x + (1|g1) + (1|g2)"


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, in GB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def generate(path: str, rows: int, n_g1: int, n_g2: int, chunk: int, seed: int = 42) -> None:
    """Write ``rows`` rows as Parquet files of ``chunk`` rows each, never holding more than one chunk."""
    import polars as pl

    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    u1 = rng.normal(0.0, 0.8, n_g1)
    u2 = rng.normal(0.0, 0.5, n_g2)
    done, part = 0, 0
    while done < rows:
        n = min(chunk, rows - done)
        g1 = rng.integers(0, n_g1, n, dtype=np.int32)
        g2 = rng.integers(0, n_g2, n, dtype=np.int32)
        x = rng.normal(size=n)
        y = 2.0 + 0.7 * x + u1[g1] + u2[g2] + rng.normal(0.0, 1.0, n)
        pl.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2}).write_parquet(
            os.path.join(path, f"part-{part:05d}.parquet"), row_group_size=min(n, 1_000_000))
        done += n
        part += 1


class _Phases:
    """Wall time of the two data passes (the rest of the fit call is the optimisation and the results)."""

    def __init__(self):
        from mixframe import stream

        self.stream, self.seconds = stream, 0.0
        self.saved = (stream._passes_local, stream._passes_dask)

        def timed(fn):
            def run(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - t
            return run

        stream._passes_local, stream._passes_dask = (timed(f) for f in self.saved)

    def close(self):
        self.stream._passes_local, self.stream._passes_dask = self.saved


def fit_lazy(path: str, batch: int):
    import polars as pl

    import mixframe as mf

    lf = pl.scan_parquet(os.path.join(path, "*.parquet"))
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mf.lmm(FORMULA, lf, control={"batch_size": batch})
        fit.variance_components()
    return fit, time.perf_counter() - t


def fit_dask(path: str, workers: int):
    import dask.dataframe as dd
    import distributed

    import mixframe as mf

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        ddf = dd.read_parquet(os.path.join(path, "*.parquet"))
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = mf.lmm(FORMULA, ddf)
            fit.variance_components()
        return fit, time.perf_counter() - t


def report(label: str, fit, seconds: float, passes: float) -> None:
    vc = fit.variance_components()
    groups = vc["group"].to_list() if hasattr(vc["group"], "to_list") else list(vc["group"])
    sds = dict(zip(groups, list(vc["sdcor"])))
    print(f"{label}: nobs={fit.nobs:,} wall={seconds:.1f}s (data passes {passes:.1f}s, fit {seconds - passes:.1f}s) "
          f"peak_rss={peak_rss_gb():.2f} GB evaluations={fit.raw.iterations} "
          f"fixef={ {k: round(v, 4) for k, v in fit.fixef.items()} } "
          f"sd={ {k: round(float(v), 4) for k, v in sds.items()} }", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=100_000_000)
    ap.add_argument("--g1", type=int, default=50_000)
    ap.add_argument("--g2", type=int, default=2_000)
    ap.add_argument("--dir", default="/tmp/mixframe-stream-bench")
    ap.add_argument("--chunk", type=int, default=2_000_000, help="rows per generated file")
    ap.add_argument("--batch", type=int, default=1_000_000, help="rows per fitting batch")
    ap.add_argument("--dask", action="store_true", help="fit through a Dask LocalCluster instead")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--generate-only", action="store_true", help="write the dataset and stop")
    args = ap.parse_args(argv)
    path = os.path.join(args.dir, f"rows{args.rows}_g{args.g1}x{args.g2}")
    if not os.path.isdir(path) or not os.listdir(path):
        t = time.perf_counter()
        generate(path, args.rows, args.g1, args.g2, args.chunk)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f}s at {path}", flush=True)
    if args.generate_only:
        return 0
    phases = _Phases()
    try:
        if args.dask:
            fit, sec = fit_dask(path, args.workers)
            report(f"dask LocalCluster ({args.workers} workers)", fit, sec, phases.seconds)
        else:
            fit, sec = fit_lazy(path, args.batch)
            report("polars LazyFrame", fit, sec, phases.seconds)
    finally:
        phases.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
