"""Where the statistics came from: the training split, the test split, or both; and train/test consistency.

The statistics in use come from a fitted normalizer, from statistics the user passes, or are read back
from normalized data (``z = (x - center) / scale`` fitted per channel or feature, see :mod:`._explain`).
They are compared with the exact statistics of the training data, the test data and the two together.
Distances are measured in units of the training data's std, entry by entry, and a source is recognised
only when the statistics are much closer to it than the candidate sources are to each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normlab._format import as_list, fmt, fmt_seq
from normlab.check._context import Context
from normlab.check._findings import Finding
from normlab.check._shared import explanation

__all__ = ["stats_from_test_split", "train_test_mismatch"]

#: The statistics match a split when they are closer to it than a quarter of that split's distance to the
#: other candidates: then no other candidate can match too, and the verdict survives rounding of the
#: statistics (to 4 decimals, as constants are usually quoted) as long as the splits differ by more.
MATCH_FRACTION = 0.25
#: Candidate splits closer than this (in training stds) cannot be told apart: nothing is concluded.
MIN_SEPARATION = 1e-4
#: Train and test are normalized "with the same statistics" when these agree to 1e-3 training stds: float32
#: rounding is 1e-7, constants rounded to 4 decimals are 1e-4 off, refitting on another split is 1e-2 off.
SAME_STATS = 1e-3
#: A held-out test set normalized with training statistics has a mean of order 1/sqrt(n_test) or more;
#: |mean| < 1e-5 and |std - 1| < 1e-5 on every entry means it was standardized with its own statistics.
SELF_STANDARDIZED = 1e-5

_PARAMS = {"standardize": ("mean", "std"), "center": ("mean", None), "minmax": ("min", "max"),
           "robust": ("median", "IQR")}


def _family_params(s: Any, family: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(center, scale) of ``family`` computed from a DatasetStats."""
    if family == "standardize":
        return np.ravel(s.mean), np.ravel(np.sqrt(s.var))
    if family == "center":
        return np.ravel(s.mean), None
    if family == "minmax":
        return np.ravel(s.min), np.ravel(s.max) - np.ravel(s.min)
    q = s.quantiles
    return np.ravel(q[0.5]), np.ravel(q[0.75]) - np.ravel(q[0.25])


def _dist(p: tuple, q: tuple, unit: np.ndarray) -> float:
    """Largest entry-wise difference of (center, scale) pairs, in units of the training std."""
    ok = np.isfinite(unit) & (unit > 0)
    d = np.abs(p[0] - q[0])
    if p[1] is not None and q[1] is not None:
        d = np.maximum(d, np.abs(p[1] - q[1]))
    d = np.where(ok & np.isfinite(d), d / np.where(ok, unit, 1.0), np.nan)
    return float(np.nanmax(d)) if np.any(np.isfinite(d)) else float("nan")


def _classify(used: tuple, cands: dict[str, tuple], unit: np.ndarray) -> tuple[str | None, dict[str, float]]:
    """Which candidate (train / test / train+test) ``used`` is, if any is clearly it."""
    dists = {name: _dist(used, p, unit) for name, p in cands.items()}
    for name, p in cands.items():
        others = [_dist(p, q, unit) for other, q in cands.items() if other != name]
        margin = min(others) if others else float("nan")
        if np.isfinite(margin) and margin > MIN_SEPARATION and dists[name] < MATCH_FRACTION * margin:
            return name, dists
    return None, dists


def _candidates(ctx: Context, mode: str, family: str) -> dict[str, tuple]:
    quant = family == "robust"
    x, t = ctx.X, ctx.T
    assert x is not None and t is not None
    return {
        "train": _family_params(x.stats(mode, ctx.channel_axis, quant), family),
        "test": _family_params(t.stats(mode, ctx.channel_axis, quant), family),
        "train+test": _family_params(ctx.pooled_stats(mode, quant), family),
    }


def _used_statistics(ctx: Context) -> list[tuple[str, str, str, list[str], tuple]]:
    """(subject, description, mode, families to try, (center, scale) in raw units) of the statistics in use."""
    out = []
    g = ctx.given
    if g is not None and g.family in _PARAMS and g.size:
        k = ctx.data_scale(g)
        scale = None if g.family == "center" else g.scale * k
        what = "the normalizer's statistics" if g.exact else (
            f"the {g.source.split()[1]}'s statistics" if g.source.startswith("fitted ") else "the given statistics")
        out.append(("stats", what, ctx.mode, [g.family], (g.center * k, scale)))
    e = explanation(ctx, "train", "normalized")
    if e is not None and e.stateful:
        cs = e.center_scale()
        assert cs is not None and e.mode is not None
        out.append(("normalized", "the statistics the normalized data was made with", e.mode,
                    ["standardize", "minmax", "center"], cs))
    return out


def _param_text(family: str, p: tuple, k: float = 1.0) -> str:
    a, b = _PARAMS[family]
    text = f"{a} {fmt_seq(p[0] / k)}"
    if b is not None and p[1] is not None:
        second = p[0] + p[1] if family == "minmax" else p[1]
        text += f", {b} {fmt_seq(second / k)}"
    return text


def _dist_text(d: float) -> str:
    return "0" if d < 1e-9 else fmt(d, 2)  # below 1e-9: the same statistics, up to rounding


def _fit_hint(mode: str) -> str:
    per = {"global": "channel"}.get(mode, mode)
    return (f'norm = normlab.Standardize(per="{per}").fit(x_train)   # the training split only\n'
            "x_train, x_test = norm.transform(x_train), norm.transform(x_test)")


def stats_from_test_split(ctx: Context) -> list[Finding]:
    """Statistics that match the test split, or train + test, rather than the training split."""
    if ctx.X is None or ctx.T is None:
        return []
    out = []
    for subject, what, mode, families, used in _used_statistics(ctx):
        unit = np.ravel(np.sqrt(ctx.X.stats(mode, ctx.channel_axis).var))
        verdicts = []
        for family in families:
            u = used if family != "center" else (used[0], None)
            cands = _candidates(ctx, mode, family)
            match, dists = _classify(u, cands, unit)
            verdicts.append((family, match, dists, cands, u))
        if any(v[1] == "train" for v in verdicts):
            continue
        hit = next((v for v in verdicts if v[1] in ("test", "train+test")), None)
        if hit is None:
            continue
        family, match, dists, cands, u = hit
        k = ctx.data_scale(ctx.given) if subject == "stats" and ctx.given is not None else 1.0
        where = "the test data" if match == "test" else "the training and test data together"
        msg = (f"{what}, {_param_text(family, u, k)}, match {where}, {_param_text(family, cands[match], k)}, "
               f"rather than the training data, {_param_text(family, cands['train'], k)}: they are "
               f"{_dist_text(dists[match])} training stds from {'the test' if match == 'test' else 'the pooled'} "
               f"statistics and {_dist_text(dists['train'])} from the training split's. They were computed on "
               f"{'the test split' if match == 'test' else 'train + test'}, which leaks the test set into "
               "training and makes the test score optimistic.")
        numbers = {"matched": match, "family": family, "distance": dists, "used": [as_list(u[0]), as_list(
            u[1]) if u[1] is not None else None], "train": [as_list(v) if v is not None else None for v in
                                                            cands["train"]],
                   "test": [as_list(v) if v is not None else None for v in cands["test"]]}
        out.append(Finding("stats-from-test-split", "error" if match == "test" else "warning", subject, msg,
                           _fit_hint(mode), numbers))
    return out


def train_test_mismatch(ctx: Context) -> list[Finding]:
    """The test data normalized with other statistics (or along other axes) than the training data."""
    zt = ctx.ZT
    if zt is None:
        return []
    e_test = explanation(ctx, "test", "test_normalized")
    if e_test is None:
        return _self_standardized(ctx)
    e_train = explanation(ctx, "train", "normalized")
    per = {"global": "channel"}.get(ctx.mode, ctx.mode)
    hint = (f'norm = normlab.Standardize(per="{per}").fit(x_train)   # fit once, on the training split\n'
            "x_test = norm.transform(x_test)   # not fit_transform(x_test)")
    if e_train is not None and e_train.keep is not None and e_test.keep is not None and e_train.keep != e_test.keep:
        how = lambda e: f"with per={e.mode!r}" if e.mode else "along other axes"  # noqa: E731
        msg = (f"the training data was normalized {how(e_train)} but the test data {how(e_test)}: the model sees "
               "test inputs on another scale than it was trained on.")
        numbers = {"train_mode": e_train.mode, "test_mode": e_test.mode}
        return [Finding("train-test-mismatch", "error", "test_normalized", msg, hint, numbers)]
    if not e_test.stateful:
        return []
    test_used = e_test.center_scale()
    assert test_used is not None and e_test.mode is not None
    mode = e_test.mode
    x = ctx.X if ctx.X is not None else ctx.T
    assert x is not None
    unit = np.ravel(np.sqrt(x.stats(mode, ctx.channel_axis).var))
    ref: tuple | None = None
    ref_what = ""
    if e_train is not None and e_train.stateful and e_train.mode == mode:
        ref, ref_what = e_train.center_scale(), "the training data's"
    elif ctx.given is not None and ctx.given.family in ("standardize", "minmax") and ctx.given.size == \
            test_used[0].size:
        k = ctx.data_scale(ctx.given)
        ref, ref_what = (ctx.given.center * k, ctx.given.scale * k), "the given"
    own = ""
    numbers: dict[str, Any] = {"test_center": as_list(test_used[0]), "test_scale": as_list(test_used[1])}
    if ctx.X is not None and ctx.T is not None:
        match, _ = _classify(test_used, _candidates(ctx, mode, "standardize"), unit)
        if match is None:
            match, _ = _classify(test_used, _candidates(ctx, mode, "minmax"), unit)
        numbers["test_matches"] = match
        if match == "test":
            own = (", and they are the test data's own statistics (as scaler.fit_transform(x_test) computes "
                   "instead of scaler.transform(x_test))")
        if ref is None and match == "test":
            ref = _family_params(ctx.X.stats(mode, ctx.channel_axis), "standardize")
            ref_what = "the training data's"
    if ref is None:
        return []
    d = _dist(test_used, ref, unit)
    numbers.update(distance=d, train_center=as_list(ref[0]), train_scale=as_list(ref[1]))
    if not d > SAME_STATS:
        return []
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = (ref[0] - test_used[0]) / test_used[1]
    shift_v = float(np.nanmax(np.abs(shift))) if np.any(np.isfinite(shift)) else float("nan")
    numbers["shift"] = shift_v
    msg = (f"the test data was normalized with other statistics (center {fmt_seq(test_used[0])}, scale "
           f"{fmt_seq(test_used[1])}) than {ref_what} (center {fmt_seq(ref[0])}, scale {fmt_seq(ref[1])}){own}. "
           f"The same raw value then means different inputs in training and test: a test value equal to the "
           f"training center is fed as {fmt(shift_v, 3)} instead of 0.")
    return [Finding("train-test-mismatch", "error", "test_normalized", msg, hint, numbers)]


def _self_standardized(ctx: Context) -> list[Finding]:
    zt = ctx.ZT
    assert zt is not None
    s = zt.stats(ctx.mode, ctx.channel_axis)
    mean, std = np.ravel(s.mean), np.ravel(np.sqrt(s.var))
    if zt.n < 100 or not (np.all(np.abs(mean) < SELF_STANDARDIZED) and np.all(np.abs(std - 1) < SELF_STANDARDIZED)):
        return []
    msg = (f"{zt.label} has mean {fmt_seq(mean + 0.0, 2)} and std {fmt_seq(std, 6)} exactly, per {ctx.mode}, over "
           f"{fmt(zt.n)} samples: it was standardized with its own statistics. A held-out set normalized with the "
           "training statistics is off by the difference between the splits (of order 1/sqrt(n) at least), so "
           "train and test inputs are not normalized the same way.")
    numbers = {"mean": as_list(mean), "std": as_list(std), "samples": zt.n}
    hint = ("norm = normlab.Standardize().fit(x_train)   # fit once, on the training split\n"
            "x_test = norm.transform(x_test)   # not fit_transform(x_test)")
    return [Finding("train-test-mismatch", "warning", "test_normalized", msg, hint, numbers)]
