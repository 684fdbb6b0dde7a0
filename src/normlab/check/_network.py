"""Checks on what the network receives: the model's own input layers, statistics on the wrong scale or
from another dataset, and test values that explode where the training data was constant."""

from __future__ import annotations

import numpy as np

from normlab._format import as_list, fmt, fmt_seq
from normlab.check._context import Context
from normlab.check._findings import Finding
from normlab.check._given import Given
from normlab.check._shared import constant_mask, fed, stats_used
from normlab.check._statistics import KNOWN, known_match, std_as_variance
from normlab.check._values import once_too_often
from normlab.core._ranges import scale_mismatch

__all__ = ["input_scale_mismatch", "model_input", "stats_from_other_data", "stats_outside_data",
           "test_values_explode"]

#: A centre further than this many data spans from the middle of the data's range, or a scale more than
#: this many spans wide, leaves the network nearly constant inputs: statistics on another scale (0..255
#: statistics on data already in [0, 1] give mean -2.1 and std 0.004). Correct statistics lie inside the range.
OUTSIDE_SPANS = 5.0
#: Given statistics "belong to other data" when the network's inputs end up with a mean more than half a
#: std from 0, or a std more than 1.5x from 1; a known dataset's constants (MNIST's on Fashion-MNIST) are
#: named when the mean is off by more than 0.1 std or the std by more than 5%. Statistics of another split
#: of the same data differ by about 1% (MNIST train 0.3081, test 0.3105), far below either.
OTHER_MEAN = 0.5
OTHER_STD = 1.5
KNOWN_MEAN = 0.1
KNOWN_STD = 0.05
#: Range conventions (z = x / 255, x / 255 - 0.5, (x / 255 - 0.5) / 0.5, ...) are not dataset statistics;
#: ``expects=`` judges them.
_CONVENTIONS = ((0.0, 1.0), (0.5, 0.5), (0.5, 1.0), (0.0, 0.5))
#: A normalized test value beyond this magnitude, where the normalized training data stay within
#: ``EXPLODE_TRAIN``, comes from a division by (almost) zero: standardized data has |z| < 10 almost always.
EXPLODE_TEST = 1e3
EXPLODE_TRAIN = 100.0


def model_input(ctx: Context) -> list[Finding]:
    """What the model does to its input before its first weight layer (info: what the checks judge)."""
    m = ctx.model
    assert m is not None
    first = f" its first weight layer {m.first_layer!r}" if m.first_layer else " its first weight layer"
    if m.steps:
        msg = (f"The model normalizes its input itself: {' then '.join(s.describe() for s in m.steps)}. The checks "
               f"below judge what{first} receives: the data as you feed it, after these layers.")
    else:
        msg = f"The model has no normalization layer at its input: the checks judge the data as you feed it to{first}."
    if m.stopped:
        msg += f" Reading stopped at {m.stopped}."
    for note in m.notes:
        msg += f" ({note}.)"
    numbers = {"source": m.source, "first_layer": m.first_layer, "stopped": m.stopped,
               "steps": [{"name": s.name, "kind": s.kind, "scale": as_list(s.scale), "offset": as_list(s.offset)}
                         for s in m.steps]}
    return [Finding("model-input", "info", "model", msg, "", numbers)]


def _scale_case(ctx: Context) -> dict | None:
    """The input-scale rule (:func:`normlab.core._ranges.scale_mismatch`, the exported layers' own) applied to
    the recorded range of the given statistics (against the raw data) or of the model's first input layer
    (against what the model is fed); the first that does not fit, or None."""
    def cached() -> dict | None:
        cases = []
        g, x = ctx.given, ctx.X
        if g is not None and g.fit_range is not None and x is not None and ctx.data_scale(g) == 1:
            s = x.stats("global", -1)
            source = g.source.removeprefix("fitted ")
            cases.append(("stats", f"{g.label} {source}", g.fit_range, g.fit_dtype,
                          float(np.min(s.min)), float(np.max(s.max)), x.x.dtype.kind == "f", x.label))
        m, fed_x = ctx.model, getattr(ctx, "model_fed", None)
        if m is not None and m.steps and m.steps[0].fit_range is not None and fed_x is not None:
            step = m.steps[0]
            with np.errstate(invalid="ignore"):
                lo, hi = float(np.nanmin(fed_x)), float(np.nanmax(fed_x))
            cases.append(("model", f"the model's input layer {step.kind} {step.name!r}", step.fit_range,
                          step.fit_dtype, lo, hi, fed_x.dtype.kind == "f", "the data fed to the model"))
        for subject, who, fit_range, fit_dtype, lo, hi, is_float, what in cases:
            msg = scale_mismatch(fit_range, fit_dtype or "raw", lo, hi, is_float, who=who)
            if msg is not None:
                return {"subject": subject, "message": msg, "fit_range": list(fit_range), "fit_dtype": fit_dtype,
                        "data_min": lo, "data_max": hi, "data_float": is_float, "data": what,
                        "to_unit": hi > 2}
        return None

    return ctx.cached("input-scale", cached)


def input_scale_mismatch(ctx: Context) -> list[Finding]:
    """Data on another scale than the statistics (or the model's normlab layer) were fitted on."""
    case = _scale_case(ctx)
    if case is None:
        return []
    if case["to_unit"]:
        hint = ("x = x / 255   # as ToTensor() does: the scale the statistics were fitted on\n"
                'norm = normlab.Standardize(per="channel").fit(x_train)   # or refit on the raw values')
    else:
        hint = ("x = np.round(x * 255).astype(np.uint8)   # feed the raw pixels the statistics were fitted on\n"
                'norm = normlab.Standardize(per="channel").fit(x_train)   # or refit on the [0, 1] data')
    numbers = {k: case[k] for k in ("fit_range", "fit_dtype", "data_min", "data_max", "data_float")}
    return [Finding("input-scale-mismatch", "error", case["subject"], case["message"], hint, numbers)]


def _data_range(ctx: Context, g: Given) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Per-entry min, max, mean and std of the raw training data on the statistics' scale, and that scale."""
    x = ctx.X
    assert x is not None and g.per is not None
    mode = g.per if g.per in ("global", "channel", "feature") else ctx.mode
    k = ctx.data_scale(g)
    s = x.stats(mode, ctx.channel_axis)
    r = lambda v: np.ravel(v).astype(np.float64) / k  # noqa: E731
    return r(s.min), r(s.max), r(s.mean), r(np.sqrt(s.var)), k


def _subject(g: Given) -> str:
    return "stats" if g.label == "the given" else "normalized"


def _outside(ctx: Context, g: Given) -> np.ndarray | None:
    if g.family not in ("standardize", "center") or g.size == 0:
        return None
    lo, hi, _, _, _ = _data_range(ctx, g)
    if lo.size != g.size:
        return None
    span = hi - lo
    bad = (span > 0) & ((np.abs(g.center - (lo + hi) / 2) > OUTSIDE_SPANS * span) |
                        (np.abs(g.scale) > OUTSIDE_SPANS * 2 * span))
    return bad if bad.any() else None


def stats_outside_data(ctx: Context) -> list[Finding]:
    """A centre or scale far outside the range of the data it is applied to (statistics on another scale)."""
    g = stats_used(ctx)
    f = fed(ctx)
    if g is None or _outside(ctx, g) is None or (f is not None and once_too_often(f)):
        return []  # a second / 255 is double-scaling's
    if g.label == "the given" and (_scale_case(ctx) or {}).get("subject") == "stats":
        return []  # the recorded range says it precisely: input-scale-mismatch
    lo, hi, mean, std, k = _data_range(ctx, g)
    out_mean, out_std = (mean - g.center) / g.scale, std / np.abs(g.scale)
    scale_note = f" (on the scale of x / {fmt(k)})" if k != 1 else ""
    msg = (f"{g.label} centre {fmt_seq(g.center)} and scale {fmt_seq(g.scale)} lie far outside the data they are "
           f"applied to, which spans [{fmt(lo.min())}, {fmt(hi.max())}]{scale_note}: the network receives mean "
           f"{fmt_seq(out_mean)} and std {fmt_seq(out_std)}, almost the same value for every input.")
    numbers = {"center": as_list(g.center), "scale": as_list(g.scale), "data_min": float(lo.min()),
               "data_max": float(hi.max()), "fed_mean": as_list(out_mean), "fed_std": as_list(out_std)}
    c255, s255 = g.center / 255, g.scale / 255
    if np.all((c255 >= lo - 0.5 * (hi - lo)) & (c255 <= hi + 0.5 * (hi - lo))) and np.all(np.abs(s255) < 2 * (hi - lo)):
        msg += (" They are statistics of 0..255 pixels applied to data already divided by 255 (e.g. x / 255 "
                "followed by albumentations' Normalize, whose max_pixel_value=255 multiplies mean and std by 255).")
        numbers["factor"] = 255
        hint = (f"x = (x - {fmt_seq(c255)}) / {fmt_seq(s255)}   # statistics on the data's own [0, 1] scale\n"
                "A.Normalize(mean, std, max_pixel_value=1.0)   # albumentations on data already in [0, 1]\n"
                "# or drop the earlier x / 255 and keep max_pixel_value=255")
    else:
        hint = ('norm = normlab.Standardize(per="channel").fit(x_train)   # statistics of this very data\n'
                "x_train, x_test = norm.transform(x_train), norm.transform(x_test)")
    return [Finding("stats-outside-data", "error", _subject(g), msg, hint, numbers)]


def _known_name(g: Given) -> str | None:
    for name, c in KNOWN.items():
        if known_match(g.center, c["mean"]) and known_match(g.scale, c["std"]):
            return name
    return None


def stats_from_other_data(ctx: Context) -> list[Finding]:
    """Statistics far from the data's own (another dataset's constants): in units of the data's std."""
    g = stats_used(ctx)
    if g is None or g.family != "standardize" or g.size == 0 or ctx.expects is not None:
        return []
    if _outside(ctx, g) is not None or std_as_variance(ctx):
        return []  # said by those checks, with their own fix
    if any(np.allclose(g.center, c) and np.allclose(g.scale, s) for c, s in _CONVENTIONS):
        return []
    known = _known_name(g)
    if known == "ImageNet":
        return []  # what ImageNet-pretrained backbones expect; expects="imagenet" checks that
    _, _, mean, std, k = _data_range(ctx, g)
    if mean.size != g.size or np.any(std <= 0):
        return []
    off = (mean - g.center) / std  # the network's mean, in its own std units
    ratio = g.scale / std  # the network's std is 1 / ratio
    mean_lim, std_lim = (KNOWN_MEAN, 1 + KNOWN_STD) if known else (OTHER_MEAN, OTHER_STD)
    bad = (np.abs(off) > mean_lim) | (ratio > std_lim) | (ratio < 1 / std_lim)
    if not bad.any():
        return []
    fed_mean, fed_std = off * std / g.scale, 1 / ratio
    whose = f" They are {known}'s constants." if known else ""
    scale_note = f" on the scale of x / {fmt(k)}" if k != 1 else ""
    msg = (f"{g.label} mean {fmt_seq(g.center)} and std {fmt_seq(g.scale)} are not this data's statistics: its own "
           f"are mean {fmt_seq(mean)} and std {fmt_seq(std)}{scale_note}, so the network receives mean "
           f"{fmt_seq(fed_mean, 3)} and std {fmt_seq(fed_std, 3)} instead of 0 and 1 (the mean is off by "
           f"{fmt_seq(np.abs(off), 2)} of the data's std).{whose}")
    numbers = {"given_mean": as_list(g.center), "given_std": as_list(g.scale), "data_mean": as_list(mean),
               "data_std": as_list(std), "fed_mean": as_list(fed_mean), "fed_std": as_list(fed_std),
               "known": known}
    hint = (f"mean, std = {fmt_seq(mean)}, {fmt_seq(std)}   # this data's own statistics{scale_note}\n"
            'norm = normlab.Standardize(per="channel").fit(x_train)   # or let normlab compute them')
    return [Finding("stats-from-other-data", "warning", _subject(g), msg, hint, numbers)]


def _test_normalized(ctx: Context) -> np.ndarray | None:
    zt = ctx.ZT
    if zt is not None:
        return zt.x
    return ctx.fed_array("test", "test_normalized")


def test_values_explode(ctx: Context) -> list[Finding]:
    """Normalized test values far beyond the training range, where the training data was constant."""
    zt = _test_normalized(ctx)
    if zt is None or zt.dtype.kind != "f":
        return []
    n = zt.shape[0]
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.abs(np.where(np.isfinite(zt), zt, np.nan)).reshape(n, -1), axis=0)
    peak = np.nan_to_num(peak, nan=0.0)
    f = fed(ctx)  # what the training data becomes: its exact min and max, without a normalized copy
    known = f is not None and f.how != "as-given"  # else only the test side's normalization is known
    train_peak = float(np.nanmax(np.abs(np.concatenate([f.min, f.max])))) if known else 0.0
    x, t = ctx.X, ctx.T
    const = None
    hot = peak > EXPLODE_TEST
    if x is not None:  # only where the training data is constant: there the divisor is the epsilon alone
        s = x.stats("feature", ctx.channel_axis)
        const = np.ravel(constant_mask(s.count, s.mean, s.var))
        hot &= const
    over = np.flatnonzero(hot)
    if over.size == 0 or train_peak > EXPLODE_TRAIN:
        return []
    where = ctx.entry_names("feature", ctx.names_for("test"))
    worst = int(over[np.argmax(peak[over])])
    numbers: dict = {"positions": int(over.size), "max_abs": float(peak[worst]), "worst": where[worst],
                     "train_max_abs": train_peak}
    what = "pixel positions" if ctx.is_image else "features"
    msg = (f"{fmt(over.size)} of {fmt(peak.size)} {what} of the normalized test data reach |z| above "
           f"{fmt(EXPLODE_TEST)}, up to {fmt(peak[worst])} at {where[worst]}, while the normalized training data "
           f"stay within ±{fmt(train_peak, 3)}.")
    if x is not None and const is not None:
        numbers["constant_in_train"] = int(np.sum(const[over]))
        if np.all(const[over]):
            msg += (" Every one of them is constant in the training data (std 0), so the divisor there is only "
                    "the epsilon added to the std")
            if t is not None:
                tv = np.asarray(t.x, dtype=np.float64).reshape(t.n, -1)[:, worst] - np.ravel(s.mean)[worst]
                zv = np.asarray(zt, dtype=np.float64).reshape(n, -1)[:, worst]
                live = (np.abs(zv) > EXPLODE_TEST) & np.isfinite(zv)
                if live.any():
                    eps = float(np.median(tv[live] / zv[live]))
                    numbers["epsilon"] = eps
                    msg += f" (read back from the data: {fmt(eps, 3)}, as in x / (std + {fmt(eps, 1)}))"
            msg += ": any test value that differs from the training constant is multiplied by 1 / epsilon."
    hint = ('norm = normlab.Standardize(per="feature").fit(x_train)   # divides constant features by 1\n'
            "x_train, x_test = norm.transform(x_train), norm.transform(x_test)\n"
            "# by hand: std = np.where(std > 0, std, 1.0), never std + 1e-8")
    return [Finding("test-values-explode", "error", "test_normalized", msg, hint, numbers)]
