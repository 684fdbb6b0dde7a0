"""Speed, memory and accuracy of normlab's statistics engine against the usual anchors, in one run.

For each dataset (MNIST-like, CIFAR-like, an ImageNet slice, a wide-scale float table) it measures the
throughput (GB/s of input), the peak extra memory and the error of the per-channel (per-feature for the
table) mean and std of:

* normlab, through ``normlab.Standardize(per=...).fit(x)``, with the numba engine and with
  ``NORMLAB_ENGINE=numpy``;
* NumPy naive float64 (``x.astype(np.float64).mean(axis)`` / ``.std(axis)``) and naive float32;
* scikit-learn ``StandardScaler().partial_fit`` on the reshaped ``(n*h*w, c)`` array;
* Keras ``keras.layers.Normalization(axis=-1).adapt`` (torch backend), on a subset when the data is big.

It also measures histogram mode (exact quantiles), the float quantile sketch and ``affine_transform``.
Errors are relative to exact references (integer sums for images, ``math.fsum`` for the table).

Usage::

    python benchmarks/bench_stats.py            # full run, a few minutes, updates benchmarks/README.md
    python benchmarks/bench_stats.py --quick    # small sizes, under a minute, prints only
    python benchmarks/bench_stats.py --targets  # the throughput targets (~1 min), updates their section
    python benchmarks/bench_stats.py --float    # float rows vs torch/NumPy/sklearn, updates their section
    python benchmarks/bench_stats.py --files    # a .npy file read in batches against loading it first
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import gzip
import math
import os
import platform
import re
import statistics
import sys
import time
import tracemalloc
import warnings
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _readme import README, replace_section  # noqa: E402  (benchmarks/ is the script's folder)

from normlab.core._kernels import affine_transform  # noqa: E402
from normlab.core.stats import StatsAccumulator  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
LOAD = [0.0]  # load average when the run started


# ---------------------------------------------------------------------------------------------- memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
        return int(m.group(1)) * 1024 if m else None
    except OSError:
        return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_extra(fn) -> float:
    """Peak extra memory while ``fn()`` runs, in MB.

    The larger of the tracemalloc peak (sees every NumPy allocation, even when the C allocator recycles
    freed pages) and the growth of the resident-set high-water mark (sees torch and other native allocators).
    """
    gc.collect()
    hwm = _reset_hwm() and _hwm_bytes() is not None
    base = _rss_bytes()
    tracemalloc.start()
    try:
        fn()
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rss = max(0, (_hwm_bytes() or base) - base) if hwm else 0
    return max(traced, rss) / 2**20


def timed_rss(fn) -> tuple[float, float, object]:
    """One timed run; peak extra memory from the resident-set high-water mark (MB), or 0 if unavailable."""
    gc.collect()
    hwm = _reset_hwm() and _hwm_bytes() is not None
    base = _rss_bytes()
    t = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t
    mem = max(0, (_hwm_bytes() or base) - base) / 2**20 if hwm else 0.0
    return secs, mem, out


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


# ---------------------------------------------------------------------------------------------- data


def mnist_like(n: int, rng) -> tuple[np.ndarray, str]:
    path = DATA / "mnist" / "train-images-idx3-ubyte.gz"
    if path.exists():
        raw = gzip.decompress(path.read_bytes())
        x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28, 1)
        return np.ascontiguousarray(x[:n]), "real MNIST train images"
    x = np.where(rng.random((n, 28, 28, 1)) < 0.8, 0, rng.integers(0, 256, (n, 28, 28, 1))).astype(
        np.uint8
    )
    return x, "synthetic (80 % zeros)"


def images(n: int, h: int, w: int, rng) -> np.ndarray:
    x = np.empty((n, h, w, 3), np.uint8)
    for i in range(0, n, 256):  # per-channel means 125/122/113, std ~ 60, clipped to 0..255
        block = rng.normal([125, 122, 113], 60, (min(256, n - i), h, w, 3))
        x[i : i + 256] = np.clip(block, 0, 255).astype(np.uint8)
    return x


def wide_table(n: int, rng) -> np.ndarray:
    means = np.logspace(0, 13, 20)
    stds = np.logspace(-2, 2, 20)
    return means + stds * rng.standard_normal((n, 20))


# ---------------------------------------------------------------------------------------------- references


def exact_uint8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std of uint8 (n, ..., c) data from integer histograms."""
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    values = np.arange(256, dtype=object)
    mean, std = [], []
    for j in range(c):
        h = np.bincount(np.ascontiguousarray(flat[:, j]), minlength=256).astype(object)
        n = int(h.sum())
        s1, s2 = int((h * values).sum()), int((h * values * values).sum())
        mean.append(float(Fraction(s1, n)))
        std.append(math.sqrt(Fraction(n * s2 - s1 * s1, n * n)))
    return np.array(mean), np.array(std)


def exact_table(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = [], []
    for col in x.T:
        m = math.fsum(col) / col.size
        d = col - m
        mean.append(m + math.fsum(d) / col.size)
        std.append(math.sqrt(math.fsum(d * d) / col.size - (math.fsum(d) / col.size) ** 2))
    return np.array(mean), np.array(std)


def rel_err(got, ref) -> float:
    got, ref = np.asarray(got, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    return float(np.max(np.abs(got - ref) / np.abs(ref)))


# ---------------------------------------------------------------------------------------------- methods


def set_engine(engine: str) -> None:
    """Force an engine for the rows that follow (``"auto"`` restores the default choice)."""
    if engine in ("numpy", "numba"):
        os.environ["NORMLAB_ENGINE"] = engine
    else:
        os.environ.pop("NORMLAB_ENGINE", None)


def normlab_fit(per: str):
    try:
        import normlab

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            normlab.Standardize(per=per).fit(np.arange(6.0).reshape(2, 3))

        def fit(x):
            s = normlab.Standardize(per=per).fit(x)
            return np.ravel(s.mean_), np.ravel(s.std_)

        return fit, f"normlab.Standardize(per={per!r}).fit"
    except Exception:  # the normalizers are not available: use the accumulator directly

        def fit(x):
            k = x.shape[-1]
            acc = StatsAccumulator(k).update(x.reshape(-1, k, 1))
            return acc.mean, acc.std

        return fit, "StatsAccumulator.update"


def numpy_naive(dtype):
    def fit(x):
        axis = tuple(range(x.ndim - 1))
        y = x.astype(dtype)
        return y.mean(axis=axis), y.std(axis=axis)

    return fit


def sklearn_partial_fit(x):
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().partial_fit(x.reshape(-1, x.shape[-1]))
    return sc.mean_, np.sqrt(sc.var_)


def keras_adapt(x):
    import keras

    layer = keras.layers.Normalization(axis=-1)
    layer.adapt(x)
    return np.asarray(layer.mean).ravel(), np.sqrt(np.asarray(layer.variance)).ravel()


# ---------------------------------------------------------------------------------------------- runs


def bench_dataset(name, x, ref, per, repeat, keras_max_bytes, rows, notes):
    fit, how = normlab_fit(per)
    notes.add(f"normlab rows use `{how}`.")
    methods = [
        ("normlab (numba)", "numba", fit),
        ("normlab (NumPy only)", "numpy", fit),
        ("NumPy naive float64", None, numpy_naive(np.float64)),
        ("NumPy naive float32", None, numpy_naive(np.float32)),
        ("sklearn StandardScaler.partial_fit", None, sklearn_partial_fit),
        ("Keras Normalization.adapt", None, keras_adapt),
    ]
    out = []
    for label, engine, fn in methods:
        data = x
        scale_note = ""
        if label.startswith("Keras") and x.nbytes > keras_max_bytes:
            nsub = max(1, int(x.shape[0] * keras_max_bytes / x.nbytes))
            data = x[:nsub]
            scale_note = f" (on {nsub}/{x.shape[0]} samples)"
        if engine is not None:
            set_engine(engine)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:  # warm up every method (numba compilation, Keras/torch first-call setup)
                fn(data[: max(2, data.shape[0] // 100)])
            except Exception:  # reported below when the timed call fails too
                pass
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if engine is not None:  # normlab: best of 7 (cheap), then a traced run for memory
                    secs, (mean, std) = best_time(lambda fn=fn, data=data: fn(data), max(repeat, 7))
                    mem = peak_extra(lambda fn=fn, data=data: fn(data))
                else:  # anchors run once (slow, big temporaries that the RSS high-water mark shows)
                    secs, mem, (mean, std) = timed_rss(lambda fn=fn, data=data: fn(data))
        except Exception as exc:  # an anchor that is not installed or fails: say so
            out.append(
                (label + scale_note, None, None, None, None, f"failed: {type(exc).__name__}")
            )
            continue
        finally:
            set_engine("auto")
        sub_ref = ref if data is x else None
        if sub_ref is None:  # keras on a subset: compare with the exact statistics of that subset
            sub_ref = exact_uint8(data) if data.dtype == np.uint8 else exact_table(data)
        gbps = data.nbytes / secs / 1e9
        out.append(
            (label + scale_note, gbps, mem, rel_err(mean, sub_ref[0]), rel_err(std, sub_ref[1]), "")
        )
        print(
            f"  {label + scale_note:<48} {gbps:8.3f} GB/s  {mem:9.1f} MB  mean {out[-1][3]:.1e}  std {out[-1][4]:.1e}",
            flush=True,
        )
    rows.append((name, x, out))


def bench_extra(x_img, table, repeat, extra):
    k = x_img.shape[-1]
    x3 = x_img.reshape(-1, k, 1)
    for engine in ("numba", "numpy"):
        set_engine(engine)
        StatsAccumulator(k, quantiles=True).update(x3[:1000])
        secs, acc = best_time(lambda: StatsAccumulator(k, quantiles=True).update(x3), repeat)
        extra.append(
            (
                f"histogram mode (exact quantiles), uint8 {x_img.shape}, {engine}",
                x3.nbytes / secs / 1e9,
                "GB/s in",
                "",
            )
        )
        print(f"  {extra[-1][0]:<70} {extra[-1][1]:.3f} GB/s", flush=True)
    set_engine("auto")
    t3 = table.reshape(-1, table.shape[1], 1)
    for engine in ("numba", "numpy"):
        set_engine(engine)
        secs, acc = best_time(
            lambda: StatsAccumulator(table.shape[1], quantiles=True).update(t3), 1
        )
        col = np.sort(table[:, 0])
        qs = np.linspace(0.01, 0.99, 99)
        est = acc.quantile(qs)[:, 0]
        if acc.quantile_rank_error == 0:
            note = f"exact; equal to np.quantile: {bool(np.array_equal(est, np.quantile(col, qs)))}"
        else:  # the true rank error of the sketch's answers, worst over 99 quantiles of column 0
            pos = qs * (col.size - 1)
            below, upto = np.searchsorted(col, est, "left"), np.searchsorted(col, est, "right")
            err = float(np.max(np.maximum(0, np.maximum(below - pos, pos - upto)))) / col.size
            note = f"sketch; rank-error bound {acc.quantile_rank_error:.1e}, true worst rank error {err:.1e}"
        extra.append(
            (
                f"float quantiles, table {table.shape}, {engine}",
                t3.nbytes / secs / 1e9,
                "GB/s in",
                note,
            )
        )
        print(f"  {extra[-1][0]:<70} {extra[-1][1]:.3f} GB/s  {extra[-1][3]}", flush=True)
    set_engine("auto")
    shift = np.array([125.0, 122.0, 113.0]).reshape(1, 1, 1, 3)[..., :k]
    inv = 1 / np.array([60.0, 61.0, 62.0]).reshape(1, 1, 1, 3)[..., :k]
    out = np.empty(x_img.shape, np.float32)
    for engine in ("numba", "numpy"):
        set_engine(engine)
        for exact in (False, True):
            affine_transform(x_img[:10], shift, inv, out=out[:10], exact=exact)
            secs, _ = best_time(
                lambda exact=exact: affine_transform(x_img, shift, inv, out=out, exact=exact),
                repeat,
            )
            label = f"affine_transform uint8 -> float32 {'exact' if exact else 'fast'}, {x_img.shape}, {engine}"
            extra.append((label, out.nbytes / secs / 1e9, "GB/s out", ""))
            print(f"  {label:<70} {extra[-1][1]:.3f} GB/s out", flush=True)
    set_engine("auto")
    naive = lambda: (x_img.astype(np.float32) - shift.astype(np.float32)) * inv.astype(np.float32)  # noqa: E731
    secs, _ = best_time(naive, repeat)
    extra.append(
        (
            f"NumPy naive (x.astype(float32) - mean) * inv_std, {x_img.shape}",
            out.nbytes / secs / 1e9,
            "GB/s out",
            "allocates 2 arrays",
        )
    )
    print(f"  {extra[-1][0]:<70} {extra[-1][1]:.3f} GB/s out", flush=True)


def _cpu_seconds(fn) -> float:
    """CPU time of this process (all threads) spent in ``fn()``: on a loaded machine, a better guide than
    wall time to what an idle one would give (divide by the cores used to get wall time)."""
    gc.collect()
    t = time.process_time()
    fn()
    return time.process_time() - t


def targets(repeat: int) -> list[tuple]:
    """The throughput targets of the statistics engine, best and median of ``repeat`` runs, both engines."""
    rng = np.random.default_rng(2)
    img = images(20000, 32, 32, rng)  # 61 MB, CIFAR-like
    x3 = img.reshape(-1, 3, 1)
    table = wide_table(400_000, rng)  # 64 MB
    t3 = table.reshape(-1, 20, 1)
    shift = np.array([125.0, 122.0, 113.0]).reshape(1, 1, 1, 3)
    inv = 1 / np.array([60.0, 61.0, 62.0]).reshape(1, 1, 1, 3)
    out = np.empty(img.shape, np.float32)
    # (label, unit, bytes, call, target: {engine: GB/s} or None for opt-in)
    jobs = [
        ("uint8 per-channel mean/std/min/max", "GB/s in", x3.nbytes,
         lambda: StatsAccumulator(3).update(x3), {"numpy": 2.5, "numba": 10.0}),
        ("uint8 histogram mode (exact quantiles)", "GB/s in", x3.nbytes,
         lambda: StatsAccumulator(3, quantiles=True).update(x3), {"numpy": 0.6}),
        ("float64 (n, 20) table, mean/std/min/max", "GB/s in", t3.nbytes,
         lambda: StatsAccumulator(20).update(t3), {"numpy": 2.5}),
        ("affine_transform uint8 -> float32 (fast), reused out", "GB/s out", out.nbytes,
         lambda: affine_transform(img, shift, inv, out=out), {"numpy": 5.0, "numba": 5.0}),
        ("affine_transform uint8 -> float32 (exact), reused out", "GB/s out", out.nbytes,
         lambda: affine_transform(img, shift, inv, out=out, exact=True), None),
    ]  # fmt: skip
    rows = []
    for engine in ("numpy", "numba"):
        set_engine(engine)
        for label, unit, nbytes, fn, target in jobs:
            fn()  # warm up (and compile)
            walls = []
            for _ in range(repeat):
                gc.collect()
                t = time.perf_counter()
                fn()
                walls.append(time.perf_counter() - t)
            cpu = min(_cpu_seconds(fn) for _ in range(3))
            best, median = nbytes / min(walls) / 1e9, nbytes / statistics.median(walls) / 1e9
            rows.append(
                (label, engine, best, median, unit, (target or {}).get(engine), target is None)
            )
            print(
                f"  {label:<56} {engine:<6} {best:7.2f} {unit} wall (median {median:.2f}), "
                f"{nbytes / cpu / 1e9:7.2f} {unit.split()[0]} per CPU-second",
                flush=True,
            )
    set_engine("auto")
    return rows


TARGETS_HEADING = "## Throughput targets on a quiet machine (`bench_stats.py --targets`)"


def targets_markdown(rows, load: tuple[float, float]) -> str:
    """The targets table: one line per job, both engines, best (median) wall-clock GB/s, met or not."""
    by_label: dict[str, dict[str, tuple]] = {}
    for label, engine, best, median, unit, target, opt_in in rows:
        by_label.setdefault(label, {})[engine] = (best, median, unit, target, opt_in)
    lines = [
        TARGETS_HEADING,
        "",
        f"Run {_dt.date.today().isoformat()}, {_cores()} cores, load average {load[0]:.1f} at the start and "
        f"{load[1]:.1f} at the end. Wall-clock GB/s (input for statistics, output for transform), best of the "
        "runs with the median in brackets; the verdict uses the best run, since other jobs on this shared "
        "machine only ever slow a run down.",
        "",
        "| what | NumPy only | numba | target |",
        "|---|---:|---:|---|",
    ]
    for label, eng in by_label.items():
        cells, verdicts = [], []
        for engine in ("numpy", "numba"):
            best, median, unit, target, opt_in = eng[engine]
            cells.append(f"{best:.2f} ({median:.2f})")
            if target is not None:
                name = "NumPy" if engine == "numpy" else "numba"
                verdicts.append((f"≥ {target:g} {name}", best >= target))
        if not verdicts:
            goal = "opt-in, no target"
        else:
            met = all(ok for _, ok in verdicts)
            goal = ", ".join(t for t, _ in verdicts) + (": met" if met else ": **not met**")
        lines.append(f"| {label} ({eng['numpy'][2]}) | {cells[0]} | {cells[1]} | {goal} |")
    return "\n".join(lines) + "\n"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def markdown(rows, extra, notes, args, total_secs) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import numba

        nb = numba.__version__
    except ImportError:  # pragma: no cover
        nb = "not installed"
    lines = [
        "## Statistics engine (`benchmarks/bench_stats.py`)",
        "",
        f"Run {_dt.date.today().isoformat()} on {platform.machine()} with {cpus} cores, Python "
        f"{platform.python_version()}, NumPy {np.__version__}, numba {nb}; {'quick' if args.quick else 'full'} run, "
        f"{total_secs:.0f} s in total; load average {LOAD[0]:.1f} at the start and {os.getloadavg()[0]:.1f} at "
        "the end (other jobs share the machine). This machine is shared, so absolute numbers drift by about ±30 % between "
        "runs; the ratios measured in the same run are the point. normlab rows are the best of 7 runs, the anchors run once (they are slow and their temporaries are measured). `speed ×` is normlab (numba) throughput divided by "
        "the row's; errors are the largest relative error over channels against exact references (integer "
        "sums for the images, `math.fsum` for the table); memory is the peak extra memory during the call (normlab: the larger of the tracemalloc peak and the "
        "growth of the resident set's high-water mark; anchors, which run once: the high-water mark growth).",
        "",
    ]
    for name, x, out in rows:
        lines += [f"### {name}: {x.shape} {x.dtype}, {x.nbytes / 1e6:.0f} MB", ""]
        lines += [
            "| method | GB/s | speed × | peak extra MB | mean rel. error | std rel. error |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        top = out[0][1]
        for label, gbps, mem, em, es, note in out:
            if gbps is None:
                lines.append(f"| {label} | – | – | – | – | {note} |")
                continue
            ratio = top / gbps if top else float("nan")
            mem_s = f"{mem:.1f}" if mem < 10 else f"{mem:.0f}"
            lines.append(f"| {label} | {gbps:.3f} | {ratio:.1f} | {mem_s} | {em:.1e} | {es:.1e} |")
        lines.append("")
    lines += [
        "### Histogram mode, quantile sketch, transform kernel",
        "",
        "| what | throughput | notes |",
        "|---|---:|---|",
    ]
    for label, value, unit, note in extra:
        lines.append(f"| {label} | {value:.3f} {unit} | {note} |")
    lines += ["", *sorted(notes), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (< 1 min); does not touch README.md")
    p.add_argument("--no-readme", action="store_true", help="print only")
    p.add_argument(
        "--targets",
        action="store_true",
        help="only the engine's throughput targets (~1 min); updates their section of README.md",
    )
    p.add_argument("--float", action="store_true", help="only the float moments/quantiles rows (~2 min)")
    p.add_argument("--files", action="store_true", help="only a .npy file read in batches against loading it (~2 min)")
    args = p.parse_args(argv)
    if args.files:
        import _file_rows

        load0 = os.getloadavg()[0]
        body = _file_rows.run(0.125 if args.quick else 1.0, 2 if args.quick else 5)
        section = "\n".join([
            _file_rows.HEADING, "", f"Run on {_cores()} CPUs, NumPy {np.__version__}; load average {load0:.1f} at the "
            f"start and {os.getloadavg()[0]:.1f} at the end. Command: `python benchmarks/bench_stats.py --files`. "
            "In-process rows are timed in turns after a warm-up; the last two rows of each file are fresh processes "
            "(imports included).", "", *body])  # fmt: skip
        if not (args.quick or args.no_readme):
            replace_section(_file_rows.HEADING, section)
        print(section)
        return 0
    if args.float:
        import _float_rows

        section = _float_rows.run(50_000 if args.quick else 1_000_000, 7, peak_extra, exact_table)
        if not (args.quick or args.no_readme):
            replace_section(_float_rows.HEADING, section)
        print(section)
        return 0
    if args.targets:
        load0 = os.getloadavg()[0]
        rows = targets(repeat=7)
        if not args.no_readme:
            replace_section(TARGETS_HEADING, targets_markdown(rows, (load0, os.getloadavg()[0])))
            print(f"wrote {README}")
        return 0
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    LOAD[0] = os.getloadavg()[0]
    if args.quick:
        sizes = {"mnist": 3000, "cifar": 2000, "imagenet": 30, "table": 50_000}
        repeat, keras_max = 1, 8 << 20
    else:
        sizes = {"mnist": 60000, "cifar": 50000, "imagenet": 1500, "table": 1_000_000}
        repeat, keras_max = 2, 48 << 20
    rows, extra, notes = [], [], set()
    mnist, src = mnist_like(sizes["mnist"], rng)
    notes.add(f"MNIST-like data: {src}.")
    notes.add(
        "Keras (torch backend) runs on the first samples of a large array only, as noted in its row; its "
        "throughput is that of the subset and its errors are against the subset's exact statistics."
    )
    notes.add("sklearn converts the whole array to float64 first, which is where its memory goes.")
    datasets = [
        ("MNIST-like, per channel", lambda: mnist, "channel"),
        ("CIFAR-like, per channel", lambda: images(sizes["cifar"], 32, 32, rng), "channel"),
        ("ImageNet slice, per channel", lambda: images(sizes["imagenet"], 224, 224, rng), "channel"),
        (
            "Wide-scale float64 table (means 1 … 1e13, stds 0.01 … 100), per feature",
            lambda: wide_table(sizes["table"], rng),
            "feature",
        ),
    ]
    cifar = None
    for name, make, per in datasets:
        x = make()
        print(f"{name}: {x.shape} {x.dtype} ({x.nbytes / 1e6:.0f} MB)", flush=True)
        ref = exact_uint8(x) if x.dtype == np.uint8 else exact_table(x)
        bench_dataset(name, x, ref, per, repeat, keras_max, rows, notes)
        if name.startswith("CIFAR"):
            cifar = x
        if name.startswith("ImageNet"):
            print("extras:", flush=True)
            table = wide_table(sizes["table"], np.random.default_rng(1))
            bench_extra(x, table, repeat, extra)
            del table
        if x is not cifar and x is not mnist:
            del x
        gc.collect()
    section = markdown(rows, extra, notes, args, time.perf_counter() - t0)
    if not (args.quick or args.no_readme):
        replace_section("## Statistics engine", section)
        print(f"wrote {README}")
    else:
        print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
