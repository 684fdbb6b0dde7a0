"""Checks on the values themselves: NaN/inf, magnitude, spread across features, constants, double scaling."""

from __future__ import annotations

import numpy as np

from normlab._format import as_list, fmt, fmt_seq
from normlab.check._context import Context
from normlab.check._findings import Finding
from normlab.check._shared import Fed, constant_mask, fed

__all__ = ["constant_feature", "double_scaling", "nan_or_inf", "not_scaled", "once_too_often", "scale_disparity"]

#: Inputs of order 1 are what weight initialisations (Glorot, He) assume: they keep the first layer's
#: pre-activations at unit variance. A root mean square above 10 makes them 10x too large (100x in
#: variance), enough to saturate tanh/sigmoid units and to miscalibrate the first optimizer steps.
#: Correctly normalized data sits at 1 (standardized) or below (x / 255: MNIST 0.33), so 10 is far from it.
NOT_SCALED_RMS = 10.0
#: Images whose root mean square is below 0.02 (about 5 / 255) are almost black on every channel: their
#: signal is 50x weaker than the order-1 range. No correctly scaled image set comes near it.
TOO_SMALL_RMS = 0.02
#: Features whose stds differ by more than 100x: the loss curvature along them differs by 100**2 = 1e4, so
#: one learning rate is either unstable for the widest feature or 1e4 times too small for the narrowest.
DISPARITY_RATIO = 100.0
#: 8-bit images divided by 255 once have values up to 1; a maximum at or below 1 / 255 means a second
#: division (a dataset of nearly black images would fail the magnitude check anyway).
ONCE_SCALED_MAX = 1.0 / 255.0
#: Keras' Normalization divides by max(std, epsilon) with epsilon = keras.backend.epsilon() = 1e-7.
KERAS_EPSILON = 1e-7


def _first_positions(bad: np.ndarray, shape: tuple[int, ...], limit: int = 5) -> list[tuple[int, ...]]:
    """Indices (in the user's shape) of the first ``limit`` True values, scanning in chunks."""
    flat = bad.reshape(-1)
    found: list[int] = []
    step = 1 << 20
    for start in range(0, flat.size, step):
        hits = np.flatnonzero(flat[start:start + step])
        found += [start + int(h) for h in hits[: limit - len(found)]]
        if len(found) >= limit:
            break
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in found]


def nan_or_inf(ctx: Context) -> list[Finding]:
    """NaN or infinite values in any input, with counts, positions and (where it is so) the cause."""
    out = []
    for role, d in ctx.data.items():
        bad = d.nonfinite()
        if bad is None:
            continue
        x = d.x
        n_nan = int(np.isnan(x).sum())
        n_inf = int(bad.sum()) - n_nan
        rows = bad.reshape(d.n, -1)
        n_samples = int(rows.any(axis=1).sum())
        where = rows.any(axis=0)
        n_pos, n_all = int(where.sum()), int(where.size)
        first = _first_positions(bad, d.user_shape)
        word = ("pixel positions" if ctx.is_image else "features") if len(ctx.internal_shape) >= 1 else "values"
        msg = (f"{d.label} holds {fmt(n_nan)} NaN and {fmt(n_inf)} infinite values ({fmt(100 * (n_nan + n_inf) / x.size, 3)}% "
               f"of {fmt(x.size)}) in {fmt(n_samples)} of {fmt(d.n)} samples and {fmt(n_pos)} of {fmt(n_all)} {word}; "
               f"the first at {', '.join(map(str, first))}.")
        numbers = {"nan": n_nan, "inf": n_inf, "values": int(x.size), "samples": n_samples, "positions": n_pos,
                   "first": [list(p) for p in first]}
        hint = ("print(np.argwhere(~np.isfinite(x))[:10])   # where they are\n"
                "x = np.nan_to_num(x, nan=fill_value)       # or drop those samples\n"
                '# normlab\'s normalizers take nan="ignore" to leave NaN out of the statistics')
        raw = ctx.X
        if role in ("normalized", "test_normalized") and raw is not None:
            s = raw.stats("feature", ctx.channel_axis)
            const = np.ravel(constant_mask(s.count, s.mean, s.var))
            if const.any() and n_pos and np.all(const[where]):
                numbers["constant_positions"] = int(const.sum())
                msg += (f" Every one of these {word} is constant in the training data ({fmt(int(const.sum()))} "
                        f"{word} are): (x - mean) / std divided by a std of 0 there"
                        + (" (0 / 0 = NaN)." if n_inf == 0 else "."))
                hint = ("# divide constant features by 1 instead of by their std of 0:\n"
                        'norm = normlab.Standardize(per="feature").fit(x_train)   # zero_std="unit" (the default)\n'
                        "x_train, x_test = norm.transform(x_train), norm.transform(x_test)")
        out.append(Finding("nan-or-inf", "error", role, msg, hint, numbers))
    return out


def _image_hint() -> str:
    return ('x = normlab.Scale(by=255).fit(x_train).transform(x)      # values in [0, 1], or\n'
            'norm = normlab.Standardize(per="channel").fit(x_train)   # mean 0, std 1 per channel\n'
            "x_train, x_test = norm.transform(x_train), norm.transform(x_test)")


def not_scaled(ctx: Context) -> list[Finding]:
    """Magnitudes far from order 1 in what the model is fed (pixels-not-scaled / features-not-scaled)."""
    f = fed(ctx)
    if f is None or (ctx.expects is not None and ctx.X is not None):
        return []  # expects-mismatch judges the inputs against what the model was trained on
    rms = np.nan_to_num(f.rms, nan=0.0)  # entries without finite values have no magnitude
    severity = "warning" if f.how == "as-given" else "error"
    prefix = {"as-given": "If it is fed to a model as it is, ", "normalized": "", "derived": ""}[f.how]
    g = ctx.given
    note = ""
    if f.how == "derived" and g is not None and g.exact and "mean" in g.fields and ctx.X is not None:
        raw_mean = float(np.mean(np.ravel(ctx.X.stats(f.mode, ctx.channel_axis).mean)))
        given_mean = float(np.mean(g.fields["mean"]))
        if given_mean and 50 < abs(raw_mean / given_mean) < 1000:
            note = (f" The normalizer's mean {fmt_seq(g.fields['mean'])} is on another scale than the data's "
                    f"{fmt(raw_mean)}: it was fitted on data divided by 255, so divide by 255 before transform().")
    if ctx.is_image and f.mode == "feature" and f.how != "derived":
        f = _overall(ctx, f)  # one pixel's statistics say little; the image as a whole does
        rms = np.nan_to_num(f.rms, nan=0.0)
    lo, hi = float(np.nanmin(f.min)), float(np.nanmax(f.max))
    numbers = {"rms": as_list(rms), "mean": as_list(f.mean), "std": as_list(f.std), "min": lo, "max": hi,
               "how": f.how}
    if ctx.is_image or f.mode != "feature":
        code = "pixels-not-scaled" if ctx.is_image else "features-not-scaled"
        big = float(rms.max())
        if big > NOT_SCALED_RMS and ctx.is_image and _caffe_like(f):
            msg = (f"{f.label} is centred but not scaled: values in [{fmt(lo)}, {fmt(hi)}] with mean "
                   f"{fmt_seq(f.mean)} and std {fmt_seq(f.std)}. This is Caffe-style preprocessing (0..255 pixels "
                   "minus a per-channel mean, keras.applications' preprocess_input for VGG16/VGG19/ResNet50): right "
                   "for those pretrained weights, which expect it; a network trained from scratch wants std 1. Pass "
                   "expects='caffe' (--expects caffe) to check it against the backbone.")
            hint = ('norm = normlab.Standardize(per="channel").fit(x_train)   # from scratch: mean 0, std 1\n'
                    "normlab.check(x_train, normalized=x, expects='caffe')   # pretrained Caffe weights")
            return [Finding(code, "info", f.role, msg, hint, numbers)]
        if big > NOT_SCALED_RMS:
            msg = (f"{f.label} is not scaled: values in [{fmt(lo)}, {fmt(hi)}] ({f.dtype}) with "
                   f"mean {fmt_seq(f.mean)} and std {fmt_seq(f.std)}, a root mean square of {fmt(big)}, about "
                   f"{fmt(round(big))} times the order-1 range networks train well in. {prefix}"
                   f"{'it' if prefix else 'It'} makes the first layer's activations about {fmt(round(big))}x too "
                   f"large.{note}")
            return [Finding(code, severity, f.role, msg, _image_hint() if ctx.is_image else _table_hint(),
                            numbers)]
        if ctx.is_image and big < TOO_SMALL_RMS and not once_too_often(f):
            msg = (f"{f.label} is scaled far below order 1: values in [{fmt(lo)}, {fmt(hi)}] "
                   f"with mean {fmt_seq(f.mean)} and std {fmt_seq(f.std)}, a root mean square of {fmt(big)}, about "
                   f"{fmt(round(1 / big))} times too small for the order-1 range networks train well in.{note}")
            return [Finding(code, severity, f.role, msg, _image_hint(), numbers)]
        return []
    over = np.flatnonzero(rms > NOT_SCALED_RMS)
    if over.size == 0:
        return []
    worst = int(np.argmax(rms))
    msg = (f"{fmt(over.size)} of {fmt(rms.size)} features of {f.label} have a root mean square above "
           f"{fmt(NOT_SCALED_RMS)}, the largest {f.names[worst]} (mean {fmt(f.mean[worst])}, std {fmt(f.std[worst])}, "
           f"root mean square {fmt(rms[worst])}); networks train well on inputs of order 1. {prefix}"
           f"{'they make' if prefix else 'They make'} the first layer's activations up to {fmt(round(rms[worst]))}x "
           f"too large.{note}")
    numbers.update(features_over=int(over.size), worst=f.names[worst], worst_rms=float(rms[worst]))
    return [Finding("features-not-scaled", severity, f.role, msg, _table_hint(), numbers)]


def _caffe_like(f: Fed) -> bool:
    """0..255 pixels with a per-channel mean subtracted: centred (|mean| < std / 2), std of 0..255 pixels."""
    lo, hi = float(np.nanmin(f.min)), float(np.nanmax(f.max))
    return bool(np.all(np.abs(f.mean) < 0.5 * f.std) and np.all((f.std > 20) & (f.std < 130))
                and lo >= -140 and hi <= 160)


def _overall(ctx: Context, f: Fed) -> Fed:
    d = ctx.get("normalized" if f.how == "normalized" else "train")
    assert d is not None
    s = d.stats("global", -1)
    r = lambda v: np.ravel(v)  # noqa: E731
    return Fed(f.role, f.label, f.how, "global", r(s.mean), r(np.sqrt(s.var)), r(s.min), r(s.max), r(s.count),
               f.dtype, ["all values"])


def _table_hint() -> str:
    return ('norm = normlab.Standardize(per="feature").fit(x_train)   # every feature to mean 0, std 1\n'
            "x_train, x_test = norm.transform(x_train), norm.transform(x_test)")


def scale_disparity(ctx: Context) -> list[Finding]:
    """Features (or channels) of the fed data whose stds differ by more than ``DISPARITY_RATIO``."""
    f = fed(ctx)
    if f is None or f.mode == "global" or f.std.size < 2 or (ctx.is_image and f.mode == "feature"):
        return []  # the pixels of one channel share a unit: their spreads differ by content, not by scale
    live = ~constant_mask(f.count, f.mean, f.std**2) & (f.std > 0)
    if ctx.X is not None:  # constant in the raw data: the constant-feature check speaks about them
        s = ctx.X.stats(f.mode, ctx.channel_axis)
        live &= ~np.ravel(constant_mask(s.count, s.mean, s.var))
    if live.sum() < 2:
        return []
    std = np.where(live, f.std, np.nan)
    hi, lo = int(np.nanargmax(std)), int(np.nanargmin(std))
    ratio = float(std[hi] / std[lo])
    if ratio <= DISPARITY_RATIO:
        return []
    med = float(np.nanmedian(std))
    far = int(np.sum(live & ((f.std > 10 * med) | (f.std < med / 10))))
    what = "features" if f.mode == "feature" else "channels"
    msg = (f"the {what} of {f.label} have spreads that differ by a factor of {fmt(ratio)} "
           f"({fmt(np.log10(ratio), 2)} orders of magnitude): {f.names[hi]} has std {fmt(std[hi])}, {f.names[lo]} "
           f"has std {fmt(std[lo])}; {fmt(far)} of {fmt(int(live.sum()))} {what} are more than 10x away from the "
           f"median std {fmt(med)}. With one learning rate for all inputs, the narrow {what} barely learn.")
    per = '"feature"' if f.mode == "feature" else '"channel"'
    hint = (f"norm = normlab.Standardize(per={per}).fit(x_train)   # every {what[:-1]} to std 1\n"
            "x_train, x_test = norm.transform(x_train), norm.transform(x_test)\n"
            f"# normlab.Robust(per={per}) if some {what} have outliers")
    numbers = {"ratio": ratio, "largest": f.names[hi], "largest_std": float(std[hi]), "smallest": f.names[lo],
               "smallest_std": float(std[lo]), "median_std": med, "far_from_median": far}
    return [Finding("scale-disparity", "warning", f.role, msg, hint, numbers)]


def constant_feature(ctx: Context) -> list[Finding]:
    """Zero-variance entries of the training data, and what each framework does with them at test time."""
    x = ctx.X
    if x is None:
        return []
    mode = ctx.mode
    s = x.stats(mode, ctx.channel_axis)
    const = np.ravel(constant_mask(s.count, s.mean, s.var))
    if not const.any():
        return []
    names = ctx.entry_names(mode, ctx.names_for("train"))
    idx = np.flatnonzero(const)
    values = np.ravel(s.mean)[idx]
    what = {"feature": "pixel positions" if ctx.is_image else "features", "channel": "channels",
            "global": "values"}[mode]
    shown = ", ".join(names[i] for i in idx[:6]) + (", ..." if idx.size > 6 else "")
    uniq = np.unique(values)
    value_text = f"value {fmt(uniq[0])}" if uniq.size == 1 else f"values {fmt_seq(values)}"
    c_text = fmt(uniq[0]) if uniq.size == 1 else "mean"
    if mode == "global":
        head = (f"All values of the training data are the same ({fmt(values[0])}, {fmt(x.n)} samples; zero variance "
                "by scikit-learn's bound). Standardizing divides by a std of 0")
    else:
        head = (f"{fmt(idx.size)} of {fmt(const.size)} {what} are constant in the training data ({fmt(x.n)} samples; "
                f"zero variance by scikit-learn's bound): {shown} ({value_text}). Standardizing divides them by their "
                "std of 0")
    msg = (f"{head}: Keras' Normalization divides by max(std, 1e-7), so a test value v becomes "
           f"(v - {c_text}) x 1e7; torchvision's Normalize raises ValueError; (x - mean) / std in NumPy gives inf, "
           "or NaN for 0 / 0; scikit-learn's StandardScaler and normlab's Standardize divide by 1.")
    numbers: dict = {"constant": int(idx.size), "entries": [names[i] for i in idx[:64]], "values": as_list(values),
                     "samples": x.n}
    t = ctx.T
    if t is not None:
        ts = t.stats(mode, ctx.channel_axis)
        dev = np.maximum(np.abs(np.ravel(ts.max)[idx] - values), np.abs(np.ravel(ts.min)[idx] - values))
        moving = np.flatnonzero(dev > 0)
        numbers["test_varying"] = int(moving.size)
        if moving.size:
            w = int(moving[np.argmax(dev[moving])])
            far = float(values[w] + dev[w]) if np.ravel(ts.max)[idx][w] - values[w] >= dev[w] else \
                float(values[w] - dev[w])
            numbers.update(test_worst=names[idx[w]], test_value=far, keras_value=float(dev[w] / KERAS_EPSILON))
            msg += (f" In the test data {fmt(moving.size)} of them vary: {names[idx[w]]} reaches {fmt(far)}, which "
                    f"Keras would turn into {fmt(dev[w] / KERAS_EPSILON)}.")
        else:
            msg += " They are constant in the test data too."
    if mode == "feature" and ctx.is_image:
        hint = ('norm = normlab.Standardize(per="channel").fit(x_train)   # per channel: nothing constant, or\n'
                'norm = normlab.Standardize(per="feature").fit(x_train)   # divides constant pixels by 1')
    else:
        hint = ("keep = x_train.std(axis=0) > 0                          # drop them, or\n"
                "x_train, x_test = x_train[:, keep], x_test[:, keep]\n"
                'norm = normlab.Standardize(per="feature").fit(x_train)   # divides them by 1 (with a warning)')
    severity = "warning"
    if _constants_handled(ctx, mode, idx):
        severity = "info"
        msg += (" Your normalization keeps them finite and constant (it divides them by a nonzero number), so "
                "nothing needs to change; this is worth knowing if the statistics are ever exported to a framework.")
    return [Finding("constant-feature", severity, "train", msg, hint, numbers)]


def _constants_handled(ctx: Context, mode: str, idx: np.ndarray) -> bool:
    """True when what the user normalizes with divides the constant entries by a nonzero number."""
    z, g = ctx.Z, ctx.given
    if z is not None:
        zs = z.stats(mode, ctx.channel_axis)
        zmean, zvar = np.ravel(zs.mean)[idx], np.ravel(zs.var)[idx]
        return bool(np.all(np.isfinite(zmean)) and np.all(np.abs(zmean) < NOT_SCALED_RMS) and np.all(zvar == 0))
    if g is not None and g.size > int(idx.max()):
        return bool(np.all(g.scale[idx] != 0))
    return False


def once_too_often(f: object) -> bool:
    mn, mx = float(np.nanmin(f.min)), float(np.nanmax(f.max))  # type: ignore[attr-defined]
    return mn >= 0 and 0 < mx <= ONCE_SCALED_MAX * (1 + 1e-3)


def double_scaling(ctx: Context) -> list[Finding]:
    """Images divided by 255 twice, or data standardized twice."""
    f = fed(ctx)
    if f is None:
        return []
    out = []
    x = ctx.X
    if ctx.is_image and once_too_often(f):
        mx = float(np.nanmax(f.max))
        msg = (f"{f.label} lies in [{fmt(np.nanmin(f.min))}, {fmt(mx)}], at most 1/255 = {fmt(1 / 255)}: the images "
               "were divided by 255 twice")
        numbers: dict = {"max": mx}
        if x is not None and f.how != "as-given":
            raw_max = float(np.max(x.stats("global", -1).max))
            factor = raw_max / mx
            factor = float(round(factor)) if abs(factor - round(factor)) < 1e-5 * factor else factor  # float32
            numbers["factor"] = factor
            if raw_max <= 1:
                msg += (f" (the training data was already in [0, 1], max {fmt(raw_max)}, and was divided by "
                        f"{fmt(factor)} again)")
            else:
                msg += f" (the training data, max {fmt(raw_max)}, was divided by {fmt(factor)} in total)"
        msg += ", so the model sees inputs 255 times smaller than intended."
        hint = ("x = normlab.Scale(by=255).fit(x_uint8).transform(x_uint8)   # divide by 255 once\n"
                "# data already in [0, 1] (after ToTensor() or an earlier x / 255) must not be divided again")
        m = ctx.model
        if m is not None and m.steps:
            msg += f" One of the divisions is the model's own {m.names}."
            numbers["model_layers"] = [s.name for s in m.steps]
            hint = (f"model.fit(x_uint8, ...)   # the model's {m.names} already scales: feed the raw pixels\n"
                    "# or keep x / 255 and rebuild the model without that layer")
        out.append(Finding("double-scaling", "error", f.role, msg, hint, numbers))
        return out
    if f.how == "as-given" or not np.all((f.std > 0) & ((f.std < 0.5) | (f.std > 2))):
        return out  # a second standardization changes the std by 2x or more; nothing to undo otherwise
    candidates = []
    g = ctx.given
    if g is not None and g.family in ("standardize", "center") and g.size == f.mean.size:
        candidates.append(("the given statistics", g.center, g.scale))
    if x is not None and f.how == "normalized":
        s = x.stats(f.mode, ctx.channel_axis)
        mu, sd = np.ravel(s.mean), np.ravel(np.sqrt(s.var))
        candidates.append(("the training data's own statistics", mu, sd))
        if x.x.dtype.kind in "ui":
            candidates.append(("the training data's statistics on the [0, 1] scale", mu / 255, sd / 255))
    for what, c, sc in candidates:
        if np.any(sc <= 0):
            continue
        u_mean, u_std = f.mean * sc + c, f.std * sc
        if np.all(np.abs(u_mean) < 0.05) and np.all(np.abs(u_std - 1) < 0.05):
            msg = (f"{f.label} has mean {fmt_seq(f.mean)} and std {fmt_seq(f.std)}, yet undoing one "
                   f"(x - {fmt_seq(c)}) / {fmt_seq(sc)} ({what}) leaves mean {fmt_seq(u_mean + 0.0, 2)} and std "
                   f"{fmt_seq(u_std, 3)}: the data was standardized twice, so the model sees inputs with std "
                   f"{fmt_seq(f.std)} instead of 1.")
            per = f.mode if f.mode != "global" else "channel"
            hint = (f'norm = normlab.Standardize(per="{per}").fit(x_train_raw)   # once, from the raw data\n'
                    "x = norm.transform(x_raw)   # not norm.transform(x_already_normalized)")
            numbers = {"mean": as_list(f.mean), "std": as_list(f.std), "undone_mean": as_list(u_mean),
                       "undone_std": as_list(u_std), "center": as_list(c), "scale": as_list(sc)}
            out.append(Finding("double-scaling", "error", f.role, msg, hint, numbers))
            break
    return out
