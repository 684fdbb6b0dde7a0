"""The one :class:`Context` every check reads: the inputs aligned to one per-sample shape, and their summaries.

The raw training data ``X``, the normalized data ``Z``, a test set ``T`` and its normalized version ``ZT``
(any of them may be missing) are viewed with one common per-sample shape, next to the statistics ``S`` the
user normalizes with (:mod:`normlab.check._given`). The axis rules (a grayscale stack gets a channel axis,
how many entries each mode has, what ``per="auto"`` means here) are :mod:`normlab.core.axes`'. Expensive
summaries (exact statistics, the explanation of ``Z`` in terms of ``X``) are computed once, on first use,
and shared by the checks.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from normlab.check._data import ROLE_LABELS, Data, exact_stats, resolve_array
from normlab.check._given import Given, normalizer_name, resolve_given
from normlab.check._model import ModelInput, compose, per_sample, read_model
from normlab.core._batches import convention_channel_axis
from normlab.core.axes import (
    axis_names,
    channel_count,
    check_guessed_channel_axis,
    describe_layout,
    effective_per,
    entry_counts,
    resolve_layout,
    with_channel_axis,
)
from normlab.errors import DataError, LayoutError

__all__ = ["Context"]

#: Sample-axis subsample used by the per-sample analyses (affine fits, rank order): at most this many
#: values in total, and never fewer than 50 samples.
_SUBSAMPLE_VALUES = 500_000

_ROLES = ("train", "normalized", "test", "test_normalized")


class Context:
    """Aligned inputs, resolved layout and shared, lazily computed summaries."""

    def __init__(self, *, train: Any = None, normalized: Any = None, test: Any = None,
                 test_normalized: Any = None, normalizer: Any = None, stats: Any = None, per: str = "auto",
                 channel_axis: int | None = None, split: str = "train", max_samples: int = 2000, model: Any = None,
                 expects: Any = None) -> None:
        self.given = resolve_given(normalizer, stats)
        self.model: ModelInput | None = read_model(model) if model is not None else None
        self.expects = expects
        raw = {}
        for role, obj in zip(_ROLES, (train, normalized, test, test_normalized), strict=True):
            if obj is not None:
                raw[role] = resolve_array(obj, role, split)
        if not raw and self.given is None:
            raise DataError(
                "normlab.check() received no data; expected at least train= (the raw training data), or "
                "stats= to check statistics on their own."
            )
        self.max_samples = int(max_samples)
        self._cache: dict[Any, Any] = {}
        guessed = channel_axis is None  # the inputs' convention decides, checked by the one layout rule
        if guessed:
            first = next((o for o in (normalized, train, test_normalized, test) if o is not None), None)
            channel_axis = convention_channel_axis(first)
        self._align(raw, channel_axis, guessed)
        self._place_given()
        self.mode = self._resolve_mode(per)
        self.user_normalized = "normalized" in self.data  # before the model's input layers replace it
        self._apply_model()

    # ---- alignment ------------------------------------------------------------------------------

    def _align(self, raw: dict[str, tuple[np.ndarray, str, list[str] | None, bool]], channel_axis: int,
               guessed: bool = False) -> None:
        # The common per-sample shape is that of the normalized arrays when given (the user's own layout,
        # e.g. (n, 28, 28) from keras.datasets) and the raw data's otherwise.
        ref_role = next((r for r in ("normalized", "test_normalized", "train", "test") if r in raw), None)
        self.user_shape: tuple[int, ...] = ()
        self.data: dict[str, Data] = {}
        if ref_role is None:
            self.internal_shape: tuple[int, ...] = ()
            self.channel_axis = channel_axis
            self.has_channel = False
            return
        ref = raw[ref_role][0]
        if ref.ndim < 2:
            resolve_layout("auto", ref.shape, owner=f"normlab.check({ref_role}=...)")  # raises the usual error
        user = tuple(int(s) for s in ref.shape[1:])
        self.user_shape = user
        # A grayscale stack (n, h, w) gets a channel axis of size 1 internally (axes 0..2 keep their numbers).
        internal = with_channel_axis(user, channel_axis)
        self.internal_shape = internal
        self.has_channel = len(internal) >= 3  # images: (h, w, c) per sample
        lay = resolve_layout("auto", (1, *internal), channel_axis, owner="normlab.check()")
        if guessed:
            check_guessed_channel_axis(lay, "normlab.check()")
        self.channel_axis = lay.channel_axis
        for role, (x, source, names, pooled) in raw.items():
            per_sample = prod(x.shape[1:])
            if per_sample != prod(internal) or x.ndim < 2:
                raise LayoutError(
                    f"normlab.check(): {ROLE_LABELS[role]} has samples of shape {tuple(x.shape[1:])} but "
                    f"{ROLE_LABELS[ref_role]} has samples of shape {user}; expected the same values per "
                    "sample. Pass the normalized version of exactly the raw data given (same samples, same order)."
                )
            self.data[role] = Data(role, source, x.reshape(x.shape[0], *internal), tuple(x.shape), names,
                                   pooled=pooled)
        for a, b in (("train", "normalized"), ("test", "test_normalized")):
            if a in self.data and b in self.data and self.data[a].n != self.data[b].n:
                raise LayoutError(
                    f"normlab.check(): {ROLE_LABELS[b]} has {self.data[b].n} samples but {ROLE_LABELS[a]} has "
                    f"{self.data[a].n}; expected the same samples in the same order. Pass the raw data that "
                    "was normalized (without --limit or shuffling), or leave the raw data out."
                )

    def _place_given(self) -> None:
        """Decide what the given statistics are computed for (from their length) and check it fits the data."""
        g = self.given
        if g is None or not self.internal_shape or (g.family == "other" and g.size == 0):
            return
        if g.normalizer is not None:
            lay = g.normalizer.layout_
            if lay.ndim == self.ndim:
                self.channel_axis = lay.channel_axis
            if prod(lay.shape[1:]) != prod(self.internal_shape):
                if lay.per == "feature" or lay.ndim == 2:
                    raise LayoutError(
                        f"normlab.check(normalizer=...): {normalizer_name(g.normalizer)} was fitted on samples of shape "
                        f"{lay.shape[1:]} but the data has samples of shape {self.user_shape}; expected the "
                        "normalizer that is applied to this data."
                    )
        sizes = entry_counts(self.internal_shape, self.channel_axis, channels=self.has_channel)
        if g.per is None:
            g.per = next((m for m, k in sizes.items() if k == g.size), None)
            if g.per is None:
                raise LayoutError(
                    f"normlab.check(): the statistics have {g.size} entries, but data laid out as "
                    f"{self.layout_text()} with samples of shape {self.user_shape} has "
                    + ", ".join(f"{k} {m} entr{'y' if k == 1 else 'ies'}" for m, k in sizes.items())
                    + "; expected one value per channel (or per feature). Check the statistics belong to this data."
                )
        elif g.per in sizes and sizes[g.per] != g.size and g.per != "global":
            raise LayoutError(
                f"normlab.check(): the statistics hold {g.size} values per {g.per!r} but the data has "
                f"{sizes[g.per]}; expected statistics computed on data of this shape {self.user_shape}."
            )

    def _resolve_mode(self, per: str) -> str:
        if per not in ("auto", "global", "channel", "feature"):
            raise LayoutError(
                f"normlab.check(per={per!r}) is not a mode with fitted statistics; expected 'auto', 'global', "
                "'channel' or 'feature' (what your normalizer computes one statistic for)."
            )
        if self.given is not None and self.given.per in ("global", "channel", "feature"):
            per = self.given.per
        elif per == "auto":
            per = effective_per(self.internal_shape, self.channel_axis)
        pooled = next((d for d in self.data.values() if d.pooled), None)
        if pooled is not None and per == "feature":
            raise LayoutError(
                f"normlab.check(per='feature'): {pooled.source.split(', ')[0]} holds images of mixed sizes, so "
                "there is no pixel position common to all of them; expected images of one size for per-feature "
                "statistics. Check per channel (the default), or resize the images (CLI: --resize H W)."
            )
        return per

    # ---- the model's own input normalization --------------------------------------------------

    def _apply_model(self) -> None:
        """Replace the normalized data by what the model's first weight layer receives.

        The network sees the model's input maps applied to what it is fed: the normalized data when given,
        else the training data after the given statistics, else the training data itself. The test split
        goes the same way, unless only the training data's normalized version was given (then nothing
        says how the test data is prepared).
        """
        m = self.model
        self.model_fed: np.ndarray | None = None  # what the model's first input layer receives (train split)
        if m is None or not m.steps or not self.data:
            return
        a, b = compose(m, self.internal_shape, self.channel_axis, self.n_channels)
        first = f" {m.first_layer!r}" if m.first_layer else ""
        for raw_role, norm_role in (("train", "normalized"), ("test", "test_normalized")):
            base = self.fed_array(raw_role, norm_role)
            if base is None:
                continue
            if raw_role == "train":
                self.model_fed = base
            dt = np.float32 if base.dtype.itemsize <= 4 else np.float64
            net = np.multiply(base, a.astype(dt), dtype=dt)
            net += b.astype(dt)
            side = "the training data" if raw_role == "train" else "the test data"
            label = f"what the model's first layer{first} receives from {side} (after {m.names})"
            old = self.data.get(norm_role) or self.data[raw_role]
            self.data[norm_role] = Data(norm_role, f"{old.source} through {m.names}", net,
                                        (net.shape[0], *self.user_shape), old.names, label_text=label)

    def fed_array(self, raw_role: str, norm_role: str) -> np.ndarray | None:
        """What the user feeds for this split: the normalized data, or the raw data after the given
        statistics (or per-sample normalizer), or the raw data itself."""
        d = self.data.get(norm_role)
        if d is not None:
            return d.x
        x = self.data.get(raw_role)
        if x is None or (raw_role == "test" and self.user_normalized):
            return None
        g = self.given
        if g is not None and g.size > 0:
            k = self.data_scale(g)
            c = per_sample(g.center, self.internal_shape, self.channel_axis, self.n_channels, "the statistics")
            sc = per_sample(np.where(g.scale == 0, 1.0, g.scale), self.internal_shape, self.channel_axis,
                            self.n_channels, "the statistics")
            return ((np.asarray(x.x, dtype=np.float64) / k - c) / sc).astype(np.float32)
        if g is not None and g.normalizer is not None:
            out = g.normalizer.transform(x.x.reshape(x.n, *self.user_shape))
            return np.asarray(out).reshape(x.n, *self.internal_shape)
        return x.x

    # ---- accessors ------------------------------------------------------------------------------

    def get(self, role: str) -> Data | None:
        return self.data.get(role)

    @property
    def X(self) -> Data | None:  # the raw training data (the checks read best with these names)
        return self.data.get("train")

    @property
    def Z(self) -> Data | None:
        return self.data.get("normalized")

    @property
    def T(self) -> Data | None:
        return self.data.get("test")

    @property
    def ZT(self) -> Data | None:
        return self.data.get("test_normalized")

    @property
    def is_image(self) -> bool:
        return self.has_channel

    @property
    def ndim(self) -> int:
        return len(self.internal_shape) + 1

    @property
    def n_channels(self) -> int:
        """The length of the channel axis of the common per-sample shape."""
        return channel_count(self.internal_shape, self.channel_axis)

    def layout_text(self) -> str:
        """The user's layout, e.g. ``(n, h, w)`` for a grayscale stack or ``(n, h, w, c)``."""
        text = describe_layout(self.ndim, self.channel_axis)
        if len(self.user_shape) + 1 < self.ndim:  # the appended channel axis is not the user's
            text = text.replace(", c)", ")")
        return text

    def axis_names(self) -> list[str]:
        return axis_names(self.ndim, self.channel_axis)

    def entry_names(self, mode: str, names: list[str] | None = None) -> list[str]:
        """Labels of the statistics' entries: feature names, ``channel 1``, ``pixel (3, 4)`` or ``all values``."""
        if mode == "global":
            return ["all values"]
        if mode == "channel":
            return [f"channel {i}" for i in range(self.n_channels)]
        shape = self.internal_shape
        n = prod(shape)
        if names is not None and len(names) == n:
            return [repr(str(s)) for s in names]
        if len(shape) == 1:
            return [f"feature {i}" for i in range(n)]
        user = self.user_shape
        word = "pixel" if self.is_image else "position"
        return [f"{word} {tuple(int(v) for v in np.unravel_index(i, user))}" for i in range(n)]

    def names_for(self, role: str) -> list[str] | None:
        d = self.data.get(role)
        if d is not None and d.names:
            return d.names
        x = self.X
        return x.names if x is not None else None

    def sample_index(self, n: int) -> np.ndarray:
        """Evenly spaced samples (always including the first) for the per-sample analyses."""
        per_sample = max(1, prod(self.internal_shape))
        m = min(n, self.max_samples, max(50, _SUBSAMPLE_VALUES // per_sample))
        return np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))

    def data_scale(self, given: Given) -> float:
        """``k`` such that the statistics apply to ``x / k``: 255 when integer images meet [0, 1] statistics.

        torchvision's ``ToTensor`` divides 8-bit images by 255 before ``Normalize(mean, std)``; statistics
        whose means all lie in [0, 1] next to integer data with values above 1 are read that way.
        """
        x = self.X
        if given.exact or x is None or x.x.dtype.kind not in "ui" or "mean" not in given.fields:
            return 1.0
        s = x.stats("global", -1)
        if float(np.max(s.max)) > 1 and np.all(np.abs(given.fields["mean"]) <= 1):
            return float(np.iinfo(x.x.dtype).max) if x.x.dtype.itemsize <= 2 else 255.0
        return 1.0

    def pooled_stats(self, mode: str, quantiles: bool = False) -> Any:
        """Exact statistics of the training and test data together (what fitting on train + test gives)."""
        x, t = self.X, self.T
        assert x is not None and t is not None

        def compute() -> Any:
            (xa, nx), (ta, nt) = x.finite(), t.finite()
            nan = "ignore" if "ignore" in (nx, nt) else "raise"
            return exact_stats([xa, ta], mode, self.channel_axis, nan=nan, quantiles=quantiles)

        return self.cached(("pooled", mode, quantiles), compute)

    def cached(self, key: Any, fn: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def describe_inputs(self) -> dict[str, str]:
        out = {role: d.describe() for role, d in self.data.items()}
        if self.given is not None:
            out["stats"] = self.given.source
        if self.model is not None:
            out["model"] = self.model.describe()
        if self.data:
            out["layout"] = f"{self.layout_text()}, statistics per {self.mode!r}"
        return out
