"""Statistics of a large on-disk uint8 array on a LocalCluster: normlab vs dask.array's own mean/std.

Usage::

    python benchmarks/bench_dask.py                 # 1 GiB (n, 64, 64, 3) uint8 in a temporary folder
    python benchmarks/bench_dask.py --gib 4 --workers 2 --dir /data/tmp

Every contender runs on a fresh ``LocalCluster(n_workers=W, threads_per_worker=1)``; the peak resident
memory of its worker processes (``VmHWM``, reset after the warm-up) is its own. Each first computes on a small array
(imports, compiled kernels), then on the large one, which is timed. The file is read once beforehand, so
every contender reads it from the page cache. Contenders:

* ``normlab stats --scheduler``: ``normlab.stats(dataset_bag(normlab.data.open("npy:FILE")))``: each
  worker reads row-range shards of the file and accumulates them (count, mean, std, min, max and exact
  quartiles from 256-bin histograms).
* ``normlab.stats(dask array)``: the same statistics of a Dask array of the file (``--chunk-mib`` per chunk).
* ``... quantiles=()``: the same without quartiles (what dask.array computes).
* ``dask.array mean/std``: ``dask.compute(x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2)))`` on that array.

The Dask array reads each chunk with ``np.load(mmap_mode="r")[a:b]``, the same way for all contenders.
Errors are relative to the exact per-channel mean and std (integer sums, computed here).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = (64, 64, 3)


def make_array(path: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` uint8 samples of shape SAMPLE, a few thousand at a time (memory stays small)."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n, *SAMPLE)})
        for a in range(0, n, 4096):
            block = rng.integers(0, 256, size=(min(n, a + 4096) - a, *SAMPLE), dtype=np.uint8)
            block[..., 1] //= 2  # channels with different statistics
            f.write(block.tobytes())


def _read_rows(path: str, a: int, b: int) -> np.ndarray:
    return np.array(np.load(path, mmap_mode="r")[a:b])


def npy_dask_array(path: Path, chunk_mib: float):
    """A Dask array of the .npy file whose chunks each read their rows from the file."""
    import dask
    import dask.array as da

    mm = np.load(path, mmap_mode="r")
    n, sample_bytes = mm.shape[0], int(np.prod(mm.shape[1:])) * mm.dtype.itemsize
    rows = max(1, int(chunk_mib * 2**20) // sample_bytes)
    read = dask.delayed(_read_rows, pure=True)
    blocks = [
        da.from_delayed(read(str(path), a, min(n, a + rows)), shape=(min(n, a + rows) - a, *mm.shape[1:]), dtype=mm.dtype)
        for a in range(0, n, rows)
    ]
    return da.concatenate(blocks, axis=0)


def _peak_rss_mib(reset: bool = False) -> float:
    """This process's peak resident memory (VmHWM, MiB); ``reset`` starts a new peak (Linux)."""
    status = Path("/proc/self/status")
    if not status.exists():  # not Linux: the lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def exact_mean_std(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std from exact integer sums (the reference every contender is checked against)."""
    from fractions import Fraction

    mm = np.load(path, mmap_mode="r")
    c = mm.shape[-1]
    s1 = [0] * c
    s2 = [0] * c
    for a in range(0, mm.shape[0], 4096):
        block = np.asarray(mm[a : a + 4096], dtype=np.int64).reshape(-1, c)
        for i in range(c):
            s1[i] += int(block[:, i].sum())
            s2[i] += int((block[:, i] * block[:, i]).sum())
    n = mm.size // c
    mean = np.array([s / n for s in s1])
    var = [Fraction(n * q - s * s, n * n) for s, q in zip(s1, s2, strict=True)]
    return mean, np.sqrt(np.array([float(v) for v in var]))


def run_contender(name: str, fn, small: Path, big: Path, workers: int) -> dict:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:  # fmt: skip
        fn(small)  # imports and compiled kernels on every worker
        idle = client.run(_peak_rss_mib, True)
        t0 = time.perf_counter()
        result = fn(big)
        seconds = time.perf_counter() - t0
        peaks = client.run(_peak_rss_mib)
    nbytes = big.stat().st_size
    return {
        "name": name,
        "seconds": seconds,
        "gib_per_s": nbytes / 2**30 / seconds,
        "worker_peak_mib": max(peaks.values()),
        "worker_idle_mib": max(idle.values()),
        "result": result,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the array (default 1 GiB)")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    parser.add_argument("--chunk-mib", type=float, default=32.0, help="Dask chunk size in MiB (default 32)")
    parser.add_argument("--dir", default=None, help="where to write the array (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--only", default=None, help="run only contenders whose name contains this text")
    parser.add_argument("--in-memory", action="store_true",
                        help="the array persisted in the workers' memory: normlab, Dask's own per-chunk sum, one "
                             "process, and where the time goes; updates its section of benchmarks/README.md")
    args = parser.parse_args(argv)
    if args.in_memory:
        return _in_memory(args)

    import dask

    import normlab
    import normlab.data
    from normlab.adapters.dask import dataset_bag

    folder = Path(args.dir or tempfile.mkdtemp(prefix="normlab-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    sample_bytes = int(np.prod(SAMPLE))
    big, small = folder / "big.npy", folder / "warm.npy"
    n = int(args.gib * 2**30) // sample_bytes
    if not big.exists() or np.load(big, mmap_mode="r").shape[0] != n:
        t0 = time.perf_counter()
        make_array(big, n)
        print(f"wrote {big} ({big.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if not small.exists():  # 48 MiB: a job big enough for the compiled kernels, so that they load in the warm-up
        make_array(small, 4096, seed=1)
    subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)  # into the page cache

    def normlab_shards(path: Path):
        s = normlab.stats(dataset_bag(normlab.data.open(f"npy:{path}")), per="channel")
        return s.mean, s.std

    def normlab_array(path: Path, quantiles=(0.25, 0.5, 0.75)):
        s = normlab.stats(npy_dask_array(path, args.chunk_mib), per="channel", quantiles=quantiles)
        return s.mean, s.std

    def dask_own(path: Path):
        x = npy_dask_array(path, args.chunk_mib)
        mean, std = dask.compute(x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2)))
        return np.asarray(mean), np.asarray(std)

    contenders = [
        ("normlab stats --scheduler (file shards, + quartiles)", normlab_shards),
        ("normlab.stats(dask array), + quartiles", normlab_array),
        ("normlab.stats(dask array), quantiles=()", lambda p: normlab_array(p, quantiles=())),
        ("dask.array mean/std", dask_own),
    ]
    contenders = [(name, fn) for name, fn in contenders if args.only is None or args.only in name]
    rows = [run_contender(name, fn, small, big, args.workers) for name, fn in contenders]
    ref_mean, ref_std = exact_mean_std(big)
    for row in rows:
        mean, std = row.pop("result")
        row["max_rel_error"] = float(max(np.max(np.abs(mean / ref_mean - 1)), np.max(np.abs(std / ref_std - 1))))
    info = {
        "array": f"{n} x {SAMPLE} uint8, {big.stat().st_size / 2**30:.2f} GiB on disk",
        "workers": args.workers,
        "threads_per_worker": 1,
        "chunk_mib": args.chunk_mib,
        "cpus": os.cpu_count(),
        "versions": {"dask": dask.__version__, "numpy": np.__version__},
    }
    if args.json:
        print(json.dumps({"info": info, "rows": rows}, indent=1))
        return 0
    print(f"array: {info['array']}; {args.workers} worker processes x 1 thread; {args.chunk_mib:g} MiB chunks; "
          f"{info['cpus']} CPUs")  # fmt: skip
    print()
    print("| contender | seconds | GiB/s | peak RSS per worker, MiB (idle) | mean/std max rel. error |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['seconds']:.2f} | {r['gib_per_s']:.2f} | {r['worker_peak_mib']:.0f} "
              f"({r['worker_idle_mib']:.0f}) | {r['max_rel_error']:.1e} |")  # fmt: skip
    return 0


def _in_memory(args) -> int:
    import _dask_memory
    import dask
    from _readme import replace_section

    load0 = os.getloadavg()[0]
    body = _dask_memory.run(args.gib, args.workers, args.chunk_mib)
    head = [_dask_memory.HEADING, "",
            f"Run on {os.cpu_count()} CPUs, dask {dask.__version__}, NumPy {np.__version__}; load average "
            f"{load0:.1f} at the start and {os.getloadavg()[0]:.1f} at the end (other jobs share the machine: "
            "compare rows of the same run). Command: `python benchmarks/bench_dask.py --in-memory`.", ""]  # fmt: skip
    section = "\n".join(head + body)
    print(section)
    replace_section(_dask_memory.HEADING, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
