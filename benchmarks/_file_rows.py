"""``bench_stats.py --files``: statistics of a ``.npy`` file read in batches, against loading it first.

Two files in a temporary folder, read once beforehand so that every contender reads the page cache:

* a uint8 image stack ``(n, 64, 64, 3)`` of ``--file-gib`` GiB (per channel);
* a float64 table ``(n, 20)`` of a quarter of that, means 0.3 … 3e12 (per feature).

In this process, after a warm-up (imports, compiled kernels loaded), timed in turns (a, b, c, a, b, c, ...)
so that the machine's drifting load weighs on all alike; best and median of ``repeat``:

* ``normlab.stats(normlab.data.open("npy:FILE"))``: the file read in 8 MiB batches (what ``normlab stats
  FILE`` does), without quantiles and with the default exact quartiles;
* ``normlab.stats(np.load(FILE))``: the whole array loaded first, then the same statistics;
* ``np.load`` + NumPy's own ``mean``/``std`` (float64), the recipe users copy;

and end to end in a fresh process each (``python -m normlab stats FILE`` against a fresh ``python -c`` that
loads the file and prints NumPy's mean and std), where the CLI loads the compiled kernels only for jobs
that repay their load.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import in_turns

HEADING = "## Statistics of a file read in batches (`bench_stats.py --files`)"
SRC = Path(__file__).resolve().parents[1] / "src"


def _write(path: Path, shape: tuple, dtype, make) -> None:
    """Write a .npy of ``shape`` a block of rows at a time (memory stays small)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                 "shape": shape})  # fmt: skip
        rng = np.random.default_rng(0)
        step = max(1, (64 << 20) // (int(np.prod(shape[1:])) * np.dtype(dtype).itemsize))
        for a in range(0, shape[0], step):
            f.write(np.ascontiguousarray(make(rng, min(step, shape[0] - a)), dtype=dtype).tobytes())


def _fresh(args: list[str], repeat: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    walls = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, env=env)
        walls.append(time.perf_counter() - t)
    return min(walls), statistics.median(walls)


def _rows(path: Path, per: str, axis, q: tuple, qname: str, label: str, repeat: int) -> list[str]:
    """The in-process rows of one file and one choice of quantiles, timed in turns."""
    import normlab
    import normlab.data

    def numpy_recipe():
        x = np.load(path)
        return x.mean(axis=axis, dtype=np.float64), x.std(axis=axis, dtype=np.float64)

    fns = [lambda: normlab.stats(normlab.data.open(f"npy:{path}"), per=per, quantiles=q),
           lambda: normlab.stats(np.load(path), per=per, quantiles=q)]  # fmt: skip
    names = [f"`normlab.stats(normlab.data.open('npy:FILE'))`, {qname}", f"`normlab.stats(np.load(FILE))`, {qname}"]
    if not q:
        fns.append(numpy_recipe)
        names.append("`np.load(FILE)` + NumPy `mean`/`std` (float64)")
    for fn in fns:
        fn()  # warm: imports and compiled kernels
    times = in_turns(fns, repeat)
    gb = path.stat().st_size / 1e9
    ref = times[1][0]
    return [f"| {label} | {name} | {gb / best:.2f} | {gb / med:.2f} | {ref / best:.2f} |"
            for name, (best, med) in zip(names, times, strict=True)]  # fmt: skip


def run(gib: float, repeat: int) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="normlab-files-"))
    img, tab = folder / "images.npy", folder / "table.npy"
    n_img = int(gib * 2**30) // (64 * 64 * 3)
    n_tab = int(gib / 4 * 2**30) // (8 * 20)
    _write(img, (n_img, 64, 64, 3), np.uint8, lambda r, k: r.integers(0, 256, (k, 64, 64, 3), dtype=np.uint8))
    means, stds = np.geomspace(0.3, 3e12, 20), np.geomspace(0.01, 15, 20)
    _write(tab, (n_tab, 20), np.float64, lambda r, k: r.normal(size=(k, 20)) * stds + means)
    out = ["| data | what | best GB/s | median GB/s | × `np.load` + `normlab.stats` |", "|---|---|---:|---:|---:|"]
    try:
        for path, per, label in ((img, "channel", f"uint8 {img.stat().st_size / 1e9:.2f} GB"),
                                 (tab, "feature", f"float64 table {tab.stat().st_size / 1e9:.2f} GB")):  # fmt: skip
            subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # into the page cache
            axis = (0, 1, 2) if per == "channel" else 0
            gb = path.stat().st_size / 1e9
            for q, qname in (((), "moments"), ((0.25, 0.5, 0.75), "moments and exact quartiles")):
                out += _rows(path, per, axis, q, qname, label, repeat)
            cli = _fresh(["-m", "normlab", "stats", str(path), "--per", per, "--quantiles", "none"], repeat)
            recipe = _fresh(["-c", f"import numpy as np; x = np.load({str(path)!r}); "
                                   f"print(x.mean(axis={axis}, dtype=np.float64), x.std(axis={axis}, dtype=np.float64))"],
                            repeat)  # fmt: skip
            out.append(f"| {label} | `normlab stats FILE --quantiles none`, a fresh process | {gb / cli[0]:.2f} | "
                       f"{gb / cli[1]:.2f} | – |")  # fmt: skip
            out.append(f"| {label} | a fresh `python -c` loading the file, NumPy `mean`/`std` | {gb / recipe[0]:.2f} | "
                       f"{gb / recipe[1]:.2f} | – |")  # fmt: skip
    finally:
        for p in (img, tab):
            p.unlink(missing_ok=True)
        folder.rmdir()
    return out
