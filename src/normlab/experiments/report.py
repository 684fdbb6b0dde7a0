"""The run folder's report: CSV tables, figures and one self-contained HTML page.

Everything is rebuilt from the SQLite store, so ``normlab report RUNDIR`` reproduces the files at any time
(also from a sweep that is still missing runs). The HTML page inlines its images as base64 ``data:`` URIs
and its style sheet, loads nothing from the network and runs no script; every name that comes from the
user (dataset, method, model, paths) is escaped.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from normlab._files import atomic_write_text
from normlab.experiments.aggregate import spread_test, summarize, summarize_curves
from normlab.experiments.plots import plot_curves, plot_final
from normlab.experiments.store import ResultStore
from normlab.experiments.train import EPOCH_FIELDS

__all__ = ["SUMMARY_COLUMNS", "build_report", "format_table"]

SUMMARY_COLUMNS = (
    "model", "method", "n_runs", "n_diverged", "n_stalled",
    "final_val_acc_mean", "final_val_acc_std", "ci_low", "ci_high",
    "best_val_acc_mean", "best_val_acc_std",
    "final_val_loss_mean", "final_val_loss_std", "best_val_loss_mean", "best_val_loss_std",
    "final_train_acc_mean", "final_train_acc_std", "seconds_per_epoch",
    "baseline", "n_pairs", "diff_mean", "t_stat", "t_p", "t_p_holm",
    "wilcoxon_stat", "wilcoxon_p", "wilcoxon_p_holm", "p_improvement",
)  # fmt: skip


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return (
            f"{v:.{digits}g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.{digits}f}"
        )
    return str(v)


def _pm(mean: float, std: float) -> str:
    """``mean ± std`` with one format for both (4 decimals; 4 significant digits when large)."""
    if mean is None or math.isnan(mean):
        return "–"

    def f(v: float) -> str:
        return f"{v:.4g}" if abs(mean) >= 1e4 else f"{v:.4f}"

    return f"{f(mean)} ± {f(std)}" if not math.isnan(std) else f(mean)


def _p(v: float) -> str:
    if v is None or math.isnan(v):
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def table_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The summary as display strings: header and one list per (model, method)."""
    header = [
        "model",
        "method",
        "runs",
        "diverged",
        "stalled",
        "final val acc",
        "95% CI",
        "best val acc",
        "final val loss",
        "s/epoch",
        "Δ vs baseline",
        "p t (Holm)",
        "p Wilcoxon (Holm)",
        "P(improve)",
    ]
    body = []
    for r in rows:
        is_base = r["method"] == r["baseline"]
        ci = "–" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        body.append(
            [
                r["model"],
                r["method"] + (" (baseline)" if is_base else ""),
                str(r["n_runs"]),
                str(r["n_diverged"]),
                str(r["n_stalled"]),
                _pm(r["final_val_acc_mean"], r["final_val_acc_std"]),
                ci,
                _pm(r["best_val_acc_mean"], r["best_val_acc_std"]),
                _pm(r["final_val_loss_mean"], r["final_val_loss_std"]),
                _fmt(r["seconds_per_epoch"], 3) if not math.isnan(r["seconds_per_epoch"]) else "–",
                ""
                if is_base
                else (f"{r['diff_mean']:+.4f}" if not math.isnan(r["diff_mean"]) else "–"),
                "" if is_base else _p(r["t_p_holm"]),
                "" if is_base else _p(r["wilcoxon_p_holm"]),
                ""
                if is_base
                else (_fmt(r["p_improvement"], 2) if not math.isnan(r["p_improvement"]) else "–"),
            ]
        )
    return header, body


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a plain-text table (what ``normlab compare`` prints)."""
    header, body = table_rows(rows)
    if len({r["model"] for r in rows}) == 1:
        header, body = header[1:], [b[1:] for b in body]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    return "\n".join(lines)


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(columns)
    for r in rows:
        w.writerow(
            [
                ""
                if r.get(c) is None or (isinstance(r.get(c), float) and math.isnan(r[c]))
                else (repr(r[c]) if isinstance(r[c], float) else r[c])
                for c in columns
            ]
        )
    atomic_write_text(path, text.getvalue())


def build_report(
    store: ResultStore, rundir: Path, *, baseline: str | None = None, write: bool = True
) -> dict[str, Any]:
    """Write summary.csv, epochs.csv, config.json, curves.png, final.png and report.html into ``rundir``.

    Returns ``{"rows": summary rows, "report": path of report.html, "n_runs": finished runs,
    "n_planned": planned runs}``. With ``write=False`` only the summary rows are computed.
    """
    rundir = Path(rundir)
    config = store.config()
    settings = json.loads(store.get_meta("settings") or "{}")
    models = list(config["models"])
    methods = list(config["methods"])
    baseline = baseline or settings.get("baseline") or methods[0]
    runs, epochs = store.runs(), store.epochs()
    rows = summarize(runs, epochs, baseline=baseline, methods=methods, models=models)
    n_planned = len(models) * len(methods) * len(config["seeds"]["pairs"])
    built = {
        "rows": rows,
        "report": rundir / "report.html",
        "n_runs": len(runs),
        "n_planned": n_planned,
    }
    if not write:
        return built
    curves = summarize_curves(runs, epochs)

    _write_csv(rundir / "summary.csv", SUMMARY_COLUMNS, rows)
    epoch_cols = ("model", "method", "init_seed", "order_seed", "status", "epoch", *EPOCH_FIELDS)
    _write_csv(rundir / "epochs.csv", epoch_cols, epochs)
    full = {"identity": config, "settings": settings, "config_hash": store.get_meta("config_hash")}
    atomic_write_text(rundir / "config.json", json.dumps(full, indent=2, sort_keys=True) + "\n")

    title = f"{config['data']['name']}: {', '.join(models)}"
    plot_curves(curves, models, methods, rundir / "curves.png", title=title,
                stalled=stalled_curves(runs, epochs))  # fmt: skip
    finals: dict[tuple[str, str], list[tuple[float, str]]] = {}
    by_run = {}
    for e in epochs:
        by_run[(e["model"], e["method"], e["init_seed"], e["order_seed"])] = (
            e  # ordered: last epoch wins
        )
    for r in runs:
        last = by_run.get((r["model"], r["method"], r["init_seed"], r["order_seed"]))
        v = math.nan if last is None or last["val_acc"] is None else float(last["val_acc"])
        finals.setdefault((r["model"], r["method"]), []).append((v, r["status"]))
    plot_final(rows, finals, models, methods, rundir / "final.png", title=title)

    extra = [*_stall_findings(runs), *spread_findings(finals, models, methods)]
    page = _html(config, settings, rows, runs, store.methods(), rundir, n_planned, baseline, extra)
    atomic_write_text(rundir / "report.html", page)
    return built


def stalled_curves(
    runs: Sequence[dict[str, Any]], epochs: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], list[dict[str, np.ndarray]]]:
    """Per (model, method): the per-epoch arrays of each stalled run (for :func:`plot_curves`)."""
    keys = {(r["model"], r["method"], r["init_seed"], r["order_seed"]) for r in runs if r["status"] == "stalled"}
    per_run: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    for e in epochs:
        k = (e["model"], e["method"], e["init_seed"], e["order_seed"])
        if k in keys:
            per_run.setdefault(k, []).append(e)
    out: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
    for k, eps in sorted(per_run.items()):
        arrays = {f: np.array([math.nan if e[f] is None else e[f] for e in eps], dtype=np.float64)
                  for f in ("epoch", *EPOCH_FIELDS)}  # fmt: skip
        out.setdefault(k[:2], []).append(arrays)
    return out


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1280px;
padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.sub{color:#555;margin-top:0}table{border-collapse:collapse;font-size:.86rem;margin:.6rem 0}
th,td{border:1px solid #d8d8d8;padding:.28rem .5rem;text-align:right;vertical-align:top}
td{white-space:nowrap}td.l{white-space:normal}
th{background:#f3f4f6}td.l,th.l{text-align:left}tr.base td{background:#f8fafc}
img{max-width:100%;height:auto;border:1px solid #eee}.warn{color:#a40000}.note{color:#555;font-size:.9rem}
code{background:#f3f4f6;padding:0 .25rem;border-radius:3px}ul.find li{margin:.25rem 0}
.stall{color:#000;background:#fde68a}tr.stalled td{background:#fde68a}tr.diverged td{background:#fee2e2}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _stall_findings(runs: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per (model, method) with stalled runs: how many, and what happened, in words."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        if r["status"] == "stalled":
            groups.setdefault((r["model"], r["method"]), []).append(r)
    total = {}
    for r in runs:
        total[(r["model"], r["method"])] = total.get((r["model"], r["method"]), 0) + 1
    return [
        f'<span class="stall">{_e(model)} / {_e(method)}: {len(rs)} of {total[(model, method)]} runs '
        f"stalled ({_e(rs[0]['reason'])}). A stalled run trained to the end but stopped learning: its "
        "softmax saturated, so the loss gave (almost) every sample exactly zero gradient and the weights "
        "stopped moving; it counts in the statistics with the accuracy it ended at.</span>"
        for (model, method), rs in groups.items()
    ]


def spread_findings(
    finals: dict[tuple[str, str], list[tuple[float, str]]], models: Sequence[str], methods: Sequence[str]
) -> list[str]:
    """Per method, whether each model's final accuracies spread more than the first model's (Brown–Forsythe)."""
    out = []
    for method in methods:
        ref = [v for v, s in finals.get((models[0], method), []) if s != "diverged"]
        for model in models[1:]:
            other = [v for v, s in finals.get((model, method), []) if s != "diverged"]
            r = spread_test(other, ref)
            if math.isnan(r["p"]):
                continue
            out.append(
                f"{_e(method)}: the spread of final validation accuracy over runs is {_fmt(r['std_a'])} (std) "
                f"with {_e(model)} against {_fmt(r['std_b'])} with {_e(models[0])} (Brown–Forsythe test of "
                f"equal spread, W = {_fmt(r['W'], 3)}, p = {_p(r['p'])}; {len(other)} and {len(ref)} runs)."
            )
    return out


def _findings(rows: Sequence[dict[str, Any]], baseline: str) -> list[str]:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mrows = [r for r in rows if r["model"] == model]
        ranked = sorted(
            (r for r in mrows if not math.isnan(r["final_val_acc_mean"])),
            key=lambda r: -r["final_val_acc_mean"],
        )
        if ranked:
            best = ranked[0]
            out.append(
                f"<b>{_e(model)}</b>: highest mean final validation accuracy with <b>{_e(best['method'])}</b> "
                f"({_pm(best['final_val_acc_mean'], best['final_val_acc_std'])} over "
                f"{best['n_runs'] - best['n_diverged']} runs)."
            )
        for r in mrows:
            if r["method"] == baseline:
                continue
            if r["n_diverged"]:
                out.append(
                    f'<span class="warn">{_e(model)} / {_e(r["method"])}: {r["n_diverged"]} of '
                    f"{r['n_runs']} runs diverged.</span>"
                )
            p = r["t_p_holm"]
            if not math.isnan(p) and p < 0.05:
                word = "better" if r["diff_mean"] > 0 else "worse"
                out.append(
                    f"{_e(model)} / {_e(r['method'])} is {word} than {_e(baseline)} by {abs(r['diff_mean']):.4f} "
                    f"accuracy (paired t-test, Holm-adjusted p = {_p(p)}; Wilcoxon {_p(r['wilcoxon_p_holm'])}; "
                    f"P(improvement) = {_fmt(r['p_improvement'], 2)})."
                )
        base = next((r for r in mrows if r["method"] == baseline), None)
        if base is not None and base["n_diverged"]:
            out.append(
                f'<span class="warn">{_e(model)} / {_e(baseline)} (baseline): {base["n_diverged"]} of '
                f"{base['n_runs']} runs diverged.</span>"
            )
    return out


def _html(
    config: dict[str, Any],
    settings: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    runs: Sequence[dict[str, Any]],
    methods_info: dict[str, tuple[str, list[str]]],
    rundir: Path,
    n_planned: int,
    baseline: str,
    extra: Sequence[str] = (),
) -> str:
    data = config["data"]
    header, body = table_rows(rows)
    thead = "".join(
        f'<th class="{"l" if i < 2 else ""}">{_e(h)}</th>' for i, h in enumerate(header)
    )
    tbody = "".join(
        f'<tr class="{"base" if r["method"] == baseline else ""}">'
        + "".join(f'<td class="{"l" if i < 2 else ""}">{_e(c)}</td>' for i, c in enumerate(b))
        + "</tr>"
        for r, b in zip(rows, body, strict=True)
    )
    seeds = config["seeds"]
    missing = n_planned - len(runs)
    status = (
        f'<p class="warn">{missing} of {n_planned} planned runs are missing: run the same command again to '
        "finish the sweep.</p>"
        if missing > 0
        else ""
    )
    findings = "".join(f"<li>{f}</li>" for f in [*_findings(rows, baseline), *extra])
    method_rows = "".join(
        f'<tr><td class="l">{_e(m)}</td><td class="l">{_e(methods_info.get(m, ("", []))[0])}</td>'
        f'<td class="l">{"<br>".join(_e(n) for n in methods_info.get(m, ("", []))[1]) or ""}</td></tr>'
        for m in config["methods"]
    )
    setting_items = {
        "dataset": f"{data['name']} ({settings.get('data_spec', '')})",
        "training samples": data["n_train"],
        "validation samples": f"{data['n_val']} ({data['validation']})",
        "sample shape, dtype": f"{tuple(data['sample_shape'])}, {data['dtype']}",
        "classes": data["n_classes"],
        "models": ", ".join(config["models"]),
        "optimizer": f"{config['optimizer']} (learning rate {config['lr']})",
        "batch size": config["batch_size"],
        "epochs": config["epochs"],
        "seeds": f"{seeds['design']}: init {seeds['init']}, order {seeds['order']}",
        "baseline": baseline,
        "device": settings.get("device", ""),
        "workers × threads": (
            f"Dask cluster {settings['scheduler']}"
            if settings.get("scheduler")
            else f"{settings.get('workers', '')} × {settings.get('threads', '')}"
        ),
        "versions": ", ".join(f"{k} {v}" for k, v in settings.get("versions", {}).items()),
        "configuration hash": settings.get("config_hash", ""),
        "run folder": str(rundir),
    }
    config_rows = "".join(
        f'<tr><th class="l">{_e(k)}</th><td class="l">{_e(v)}</td></tr>'
        for k, v in setting_items.items()
    )
    run_rows = "".join(
        f'<tr class="{_e(r["status"])}"><td class="l">{_e(r["model"])}</td><td class="l">{_e(r["method"])}</td><td>{r["init_seed"]}</td>'
        f'<td>{r["order_seed"]}</td><td class="l">{_e(r["status"])}</td><td>{r["epochs_done"]}</td>'
        f'<td>{r["seconds"]:.1f}</td><td class="l">{_e(r["reason"])}</td></tr>'
        for r in runs
    )
    title = f"normlab compare: {data['name']} · {', '.join(config['models'])}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">{len(config["methods"])} normalization methods × {len(seeds["pairs"])} seeds × {config["epochs"]} epochs;
statistics fitted on the training split only. {len(runs)} of {n_planned} runs finished.</p>
{status}
<h2>Findings</h2>
<ul class="find">{findings}</ul>
<h2>Summary</h2>
<table><thead><tr>{thead}</tr></thead><tbody>{tbody}</tbody></table>
<p class="note">Final and best validation metrics as mean ± std over seeds (diverged runs left out and counted;
stalled runs, which trained to the end without learning, counted and kept, and drawn in black in the figures).
95% CI: percentile bootstrap of the mean final validation accuracy. Δ, the paired t-test and the Wilcoxon
signed-rank test compare each method with the baseline <code>{_e(baseline)}</code> run by run (same init and
order seeds), Holm-corrected over the methods of each model. P(improve): the share of (method run, baseline
run) pairs where the method ends with the higher validation accuracy (ties count ½). With fewer than 6 pairs
the exact Wilcoxon test cannot reach p &lt; 0.05.</p>
<h2>Learning curves</h2>
{_img(rundir / "curves.png", "learning curves: loss, accuracy and gradient norm per epoch")}
<h2>Final validation accuracy, every run</h2>
{_img(rundir / "final.png", "final validation accuracy of every run per method")}
<h2>Methods and fitted statistics</h2>
<table><thead><tr><th class="l">method</th><th class="l">fitted on the training split</th>
<th class="l">notes</th></tr></thead><tbody>{method_rows}</tbody></table>
<h2>Configuration</h2>
<table><tbody>{config_rows}</tbody></table>
<details><summary>All runs ({len(runs)})</summary>
<table><thead><tr><th class="l">model</th><th class="l">method</th><th>init seed</th><th>order seed</th>
<th class="l">status</th><th>epochs</th><th>seconds</th><th class="l">note</th></tr></thead>
<tbody>{run_rows}</tbody></table></details>
<p class="note">Files beside this page: summary.csv, epochs.csv, config.json, curves.png, final.png,
{_e("results.sqlite")}. Rebuild them with <code>normlab report {_e(str(rundir))}</code>.</p>
</body></html>
"""
