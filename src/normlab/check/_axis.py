"""Checks that compare normalized data with the raw data: the axis it was normalized along, wrap-around."""

from __future__ import annotations

import numpy as np

from normlab._format import fmt, fmt_seq
from normlab.check._context import Context
from normlab.check._explain import Explanation, Wrap, channels_last, find_wrap
from normlab.check._findings import Finding
from normlab.check._shared import constant_mask, explanation

__all__ = ["uint8_wraparound", "wrap_of", "wrong_axis"]

#: Share of images whose intensity order may break before an unexplained normalization is reported: a
#: monotone map (any per= mode, or a nonlinear one such as log or sqrt) breaks it in none, so 1% leaves
#: room for rounding ties while any real reordering (a wrong axis, misaligned rows) breaks it in most.
RANK_BROKEN_SHARE = 0.01
#: Per-sample normalization of a table is sound only when its features share units; above this ratio of
#: feature stds they clearly do not (a row's values then depend on its largest feature).
ROW_MIXING_RATIO = 10.0

_PAIRS = (("train", "normalized"), ("test", "test_normalized"))

_NATURE = {
    "unit-l2": "has unit L2 norm",
    "unit-l1": "has unit L1 norm (its absolute values sum to 1)",
    "standardized": "has mean 0 and std 1",
    "minmax": "spans [0, 1]",
    "unit-max": "has a largest absolute value of 1",
    "affine": "was scaled and shifted with its own statistics",
}


def wrap_of(ctx: Context, raw_role: str, norm_role: str) -> Wrap | None:
    raw, norm = ctx.get(raw_role), ctx.get(norm_role)
    if raw is None or norm is None or raw.x.dtype.kind not in "ui":
        return None

    def compute() -> Wrap | None:
        e = explanation(ctx, raw_role, norm_role)
        assert e is not None
        if e.keep is not None:  # an exact affine map per group: nothing wrapped
            return None
        return find_wrap(raw.subsample(e.index), norm.subsample(e.index), raw.x.dtype,
                         channel_axis=ctx.channel_axis, has_channel=ctx.has_channel)

    return ctx.cached(("wrap", raw_role, norm_role), compute)


def _groups(ctx: Context, keep: tuple[int, ...]) -> tuple[str, list[str], list[str], list[int]]:
    """Name the groups of values that share one statistic, e.g. ``each image column``."""
    names = ctx.axis_names()
    shape = (2, *ctx.internal_shape)  # axis 0 always has many entries
    kept = [names[a] for a in keep]
    red_axes = [a for a in range(len(shape)) if a not in keep and shape[a] > 1]
    red = [names[a] for a in red_axes]
    phrases = {
        ("h",): "each image column",
        ("w",): "each image row",
        ("n",): "each pixel position (over all images)",
        ("h", "n"): "each column position (over all images and rows)",
        ("n", "w"): "each row position (over all images and columns)",
        ("c",): "each pixel's channel vector",
    }
    phrase = phrases.get(tuple(sorted(red))) if ctx.is_image else None
    if phrase is None:
        phrase = f"each ({', '.join(kept) or 'all'}) group (over {', '.join(red)})"
    return phrase, kept, red, red_axes


def _call(nature: str, red_axes: list[int], user_ndim: int) -> str:
    if len(red_axes) != 1 or red_axes[0] >= user_ndim:
        return ""
    r = red_axes[0]
    return {
        "unit-l2": f"keras.utils.normalize(x, axis={r})" + (" (axis=-1, the default)" if r == user_ndim - 1
                                                            else ""),
        "unit-l1": f"x / np.abs(x).sum(axis={r}, keepdims=True)",
        "standardized": f"(x - x.mean(axis={r}, keepdims=True)) / x.std(axis={r}, keepdims=True)",
        "minmax": f"min-max scaling along axis {r}",
        "unit-max": f"x / np.abs(x).max(axis={r}, keepdims=True)",
    }.get(nature, f"statistics computed along axis {r}")


def _rank_text(e: Explanation, ctx: Context) -> str:
    if not e.rank_checked:
        return ""
    pct = 100 * e.rank_broken / e.rank_checked
    unit = "image channels" if ctx.has_channel and ctx.n_channels > 1 else "images"
    text = (f"It does not preserve the order of pixel intensities inside an image: in {fmt(e.rank_broken)} of "
            f"{fmt(e.rank_checked)} {unit} checked ({fmt(pct, 3)}%) a darker pixel became brighter than a lighter "
            "one")
    ex = e.example
    if ex:
        where = f"image {ex['sample']}" + (f", channel {ex['channel']}" if ex.get("channel") is not None else "")
        text += (f"; e.g. in {where} a pixel of {fmt(ex['x_dim'])} became {fmt(ex['z_dim'])} while a pixel of "
                 f"{fmt(ex['x_bright'])} became {fmt(ex['z_bright'])}")
    return text + "."


def _image_fix(ctx: Context) -> str:
    add_c = len(ctx.user_shape) + 1 < ctx.ndim
    lines = []
    if add_c:
        lines.append("x = x[..., None]                                         # (n, h, w) -> (n, h, w, 1)")
    lines += ['x = normlab.LpNormalize(per="sample").fit_transform(x)   # unit L2 norm per image, or',
              'norm = normlab.Standardize(per="channel").fit(x_train)   # mean 0, std 1 per channel',
              "x_train, x_test = norm.transform(x_train), norm.transform(x_test)"]
    return "\n".join(lines)


def _judge(ctx: Context, e: Explanation, raw_role: str, norm_role: str) -> Finding | None:
    norm = ctx.get(norm_role)
    assert norm is not None
    label = norm.label
    numbers: dict = {"residual": e.residual, "rank_checked": e.rank_checked, "rank_broken": e.rank_broken,
                     "example": e.example}
    if e.keep is None:
        if wrap_of(ctx, raw_role, norm_role) is not None or not e.rank_checked:
            return None
        if e.rank_broken <= RANK_BROKEN_SHARE * e.rank_checked:
            return None  # a monotone but nonlinear map (log, sqrt, gamma): intensities keep their order
        numbers["mode"] = None
        msg = (f"no per-channel, per-pixel or per-image scaling explains {label} in terms of the raw data "
               f"(best fit residual {fmt(100 * e.residual, 3)}% of its spread). {_rank_text(e, ctx)} Check that "
               "the normalized samples are the raw samples in the same order, and the axis it was normalized along.")
        return Finding("wrong-axis", "warning", norm_role, msg, _image_fix(ctx), numbers)
    phrase, kept, red, red_axes = _groups(ctx, e.keep)
    numbers.update(mode=e.mode, kept_axes=kept, reduced_axes=red, nature=e.nature,
                   axis=red_axes[0] if len(red_axes) == 1 else None)
    if e.mode in ("global", "channel", "sample-channel") or (e.mode == "sample" and ctx.is_image):
        return None
    layout = ctx.layout_text()
    if e.mode == "feature":
        if not ctx.is_image:
            return None
        msg = (f"every pixel position of {label} was normalized with its own statistics (per='feature', like "
               f"scikit-learn's StandardScaler on flattened images). {_rank_text(e, ctx)} Near-constant border "
               "pixels are amplified too. Fine for an MLP on aligned images; for a CNN, per='channel' keeps each "
               "image's contrast.")
        hint = 'norm = normlab.Standardize(per="channel").fit(x_train)   # one mean and std per channel'
        return Finding("wrong-axis", "info", norm_role, msg, hint, numbers)
    if e.mode == "sample" and not ctx.is_image:
        raw = ctx.get(raw_role)
        assert raw is not None
        s = raw.stats("feature", ctx.channel_axis)
        std = np.ravel(np.sqrt(s.var))
        live = ~np.ravel(constant_mask(s.count, s.mean, s.var)) & (std > 0)
        ratio = float(std[live].max() / std[live].min()) if live.sum() >= 2 else 1.0
        if ratio <= ROW_MIXING_RATIO:
            return None
        numbers["feature_std_ratio"] = ratio
        call = {"unit-l2": "keras.utils.normalize(x, axis=1) or scikit-learn's Normalizer",
                "unit-l1": "scikit-learn's normalize(x, norm='l1') or x / x.sum(axis=1, keepdims=True)"}.get(
            e.nature, "statistics computed along axis 1")
        msg = (f"each sample (row) of {label} {_NATURE[e.nature]}: this is {call} on an {layout} table. Every "
               f"feature of a row is divided by the same number, which mixes features measured in different units "
               f"(their stds differ {fmt(ratio)}x), so each row's values are dominated by its largest feature. "
               "Use per='feature': one statistic per feature.")
        hint = ('norm = normlab.Standardize(per="feature").fit(x_train)   # one mean and std per feature\n'
                "x_train, x_test = norm.transform(x_train), norm.transform(x_test)")
        return Finding("wrong-axis", "warning", norm_role, msg, hint, numbers)
    call = _call(e.nature, red_axes, len(ctx.user_shape) + 1)
    msg = f"{phrase} of {label} {_NATURE[e.nature]}"
    if call:
        msg += f": this is {call} on an {layout} {'stack' if ctx.is_image else 'array'}"
    msg += (f", which normalizes along {', '.join(red)} with one statistic per ({', '.join(kept)}) instead of per "
            "image or per channel.")
    rank = _rank_text(e, ctx)
    if rank:
        msg += " " + rank
    msg += " Use per='sample' (one statistic per image) or per='channel'."
    numbers["call"] = call
    return Finding("wrong-axis", "error", norm_role, msg, _image_fix(ctx) if ctx.is_image else
                   'norm = normlab.Standardize(per="feature").fit(x_train)', numbers)


def wrong_axis(ctx: Context) -> list[Finding]:
    """Normalized data whose statistics were computed along an axis that breaks what samples mean."""
    out: list[Finding] = []
    keeps = []
    for raw_role, norm_role in _PAIRS:
        e = explanation(ctx, raw_role, norm_role)
        if e is None:
            continue
        if e.keep is not None and e.keep in keeps:  # the test data went the same (wrong) way: said once
            continue
        f = _judge(ctx, e, raw_role, norm_role)
        if f is not None:
            out.append(f)
            keeps.append(e.keep)
    return out


def uint8_wraparound(ctx: Context) -> list[Finding]:
    """Normalized data still in an unsigned integer dtype, or values that wrapped around modulo 2**bits."""
    out = []
    for raw_role, norm_role in _PAIRS:
        norm, raw = ctx.get(norm_role), ctx.get(raw_role)
        if norm is None:
            continue
        w = wrap_of(ctx, raw_role, norm_role)
        unsigned = norm.x.dtype.kind == "u"
        if unsigned and raw is not None and w is None and raw.x.dtype == norm.x.dtype and \
                np.array_equal(raw.x, norm.x):
            continue  # not normalized at all: the magnitude check says so
        if w is None and not unsigned:
            continue
        numbers: dict = {"dtype": str(norm.x.dtype)}
        if w is not None:
            assert raw is not None
            m = w.modulus
            xs = channels_last(raw.x, ctx.channel_axis, ctx.has_channel)
            wrapped = float(np.mean(xs < w.shift)) if w.shift.size == 1 else float(
                np.mean(np.stack([xs[..., c] < w.shift[c] for c in range(w.shift.size)])))
            k = w.shift
            ks = fmt_seq(k, limit=k.size)
            a0, b0 = float(w.a[0]), float(w.b[0])
            formula = f"(x - {ks}) mod {m}"
            if not np.allclose(w.a, 1):
                inv = 1 / a0
                formula = f"({formula}) / {fmt(round(inv))}" if abs(inv - round(inv)) < 1e-4 * inv else \
                    f"({formula}) x {fmt(a0)}"
            if abs(b0) > 1e-6 * a0 * m:  # more than rounding
                formula += f" + {fmt(b0)}"
            z0 = (m - int(k[0])) % m * float(w.a[0]) + float(w.b[0])
            numbers.update(shift=[int(v) for v in k], modulus=m, wrapped_share=wrapped, a=float(w.a[0]),
                           b=float(w.b[0]), zero_becomes=z0)
            dtype_text = f"has dtype {norm.x.dtype} and " if unsigned else ""
            msg = (f"{norm.label} {dtype_text}equals {formula} of the raw data: the subtraction was done in "
                   f"{raw.x.dtype}, which wraps around, so the {fmt(100 * wrapped, 3)}% of values below {ks} became "
                   f"the largest values instead of negative ones (a raw 0 became {fmt(z0)}).")
        else:
            lo, hi = int(norm.x.min()), int(norm.x.max())
            numbers.update(min=lo, max=hi)
            msg = (f"{norm.label} still has dtype {norm.x.dtype} (values {lo}..{hi}): normalized values are "
                   f"fractions and centered values are negative, which {norm.x.dtype} cannot hold; arithmetic on "
                   f"{norm.x.dtype} arrays wraps around modulo {2 ** (8 * norm.x.dtype.itemsize)}.")
        hint = ("x = x_uint8.astype(np.float32)   # convert to float before any arithmetic\n"
                "x = (x - mean) / std\n"
                "# or let normlab do it, uint8 in, float32 out:\n"
                'x = normlab.Standardize(per="channel").fit(x_train).transform(x_uint8)')
        out.append(Finding("uint8-wraparound", "error", norm_role, msg, hint, numbers))
    return out
