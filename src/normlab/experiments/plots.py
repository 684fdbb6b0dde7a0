"""The report's figures (matplotlib's Agg canvas: no display, no pyplot state).

* ``curves.png``: one panel per metric (loss, accuracy, gradient norm, share of training samples with
  zero gradient), one row per model; train (dashed) and validation (solid) for every method, mean ± std
  over seeds as error bars; every stalled run drawn on its own, in ``STALL_COLOR`` (dotted, crosses).
* ``final.png``: the final validation accuracy of every run as a dot, per method; the mean as a bar and
  its 95 % bootstrap interval as a line; stalled runs as ``STALL_COLOR`` squares (they count in the
  mean); diverged runs as red crosses at the bottom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from normlab._files import atomic_path

__all__ = ["STALL_COLOR", "plot_curves", "plot_final"]

#: The colour of stalled runs in every figure (no method gets it: methods use the tab10 colours).
STALL_COLOR = "black"


def _pyplot() -> Any:
    # A bare Figure renders with the Agg canvas: no pyplot, no display, no global backend switch.
    from matplotlib.figure import Figure

    return Figure


def _text(s: str) -> str:
    """User-provided text for matplotlib: a ``$`` must not start mathtext."""
    return str(s).replace("$", r"\$")


def _colors(methods: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _wide_range(values: list[np.ndarray]) -> bool:
    v = np.concatenate([np.ravel(a) for a in values]) if values else np.array([])
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 0 and v.max() / v.min() > 50


def plot_curves(
    curves: dict[tuple[str, str], dict[str, np.ndarray]],
    models: Sequence[str],
    methods: Sequence[str],
    path: Path,
    *,
    title: str = "",
    stalled: dict[tuple[str, str], list[dict[str, np.ndarray]]] | None = None,
) -> Path:
    """Draw learning curves (mean ± std over seeds) and save them to ``path``.

    ``stalled[(model, method)]`` lists the epoch arrays (``epoch`` and every metric) of each stalled run,
    drawn one by one over the means.
    """
    figure_cls = _pyplot()
    colors = _colors(methods)
    panels = [
        ("loss", "loss"),
        ("acc", "accuracy"),
        ("grad_norm_mean", "gradient norm (mean per step)"),
        ("zero_grad_frac", "training samples with zero gradient"),
    ]
    single = ("grad_norm_mean", "zero_grad_frac")  # one series (no train/val pair)
    fig = figure_cls(figsize=(20, 4.4 * len(models) + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(len(models), len(panels), squeeze=False)
    n_methods = max(1, len(methods))
    for row, model in enumerate(models):
        for col, (metric, label) in enumerate(panels):
            ax = axes[row][col]
            drawn: list[np.ndarray] = []
            for i, method in enumerate(methods):
                c = curves.get((model, method))
                if c is None:
                    continue
                shift = (i - (n_methods - 1) / 2) * 0.04  # keep overlapping error bars apart
                ep = c["epoch"] + shift
                series = (
                    [("val", "-", "o")]
                    if metric in single
                    else [("train", "--", None), ("val", "-", "o")]
                )
                for split, style, marker in series:
                    key = metric if metric in single else f"{split}_{metric}"
                    mean, std = c[f"{key}_mean"], c[f"{key}_std"]
                    drawn.append(mean)
                    name = method if metric in single else f"{method} ({split})"
                    ax.errorbar(
                        ep,
                        mean,
                        yerr=std,
                        color=colors[method],
                        linestyle=style,
                        marker=marker,
                        markersize=3,
                        capsize=2.5,
                        linewidth=1.4,
                        elinewidth=0.9,
                        label=name,
                    )
            key = metric if metric in single else f"val_{metric}"
            _draw_stalled(ax, [r for m in methods for r in (stalled or {}).get((model, m), [])], key)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            if metric in ("loss", "grad_norm_mean") and _wide_range(drawn):
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            heading = label if len(models) == 1 else f"{_text(model)}: {label}"
            ax.set_title(heading, fontsize=11)
            if drawn:
                ax.xaxis.get_major_locator().set_params(integer=True)
            if col == 0 and drawn:
                ax.legend(fontsize=8, ncol=1 if n_methods <= 4 else 2)
    if title:
        fig.suptitle(
            _text(title) + "  (mean ± std over seeds; dashed: train, solid: validation)",
            fontsize=12,
        )
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    return path


def _draw_stalled(ax: Any, runs: list[dict[str, np.ndarray]], key: str) -> None:
    """Every stalled run's ``key`` per epoch, in ``STALL_COLOR``; one legend entry for all of them."""
    for i, run in enumerate(runs):
        ax.plot(run["epoch"], run[key], color=STALL_COLOR, linestyle=":", marker="x", markersize=4,
                linewidth=1.0, label=f"stalled runs ({len(runs)})" if i == 0 else None)  # fmt: skip


def plot_final(
    rows: list[dict[str, Any]],
    finals: dict[tuple[str, str], list[tuple[float, str]]],
    models: Sequence[str],
    methods: Sequence[str],
    path: Path,
    *,
    metric_label: str = "final validation accuracy",
    title: str = "",
) -> Path:
    """Draw every run's final metric per method (dots), the mean (bar) and its 95 % CI; save to ``path``.

    ``finals[(model, method)]`` is a list of ``(value, status)`` for every run (``status`` "diverged" are
    drawn as crosses at the bottom of the panel).
    """
    figure_cls = _pyplot()
    colors = _colors(methods)
    width = max(6.0, 1.3 * len(methods) + 2)
    fig = figure_cls(figsize=(width * len(models), 4.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    by_group = {(r["model"], r["method"]): r for r in rows}
    for ax, model in zip(axes, models, strict=True):
        done_values = [
            v
            for m in methods
            for v, s in finals.get((model, m), [])
            if s in ("done", "stalled") and math.isfinite(v)
        ]
        # diverged runs are drawn as crosses below every finished run (at 0 when none finished)
        if done_values:
            floor, span = min(done_values), max(done_values) - min(done_values)
            bottom = floor - 0.08 * max(span, 0.01)
        else:
            bottom = 0.0
            ax.set_ylim(-0.05, 1.0)
        for i, method in enumerate(methods):
            pts = finals.get((model, method), [])
            ok = [v for v, s in pts if s == "done" and math.isfinite(v)]
            stuck = [v for v, s in pts if s == "stalled" and math.isfinite(v)]
            bad = [v for v, s in pts if not (s in ("done", "stalled") and math.isfinite(v))]
            jitter = np.linspace(-0.12, 0.12, len(ok)) if len(ok) > 1 else np.zeros(len(ok))
            ax.scatter(
                i + jitter,
                ok,
                s=28,
                color=colors[method],
                edgecolor="black",
                linewidth=0.5,
                zorder=3,
            )
            if stuck:
                ax.scatter(i + np.linspace(-0.1, 0.1, len(stuck)) if len(stuck) > 1 else [i], stuck,
                           marker="s", s=30, color=STALL_COLOR, zorder=3)  # fmt: skip
                ax.annotate(f"{len(stuck)} stalled", (i, min(stuck)), textcoords="offset points",
                            xytext=(0, -12), ha="center", fontsize=8, color=STALL_COLOR)  # fmt: skip
            if bad:
                ax.scatter(
                    i + np.linspace(-0.1, 0.1, len(bad)) if len(bad) > 1 else [i],
                    [bottom] * len(bad),
                    marker="x",
                    s=40,
                    color="crimson",
                    zorder=3,
                )
                ax.annotate(
                    f"{len(bad)} diverged",
                    (i, bottom),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    fontsize=8,
                    color="crimson",
                )
            r = by_group.get((model, method))
            if r is not None and math.isfinite(r.get("final_val_acc_mean", math.nan)):
                ax.hlines(
                    r["final_val_acc_mean"],
                    i - 0.25,
                    i + 0.25,
                    color="black",
                    linewidth=2,
                    zorder=4,
                )
                if math.isfinite(r["ci_low"]):
                    ax.vlines(
                        i + 0.3, r["ci_low"], r["ci_high"], color="gray", linewidth=2.5, zorder=2
                    )
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(
            methods,
            rotation=20 if len(methods) > 4 else 0,
            ha="right" if len(methods) > 4 else "center",
        )
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylabel(metric_label)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_title(_text(model) if len(models) > 1 else metric_label, fontsize=11)
    if title:
        fig.suptitle(
            _text(title) + "\n(dots: runs; bar: mean; gray: 95 % bootstrap CI)", fontsize=11
        )
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    return path
