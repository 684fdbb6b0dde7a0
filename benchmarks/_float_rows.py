"""The float rows of ``bench_stats.py --float``: float moments and quantiles against their anchors, one run.

On the issue's wide-scale table (``(n, 20)`` float64, column means 0.3 … 3e12, stds 0.01 … 15, log-spaced)
and its float32 copy, side by side: normlab (numba and NumPy engines), the batched torch float64
sum/sum-of-squares recipe users copy (1024-row batches, 2 threads), NumPy naive float64, scikit-learn
``StandardScaler.partial_fit`` and ``np.add.reduce`` over the same bytes (the read speed); then float
quantiles, normlab's (``quantiles=True``) against ``np.quantile``. Each row: best and median GB/s of input,
peak extra memory, and the std's largest relative error against ``math.fsum`` references.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import warnings

import numpy as np

from normlab.core.stats import StatsAccumulator

HEADING = "## Float statistics against the anchors (`bench_stats.py --float`)"


def issue_table(n: int, rng) -> np.ndarray:
    means = np.logspace(np.log10(0.3), np.log10(3e12), 20)
    stds = np.logspace(-2, np.log10(15), 20)
    return means + stds * rng.standard_normal((n, 20))


def torch_recipe(x: np.ndarray):
    """Running float64 sum and sum of squares over 1024-row batches (the recipe; 2 threads)."""
    import torch

    torch.set_num_threads(2)
    t = torch.from_numpy(x)
    s = torch.zeros(x.shape[1], dtype=torch.float64)
    q = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, x.shape[0], 1024):
        b = t[i : i + 1024].to(torch.float64)
        s += b.sum(0)
        q += (b * b).sum(0)
    n = x.shape[0]
    mean = (s / n).numpy()
    return mean, np.sqrt(np.maximum((q / n).numpy() - mean**2, 0.0))


def _normlab(engine: str):
    def fit(x):
        os.environ["NORMLAB_ENGINE"] = engine
        try:
            acc = StatsAccumulator(x.shape[1]).update(x.reshape(-1, x.shape[1], 1))
        finally:
            os.environ.pop("NORMLAB_ENGINE", None)
        return acc.mean, acc.std

    return fit


def _sklearn(x):
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().partial_fit(x)
    return sc.mean_, np.sqrt(sc.var_)


def _naive(x):
    y = x.astype(np.float64)
    return y.mean(axis=0), y.std(axis=0)


def _read(x):
    return np.add.reduce(x.reshape(-1)), None


def _timed(fn, x, repeat: int):
    fn(x[: max(2, x.shape[0] // 100)])  # warm up (numba compilation, torch set-up)
    walls, out = [], None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = fn(x)
        walls.append(time.perf_counter() - t)
    return min(walls), statistics.median(walls), out


def _std_error(std: np.ndarray, ref: np.ndarray) -> float:
    """Largest relative error over the columns with a spread (float32 rounds the widest ones to constants:
    there any nonzero std is an error, reported as its size relative to 1)."""
    spread = ref > 0
    rel = np.abs(std[spread] - ref[spread]) / ref[spread]
    flat = np.abs(std[~spread])
    return float(max(rel.max(initial=0.0), flat.max(initial=0.0)))


def moments_rows(x: np.ndarray, ref_std: np.ndarray, repeat: int, peak_extra) -> list[tuple]:
    """``(label, best GB/s, median GB/s, peak MB, std rel. error)`` per method on ``x``."""
    methods = [
        ("normlab (numba)", _normlab("numba")),
        ("normlab (NumPy only)", _normlab("numpy")),
        ("torch f64 sum/sumsq recipe, 1024-row batches, 2 threads", torch_recipe),
        ("NumPy naive float64", _naive),
        ("sklearn StandardScaler.partial_fit", _sklearn),
        ("np.add.reduce over the same bytes (read speed, 1 thread)", _read),
    ]
    rows = []
    for label, fn in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best, med, (_, std) = _timed(fn, x, repeat)
            mem = peak_extra(lambda fn=fn: fn(x))
        err = float("nan") if std is None else _std_error(std, ref_std)
        rows.append((label, x.nbytes / best / 1e9, x.nbytes / med / 1e9, mem, err))
        print(f"  {label:<58} {rows[-1][1]:7.2f} GB/s (median {rows[-1][2]:.2f}) {mem:8.1f} MB  "
              f"std {err:.1e}", flush=True)  # fmt: skip
    return rows


def _quantiles_of(engine: str | None, qs: np.ndarray, stream: bool):
    """``normlab.stats`` of the table (exact selection), or of a one-shot stream of it (sketch)."""
    import normlab

    def fit(data):
        if engine:
            os.environ["NORMLAB_ENGINE"] = engine
        try:
            src = (data[i : i + 100_000] for i in range(0, len(data), 100_000)) if stream else data
            s = normlab.stats(src, per="feature", quantiles=tuple(qs))
        finally:
            os.environ.pop("NORMLAB_ENGINE", None)
        return np.stack([s.quantiles[q] for q in qs]), s.quantile_rank_error

    return fit


def quantile_rows(x: np.ndarray, repeat: int, peak_extra) -> list[tuple]:
    """normlab's float quartiles (moments included) against ``np.quantile`` on the same in-memory table:
    exact selection on the array (numba and NumPy engines), and the sketch of a one-shot stream."""
    qs = np.array([0.25, 0.5, 0.75])

    def npq(data):
        return np.quantile(data, qs, axis=0), 0.0

    methods = [
        ("normlab.stats(X), exact selection (numba)", _quantiles_of("numba", qs, False)),
        ("normlab.stats(X), exact selection (NumPy only)", _quantiles_of("numpy", qs, False)),
        ("normlab.stats(stream of 100k-row batches), sketch", _quantiles_of(None, qs, True)),
        ("np.quantile (sorts in memory)", npq),
    ]
    rows = []
    truth = np.sort(x[:, 0])
    for label, fn in methods:
        best, med, (est, bound) = _timed(fn, x, max(1, repeat // 2))
        mem = peak_extra(lambda fn=fn: fn(x))
        pos = qs * (truth.size - 1)  # the true rank error of column 0's answers
        lo, hi = np.searchsorted(truth, est[:, 0], "left"), np.searchsorted(truth, est[:, 0], "right")
        err = float(np.max(np.maximum(0, np.maximum(lo - pos, pos - hi)))) / truth.size
        rows.append((f"{label} (stated bound {bound:.1e})" if bound else label,
                     x.nbytes / best / 1e9, x.nbytes / med / 1e9, mem, err))
        print(f"  {label:<58} {rows[-1][1]:7.2f} GB/s (median {rows[-1][2]:.2f}) {mem:8.1f} MB  "
              f"rank error {err:.1e}", flush=True)  # fmt: skip
    return rows


def markdown(tables: list[tuple], load: tuple[float, float], repeat: int) -> str:
    lines = [
        HEADING,
        "",
        f"Best and median of {repeat} runs per row (quantiles: of {max(1, repeat // 2)}), all rows in one run; "
        f"load average {load[0]:.1f} at the start and {load[1]:.1f} at the end (2 cores, shared with other "
        "jobs: compare rows of the same run). `× torch` is the row's best throughput over the torch recipe's; "
        "`× read` over `np.add.reduce`'s. Errors: the std's largest relative error over the columns against "
        "`math.fsum` references; for quantiles, the true rank error of column 0's quartiles.",
        "",
    ]
    for title, rows, err_name in tables:
        torch_best = next((r[1] for r in rows if r[0].startswith("torch")), None)
        read_best = next((r[1] for r in rows if r[0].startswith("np.add.reduce")), None)
        lines += [f"### {title}", "",
                  f"| method | best GB/s | median GB/s | × torch | × read | peak extra MB | {err_name} |",
                  "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for label, best, med, mem, err in rows:
            xt = f"{best / torch_best:.2f}" if torch_best else "–"
            xr = f"{best / read_best:.2f}" if read_best else "–"
            es = "–" if err != err else f"{err:.1e}"
            lines.append(f"| {label} | {best:.2f} | {med:.2f} | {xt} | {xr} | {mem:.1f} | {es} |")
        lines.append("")
    return "\n".join(lines)


def run(n: int, repeat: int, peak_extra, exact_table) -> str:
    load0 = os.getloadavg()[0]
    x = issue_table(n, np.random.default_rng(0))
    tables = []
    for dtype in (np.float64, np.float32):
        xd = x.astype(dtype)
        print(f"wide-scale table {xd.shape} {xd.dtype} ({xd.nbytes / 1e6:.0f} MB)", flush=True)
        ref = exact_table(xd.astype(np.float64))[1]
        title = f"Moments, wide-scale table {xd.shape} {xd.dtype}, {xd.nbytes / 1e6:.0f} MB"
        tables.append((title, moments_rows(xd, ref, repeat, peak_extra), "std rel. error"))
    print("quantiles", flush=True)
    title = f"Quartiles, wide-scale table {x.shape} float64"
    tables.append((title, quantile_rows(x, repeat, peak_extra), "rank error"))
    return markdown(tables, (load0, os.getloadavg()[0]), repeat)
