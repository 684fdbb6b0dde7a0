"""Statistics over seeds: means, bootstrap intervals, paired tests against the baseline, Holm correction.

The primary metric is the final validation accuracy (higher is better); the same functions serve the
validation loss with ``higher_is_better=False``. Runs are paired across methods by their
``(init seed, order seed)``: replicate *k* of every method starts from the same weights and sees the
batches in the same order, so a paired test removes the run-to-run variance the methods share.

* **Bootstrap CI**: percentile interval of the mean over ``n_resamples`` resamples (fixed seed, so the
  report is reproducible).
* **Paired t-test** (``scipy.stats.ttest_rel``) and **Wilcoxon signed-rank** (``scipy.stats.wilcoxon``,
  zero differences dropped) on ``method - baseline``; p-values two-sided.
* **Holm** step-down correction over the methods compared with one baseline (one family per model and
  test).
* **Probability of improvement** ``P(X > Y)`` as in Agarwal et al. (2021, "Deep reinforcement learning at
  the edge of the statistical precipice"): over all pairs of a method's run and a baseline run, the share
  in which the method is better, ties counting one half.

Diverged runs have no final metric: they are counted, and left out of every mean, interval and test.
Stalled runs trained to the end: they are counted (``n_stalled``) *and* kept in every statistic, since a
stalled run's accuracy is what the user of that setup gets.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "bootstrap_ci",
    "holm",
    "paired_tests",
    "probability_of_improvement",
    "spread_test",
    "summarize",
    "summarize_curves",
]

#: The statuses of runs that trained to the end (a diverged run was stopped).
FINISHED = ("done", "stalled")

METRICS = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "grad_norm_mean",
    "grad_norm_max",
    "seconds",
    "zero_grad_frac",
    "saturated_frac",
    "n_pred_classes",
)


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    >>> bootstrap_ci([0.5, 0.5, 0.5])
    (0.5, 0.5)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    if v.size == 1 or np.all(v == v[0]):
        return (float(v[0]), float(v[0]))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_resamples, v.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def paired_tests(method: Sequence[float], baseline: Sequence[float]) -> dict[str, float]:
    """Paired t-test and Wilcoxon signed-rank test of ``method - baseline`` (equal-length, paired).

    Returns ``n_pairs``, ``diff_mean``, ``t_stat``, ``t_p``, ``wilcoxon_stat``, ``wilcoxon_p``. With fewer
    than two pairs the tests are NaN. Differences that are all equal give the tests' limits: all zero ->
    statistic 0, p = 1; a constant non-zero difference -> t = ±inf, p = 0 (Wilcoxon keeps its exact p).

    >>> r = paired_tests([0.9, 0.8, 0.85], [0.8, 0.7, 0.8])
    >>> round(r["diff_mean"], 4), round(r["t_p"], 4)
    (0.0833, 0.0377)
    """
    a = np.asarray(method, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length; got {a.size} and {b.size}.")
    d = a - b
    out = {
        "n_pairs": float(d.size),
        "diff_mean": float(d.mean()) if d.size else math.nan,
        "t_stat": math.nan,
        "t_p": math.nan,
        "wilcoxon_stat": math.nan,
        "wilcoxon_p": math.nan,
    }
    if d.size < 2:
        return out
    from scipy import stats

    if np.all(d == d[0]):
        out["t_stat"] = 0.0 if d[0] == 0 else math.copysign(math.inf, d[0])
        out["t_p"] = 1.0 if d[0] == 0 else 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = stats.ttest_rel(a, b)
        out["t_stat"], out["t_p"] = float(t.statistic), float(t.pvalue)
    if np.all(d == 0):
        out["wilcoxon_stat"], out["wilcoxon_p"] = 0.0, 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        out["wilcoxon_stat"], out["wilcoxon_p"] = float(w.statistic), float(w.pvalue)
    return out


def spread_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Brown–Forsythe test that two samples have the same spread (Levene's test about the medians).

    Returns ``std_a``, ``std_b`` (ddof 1), the statistic ``W`` and its p-value; NaN with fewer than two
    values in a sample, and ``p = 1`` when neither sample varies.

    >>> r = spread_test([0.90, 0.91, 0.89, 0.90], [0.80, 0.95, 0.70, 0.99])
    >>> round(r["std_a"], 4), round(r["std_b"], 4), r["p"] < 0.05
    (0.0082, 0.1344, True)
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    out = {"std_a": _mean_std(x)[1], "std_b": _mean_std(y)[1], "W": math.nan, "p": math.nan}
    if x.size < 2 or y.size < 2:
        return out
    if np.all(x == x[0]) and np.all(y == y[0]):
        out["W"], out["p"] = 0.0, 1.0
        return out
    from scipy import stats

    r = stats.levene(x, y, center="median")
    out["W"], out["p"] = float(r.statistic), float(r.pvalue)
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaN entries stay NaN and do not count in the family).

    ``p_adj(i) = max over j <= i of min(1, (m - j + 1) p(j))`` for the p-values sorted ascending.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(round(v, 15)) if np.isfinite(v) else math.nan for v in out]


def probability_of_improvement(
    method: Sequence[float], baseline: Sequence[float], *, higher_is_better: bool = True
) -> float:
    """``P(X > Y)``: the share of (method run, baseline run) pairs in which the method is better.

    Ties count one half (the Mann–Whitney U statistic divided by ``n * m``).

    >>> probability_of_improvement([0.9, 0.8], [0.8, 0.7])
    0.875
    """
    x = np.asarray(method, dtype=np.float64)[:, None]
    y = np.asarray(baseline, dtype=np.float64)[None, :]
    if x.size == 0 or y.size == 0:
        return math.nan
    if not higher_is_better:
        x, y = -x, -y
    return float(((x > y) + 0.5 * (x == y)).mean())


def _mean_std(v: np.ndarray) -> tuple[float, float]:
    if v.size == 0:
        return (math.nan, math.nan)
    return (float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan)


def summarize(
    runs: list[dict[str, Any]],
    epochs: list[dict[str, Any]],
    *,
    baseline: str,
    methods: Sequence[str],
    models: Sequence[str],
    metric: str = "val_acc",
) -> list[dict[str, Any]]:
    """One row per (model, method): final/best validation metrics over seeds, CI, tests vs ``baseline``.

    ``runs`` and ``epochs`` are the store's rows (``ResultStore.runs()``, ``ResultStore.epochs()``).
    """
    higher = metric.endswith("acc")
    per_run: dict[str, list[dict[str, Any]]] = {}
    for e in epochs:
        per_run.setdefault(_key(e), []).append(e)
    final: dict[tuple[str, str], dict[tuple[int, int], dict[str, float]]] = {}
    diverged: dict[tuple[str, str], int] = {}
    stalled: dict[tuple[str, str], int] = {}
    secs: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        group = (r["model"], r["method"])
        eps = sorted(per_run.get(_key(r), []), key=lambda e: e["epoch"])
        secs.setdefault(group, []).extend(e["seconds"] for e in eps if e["seconds"] is not None)
        if r["status"] == "diverged" or not eps:
            diverged[group] = diverged.get(group, 0) + 1
            continue
        if r["status"] == "stalled":
            stalled[group] = stalled.get(group, 0) + 1
        va = [_f(e["val_acc"]) for e in eps]
        vl = [_f(e["val_loss"]) for e in eps]
        final.setdefault(group, {})[(r["init_seed"], r["order_seed"])] = {
            "final_val_acc": va[-1],
            "best_val_acc": float(np.nanmax(va)),
            "final_val_loss": vl[-1],
            "best_val_loss": float(np.nanmin(vl)),
            "final_train_acc": _f(eps[-1]["train_acc"]),
            "final_train_loss": _f(eps[-1]["train_loss"]),
        }
    primary = f"final_{metric}"
    rows: list[dict[str, Any]] = []
    for model in models:
        base = final.get((model, baseline), {})
        model_rows = []
        for method in methods:
            group = (model, method)
            res = final.get(group, {})
            n_div = diverged.get(group, 0)
            row: dict[str, Any] = {
                "model": model,
                "method": method,
                "n_runs": len(res) + n_div,
                "n_diverged": n_div,
                "n_stalled": stalled.get(group, 0),
            }
            for name in (
                "final_val_acc",
                "best_val_acc",
                "final_val_loss",
                "best_val_loss",
                "final_train_acc",
            ):
                v = np.array([r[name] for r in res.values()], dtype=np.float64)
                row[f"{name}_mean"], row[f"{name}_std"] = _mean_std(v[np.isfinite(v)])
            values = [r[primary] for r in res.values()]
            row["ci_low"], row["ci_high"] = bootstrap_ci(values)
            s = np.array(secs.get(group, []), dtype=np.float64)
            row["seconds_per_epoch"] = (
                float(np.median(s)) if s.size else math.nan
            )  # robust to warm-up
            row["baseline"] = baseline
            pairs = sorted(set(res) & set(base))
            if method == baseline:
                row.update(
                    n_pairs=float(len(pairs)),
                    diff_mean=0.0,
                    t_stat=math.nan,
                    t_p=math.nan,
                    wilcoxon_stat=math.nan,
                    wilcoxon_p=math.nan,
                    p_improvement=math.nan,
                )
            else:
                a = [res[k][primary] for k in pairs]
                b = [base[k][primary] for k in pairs]
                row.update(paired_tests(a, b))
                row["p_improvement"] = probability_of_improvement(
                    values, [r[primary] for r in base.values()], higher_is_better=higher
                )
            model_rows.append(row)
        for test in ("t_p", "wilcoxon_p"):
            adjusted = holm([r[test] for r in model_rows])
            for r, p in zip(model_rows, adjusted, strict=True):
                r[f"{test}_holm"] = p
        rows += model_rows
    return rows


def summarize_curves(
    runs: list[dict[str, Any]], epochs: list[dict[str, Any]]
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Per (model, method) and metric: ``epoch``, ``<metric>_mean``, ``<metric>_std`` and ``n`` arrays.

    Only runs that trained to the end (done or stalled, not diverged) contribute, each epoch averaged over
    the runs that reached it.
    """
    done = {_key(r) for r in runs if r["status"] in FINISHED}
    groups: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for e in epochs:
        if _key(e) in done:
            groups.setdefault((e["model"], e["method"]), {}).setdefault(e["epoch"], []).append(e)
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for group, by_epoch in groups.items():
        ep = sorted(by_epoch)
        d: dict[str, np.ndarray] = {
            "epoch": np.array(ep),
            "n": np.array([len(by_epoch[k]) for k in ep]),
        }
        for m in METRICS:
            means, stds = [], []
            for k in ep:
                v = np.array([_f(r.get(m)) for r in by_epoch[k]], dtype=np.float64)
                v = v[np.isfinite(v)]
                mean, std = _mean_std(v)
                means.append(mean)
                stds.append(0.0 if math.isnan(std) else std)
            d[f"{m}_mean"], d[f"{m}_std"] = np.array(means), np.array(stds)
        out[group] = d
    return out


def _key(r: dict[str, Any]) -> tuple[str, str, int, int]:
    return (r["model"], r["method"], r["init_seed"], r["order_seed"])


def _f(v: Any) -> float:
    return math.nan if v is None else float(v)
