"""Checks on the statistics themselves: a variance passed as a std (or back), a std averaged per image.

Both compare the given statistics with the data when the training data is given, and otherwise with the
constants everybody copies (ImageNet, MNIST, Fashion-MNIST, CIFAR-10), whose stds and variances are
known.
"""

from __future__ import annotations

import numpy as np

from normlab._format import as_list, fmt, fmt_ratio, fmt_seq
from normlab.check._context import Context
from normlab.check._findings import Finding
from normlab.check._given import Given
from normlab.check._shared import stats_used

__all__ = ["KNOWN", "averaged_std", "known_match", "std_as_variance"]

#: Statistics on the [0, 1] scale that tutorials copy. The CIFAR-10 std is the pooled std of the
#: training images; MNIST and Fashion-MNIST match their training splits (see shared/data/README.md).
KNOWN: dict[str, dict[str, tuple[float, ...]]] = {
    "ImageNet": {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
    "MNIST": {"mean": (0.1307,), "std": (0.3081,)},
    "Fashion-MNIST": {"mean": (0.2860,), "std": (0.3530,)},
    "CIFAR-10": {"mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616)},
}
#: The widely copied CIFAR-10 "std" that is really the average of per-image stds.
AVERAGED_KNOWN: dict[str, tuple[float, ...]] = {"CIFAR-10": (0.2023, 0.1994, 0.2010)}

#: Constants are quoted to 3-4 decimals; a variance computed from a quoted std is off by less than 1e-4.
CONST_TOL = 5e-4
#: A given std "is" the data's variance when within 5% of it (statistics copied from another split or
#: version of the dataset differ by 1-2%), and is clearly not the std when more than 20% from it, which
#: rules out stds near 1, where std and variance coincide.
DATA_MATCH = 0.05
DATA_APART = 0.2
#: A std "is" the average of per-image stds when it is closer to that average than a quarter of the gap
#: between the average and the pooled std, and that gap is at least 1% of the pooled std. Pooled stds of
#: different splits or subsets of one dataset differ by up to about 1% (MNIST train 0.3081, test 0.3105),
#: so a correct constant copied from another split is never taken for a per-image average.
AVG_FRACTION = 0.25
AVG_MIN_GAP = 1e-2
#: Per-batch averages differ from the pooled std by only 0.1-0.2% (the batches' means vary little), less
#: than the difference between splits; they are recognised only when the given std reproduces one to
#: 1e-6 (a value computed on this very data, not a constant copied from elsewhere), with a gap of at least
#: 1e-4 of the pooled std so that the two cannot be confused by rounding.
BATCH_EXACT = 1e-6
BATCH_MIN_GAP = 1e-4
#: Batch sizes tried for per-batch averages, in file order, with and without the last partial batch.
BATCH_SIZES = (32, 64, 100, 128, 256, 512)


def known_match(values: np.ndarray, target: tuple[float, ...]) -> bool:
    t = np.asarray(target)
    return values.size == t.size and bool(np.all(np.abs(values - t) < CONST_TOL))


def _data_std(ctx: Context, g: Given) -> tuple[np.ndarray, float] | None:
    x = ctx.X
    if x is None or g.per not in ("global", "channel", "feature"):
        return None
    k = ctx.data_scale(g)
    s = x.stats(g.per, ctx.channel_axis)
    return np.ravel(np.sqrt(s.var)) / k, k


def std_as_variance(ctx: Context) -> list[Finding]:
    """A variance where a std is expected (or the other way round), from the data or known constants."""
    g = stats_used(ctx)
    if g is None:
        return []
    data = _data_std(ctx, g)
    for field in ("std", "var"):
        if field not in g.fields or ("std" in g.fields and "var" in g.fields):
            continue  # both present (a fitted normlab object): consistent by construction
        vals = g.fields[field]
        numbers: dict = {"field": field, "given": as_list(vals)}
        msg = ""
        if data is not None:
            sd, k = data
            var = sd**2
            looks, right = (var, sd) if field == "std" else (sd, var)
            if np.all(np.abs(vals - looks) <= DATA_MATCH * looks) and np.all(np.abs(vals - right) > DATA_APART * right):
                scale = f" on the scale of x / {fmt(k)}" if k != 1 else ""
                used = vals if field == "std" else np.sqrt(vals)
                numbers.update(data_std=as_list(sd), data_var=as_list(var), input_std=as_list(sd / used))
                if field == "std":
                    msg = (f"{g.label} std {fmt_seq(vals)} is the variance of the training data, {fmt_seq(var)}"
                           f"{scale}, not its std {fmt_seq(sd)}: dividing by it makes the inputs' std "
                           f"{fmt_ratio(sd / used)} instead of 1.")
                else:
                    msg = (f"{g.label} var {fmt_seq(vals)} is the std of the training data, {fmt_seq(sd)}{scale}, "
                           f"not its variance {fmt_seq(var)}: the std used is sqrt(var) = {fmt_seq(used)}, so the "
                           f"inputs' std is {fmt_ratio(sd / used)} instead of 1.")
        if not msg:
            for name, c in KNOWN.items():
                std = np.asarray(c["std"])
                looks = std**2 if field == "std" else std
                if known_match(vals, tuple(looks)):
                    numbers.update(known=name, known_std=list(c["std"]))
                    if field == "std":
                        msg = (f"{g.label} std {fmt_seq(vals)} equals {name}'s std squared: it is the variance. "
                               f"{name}'s std is {fmt_seq(std)}; dividing by the variance makes the inputs' std "
                               f"about {fmt_ratio(1 / std)} instead of 1.")
                    else:
                        msg = (f"{g.label} var {fmt_seq(vals)} equals {name}'s std: it is a std, not a variance "
                               f"(that is {fmt_seq(std**2)}); taking its square root makes the inputs' std about "
                               f"{fmt_ratio(std / np.sqrt(std))} instead of 1.")
                    break
        if msg:
            hint = ("std = np.sqrt(variance)   # pass the std, the square root of the variance\n"
                    'norm = normlab.Standardize(per="channel").fit(x_train)   # or compute both: norm.std_, norm.var_')
            return [Finding("std-as-variance", "error", _subject(g), msg, hint, numbers)]
    return []


def _subject(g: Given) -> str:
    return "stats" if g.label == "the given" else "normalized"


def _given_std(g: Given) -> np.ndarray | None:
    if "std" in g.fields:
        return g.fields["std"]
    if "var" in g.fields:
        return np.sqrt(np.maximum(g.fields["var"], 0.0))
    return None


def _averages(ctx: Context, mode: str, k: float) -> dict[str, np.ndarray]:
    """Averages of per-image and per-batch stds (file order), per channel, on the scale of x / k.

    These reproduce the wrong recipes, so they are computed from per-image means and variances
    (two-pass, float64, in chunks): a batch's variance is the mean of its images' variances plus the
    variance of their means (every image has the same number of values).
    """
    x = ctx.X
    assert x is not None
    n = x.n
    chunk = max(1, (8 << 20) // max(1, x.x[0].size * 8))
    means, varis = [], []
    for start in range(0, n, chunk):
        b = np.asarray(x.x[start:start + chunk], dtype=np.float64) / k
        if mode == "channel":
            b = np.moveaxis(b, ctx.channel_axis, -1)
            b = b.reshape(b.shape[0], -1, b.shape[-1])
        else:
            b = b.reshape(b.shape[0], -1, 1)
        means.append(b.mean(axis=1))
        varis.append(b.var(axis=1))
    m, v = np.concatenate(means), np.concatenate(varis)
    out = {"per-image": np.sqrt(v).mean(axis=0)}
    for size in BATCH_SIZES:
        nb = n // size
        if nb < 2:
            continue
        full_v = v[: nb * size].reshape(nb, size, -1).mean(axis=1) + m[: nb * size].reshape(nb, size, -1).var(axis=1)
        stds = np.sqrt(full_v)
        out[f"per-batch of {size} (drop_last)"] = stds.mean(axis=0)
        if n > nb * size:
            last = np.sqrt(v[nb * size:].mean(axis=0) + m[nb * size:].var(axis=0))
            out[f"per-batch of {size}"] = (stds.sum(axis=0) + last) / (nb + 1)
    return out


def averaged_std(ctx: Context) -> list[Finding]:
    """A std that averages per-image or per-batch stds instead of the pooled std over all pixels."""
    g = stats_used(ctx)
    s_given = None if g is None else _given_std(g)
    if g is None or s_given is None:
        return []
    hint = ('norm = normlab.Standardize(per="channel").fit(x_train)   # norm.std_ is the pooled std\n'
            "# from the command line: normlab stats DATASET --per channel")
    data = _data_std(ctx, g) if ctx.is_image and g.per in ("global", "channel") else None
    if data is not None:
        pooled, k = data
        avgs = ctx.cached(("averages", g.per, k), lambda: _averages(ctx, str(g.per), k))
        best = None
        for name, a in avgs.items():
            gap, off = np.abs(pooled - a), np.abs(s_given - a)
            if name == "per-image":
                hit = np.all(gap >= AVG_MIN_GAP * pooled) and np.all(off < AVG_FRACTION * gap)
            else:
                hit = np.all(gap >= BATCH_MIN_GAP * pooled) and np.all(off <= BATCH_EXACT * pooled)
            if hit:
                score = float(np.max(off / pooled))
                if best is None or score < best[0]:
                    best = (score, name, a)
        if best is not None:
            _, name, a = best
            short = 100 * float(np.mean((pooled - s_given) / pooled))
            what = ("the average of per-image stds" if name == "per-image" else
                    f"the average of {name.replace('per-batch of', 'per-batch stds over batches of')} in file order")
            msg = (f"{g.label} std {fmt_seq(s_given)} is {what} of the training data, {fmt_seq(a)}, not the "
                   f"pooled std over all its pixels, {fmt_seq(pooled)}: averaging per-{'image' if name == 'per-image' else 'batch'} "
                   f"stds leaves out how much {'images' if name == 'per-image' else 'batches'} differ from each "
                   f"other, so it is {fmt(short, 2)}% too small and the inputs' std is {fmt_ratio(pooled / s_given)} "
                   "instead of 1.")
            numbers = {"given": as_list(s_given), "averaged": as_list(a), "pooled": as_list(pooled), "recipe": name,
                       "too_small_percent": short}
            return [Finding("averaged-std", "warning", _subject(g), msg, hint, numbers)]
    for name, wrong in AVERAGED_KNOWN.items():
        if known_match(s_given, wrong):
            right = np.asarray(KNOWN[name]["std"])
            msg = (f"{g.label} std {fmt_seq(s_given)} is the widely copied {name} std that averages per-image "
                   f"stds; the pooled std of the {name} training images is {fmt_seq(right)}, so the inputs' std "
                   f"becomes about {fmt_ratio(right / s_given)} instead of 1.")
            numbers = {"given": as_list(s_given), "known": name, "pooled": list(KNOWN[name]["std"])}
            return [Finding("averaged-std", "warning", _subject(g), msg, hint, numbers)]
    return []
