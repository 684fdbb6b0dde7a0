"""What ``per=`` means: the one place where a normalization mode becomes axes.

NumPy's ``axis`` means "reduce over", Keras' ``Normalization(axis=)`` means "keep", sklearn always reduces
over axis 0. normlab never asks for a bare axis number; it asks what *one statistic is computed for*:

================  ================================  =======================================
``per=``          one statistic for each ...         reduces over (channels-last ``n h w c``)
================  ================================  =======================================
``"global"``      the whole dataset                  all axes
``"channel"``     channel                            n, h, w
``"feature"``     feature position (sklearn style)   n
``"sample"``      sample, over all its values        h, w, c of that sample
``"sample-channel"`` sample and channel              h, w of that sample
================  ================================  =======================================

``"auto"`` resolves to ``"feature"`` for 2-D input and ``"channel"`` for input of 3 or more dimensions.
``channel_axis`` (default ``-1``) says where channels are; ``1`` serves channels-first data.

Every stateful mode keeps a contiguous run of axes, so a C-contiguous batch can always be viewed without
a copy as ``(a, k, b)``: reduce over ``a`` and ``b``, keep ``k``. Statistics code works on that view only.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from normlab.errors import LayoutError

__all__ = [
    "CONVENTIONS",
    "PER_MODES",
    "STATEFUL_MODES",
    "Layout",
    "check_guessed_channel_axis",
    "describe_layout",
    "resolve_layout",
    "resolve_per",
]

PER_MODES = ("auto", "global", "channel", "feature", "sample", "sample-channel")
STATEFUL_MODES = ("global", "channel", "feature")
SAMPLE_MODES = ("sample", "sample-channel")

_AXIS_NAMES = {2: "n f", 3: "n h w", 4: "n h w c", 5: "n d h w c"}


def resolve_per(per: str, ndim: int) -> str:
    """Return the concrete mode for ``per`` on ``ndim``-dimensional input (``"auto"`` resolved)."""
    if per not in PER_MODES:
        raise LayoutError(
            f"per={per!r} is not a normalization mode; expected one of {', '.join(map(repr, PER_MODES))}. "
            "Say what one statistic is computed for, e.g. per='channel' for images, per='feature' for tables."
        )
    if per == "auto":
        return "feature" if ndim <= 2 else "channel"
    return per


def describe_layout(ndim: int, channel_axis: int = -1) -> str:
    """Name the axes einops-style, e.g. ``(n, h, w, c)`` or ``(n, c, h, w)``.

    >>> describe_layout(4, 1)
    '(n, c, h, w)'
    >>> describe_layout(2)
    '(n, f)'
    """
    if ndim <= 1:
        return "(n,)"
    if ndim == 2:
        return "(n, f)"
    names = [f"d{i}" for i in range(ndim)]
    names[0] = "n"
    spatial = {1: ["l"], 2: ["h", "w"], 3: ["d", "h", "w"]}.get(ndim - 2)
    cax = channel_axis % ndim if -ndim <= channel_axis < ndim else ndim - 1
    rest = [i for i in range(1, ndim) if i != cax]
    if spatial is not None:
        for i, name in zip(rest, spatial, strict=True):
            names[i] = name
    names[cax] = "c"
    return "(" + ", ".join(names) + ")"


@dataclass(frozen=True)
class Layout:
    """The axes of one concrete input shape under one ``per=`` mode.

    Attributes
    ----------
    per : str
        The resolved mode (never ``"auto"``).
    shape : tuple of int
        The input shape, sample axis first.
    channel_axis : int
        Non-negative index of the channel axis.
    reduce_axes, keep_axes : tuple of int
        Axes a statistic is computed over, and axes it is computed for. Together they are all axes.
    """

    per: str
    shape: tuple[int, ...]
    channel_axis: int
    reduce_axes: tuple[int, ...]
    keep_axes: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def stateful(self) -> bool:
        """True when the statistics are fitted on training data (not recomputed per sample)."""
        return self.per in STATEFUL_MODES

    @property
    def stat_shape(self) -> tuple[int, ...]:
        """Shape of one fitted statistic, e.g. ``(c,)`` for ``per="channel"``, ``()`` for global."""
        return tuple(self.shape[a] for a in self.keep_axes if a != 0)

    @property
    def broadcast_shape(self) -> tuple[int, ...]:
        """Shape a fitted statistic takes to broadcast against the input: 1 on every reduced axis."""
        return tuple(1 if a in self.reduce_axes or a == 0 else n for a, n in enumerate(self.shape))

    def describe(self) -> str:
        return describe_layout(self.ndim, self.channel_axis)

    def as_3d(self, x: np.ndarray) -> np.ndarray:
        """View ``x`` as ``(a, k, b)``: reduce over ``a`` and ``b``, keep ``k`` (stateful modes only).

        The view is free for C-contiguous input; otherwise NumPy copies once.
        """
        if not self.stateful:
            raise LayoutError(f"per={self.per!r} keeps the sample axis; it has no fitted statistics.")
        if self.per == "global":
            return x.reshape(-1, 1, 1)
        if self.per == "feature":
            return x.reshape(x.shape[0], -1, 1)
        c = self.channel_axis
        return x.reshape(prod(x.shape[:c]), x.shape[c], prod(x.shape[c + 1 :]))


#: What a channel axis that normlab chose (rather than the user) stands for, by the input's convention.
CONVENTIONS = {-1: "channels-last, the NumPy convention", 1: "channels-first, the PyTorch convention"}


def check_guessed_channel_axis(layout: Layout, owner: str = "normlab") -> None:
    """Refuse a channel axis normlab chose by convention when the data says otherwise.

    The rule, one for the API, the CLI, ``check`` and the adapters: when the channel axis was not given and
    the one the input's convention picks (``-1`` for NumPy, ``1`` for PyTorch) holds more than 4 entries
    while another non-sample axis holds 1, 3 or 4, the data is probably laid out the other way, so a
    :class:`~normlab.errors.LayoutError` names both readings and the argument that picks one.

    >>> check_guessed_channel_axis(resolve_layout("channel", (8, 32, 32, 3)))   # channels-last: fine
    >>> check_guessed_channel_axis(resolve_layout("channel", (8, 1, 28, 28)))
    Traceback (most recent call last):
    ...
    normlab.errors.LayoutError: normlab chose channel_axis=-1 (channels-last, the NumPy convention) for input of shape (8, 1, 28, 28), but that axis holds 28 entries while axis 1 holds 1: the data looks channels-first, (n, c, h, w) with 1 channel(s). Pass channel_axis=1 to read it that way, or channel_axis=-1 to keep 28 channels (CLI: --channel-axis).
    """
    if layout.per not in ("channel", "sample-channel") or layout.ndim < 3:
        return
    cax = layout.channel_axis
    n_channels = layout.shape[cax]
    others = [a for a in range(1, layout.ndim) if a != cax and layout.shape[a] in (1, 3, 4)]
    if n_channels <= MAX_CHANNELS or not others:
        return
    given = -1 if cax == layout.ndim - 1 else cax
    other = others[0]
    other_arg = -1 if other == layout.ndim - 1 else other
    reading = "channels-last, (n, h, w, c)" if other_arg == -1 else "channels-first, (n, c, h, w)"
    if layout.ndim != 4:
        reading = f"channels on axis {other}"
    raise LayoutError(
        f"{owner} chose channel_axis={given} ({CONVENTIONS.get(given, 'by convention')}) for input of shape "
        f"{layout.shape}, but that axis holds {n_channels} entries while axis {other} holds "
        f"{layout.shape[other]}: the data looks {reading} with {layout.shape[other]} channel(s). Pass "
        f"channel_axis={other_arg} to read it that way, or channel_axis={given} to keep {n_channels} channels "
        "(CLI: --channel-axis)."
    )


def resolve_layout(per: str, shape: tuple[int, ...], channel_axis: int = -1, *, owner: str = "") -> Layout:
    """Compute the axes for ``per`` on an input of ``shape`` (sample axis first).

    >>> lay = resolve_layout("channel", (8, 32, 32, 3))
    >>> lay.reduce_axes, lay.keep_axes, lay.stat_shape, lay.broadcast_shape
    ((0, 1, 2), (3,), (3,), (1, 1, 1, 3))
    >>> resolve_layout("auto", (100, 20)).per
    'feature'
    >>> resolve_layout("sample-channel", (8, 3, 28, 28), channel_axis=1).reduce_axes
    (2, 3)
    """
    who = owner or "normlab"
    ndim = len(shape)
    if ndim < 2:
        raise LayoutError(
            f"{who} received a {ndim}-D array of shape {tuple(shape)}; expected at least 2-D data laid "
            "out as (n, f) or (n, h, w, c), samples first. Reshape your data: x.reshape(-1, 1) for a single "
            "feature, x.reshape(1, -1) for a single sample."
        )
    mode = resolve_per(per, ndim)
    if not isinstance(channel_axis, (int, np.integer)) or isinstance(channel_axis, bool):
        raise LayoutError(f"{who}: channel_axis={channel_axis!r} must be an integer, e.g. -1 or 1.")
    if not -ndim <= channel_axis < ndim or channel_axis % ndim == 0:
        raise LayoutError(
            f"{who}: channel_axis={channel_axis} is not a channel axis of a {ndim}-D array of shape "
            f"{tuple(shape)}; expected an axis in 1..{ndim - 1} (or -1..-{ndim - 1}), since axis 0 holds "
            "the samples. Use channel_axis=-1 for channels-last and 1 for channels-first data."
        )
    cax = int(channel_axis) % ndim
    all_axes = tuple(range(ndim))
    if mode == "global":
        keep: tuple[int, ...] = ()
    elif mode == "channel":
        keep = (cax,)
    elif mode == "feature":
        keep = all_axes[1:]
    elif mode == "sample":
        keep = (0,)
    else:  # sample-channel
        keep = (0, cax)
    reduce = tuple(a for a in all_axes if a not in keep)
    return Layout(per=mode, shape=tuple(int(n) for n in shape), channel_axis=cax, reduce_axes=reduce, keep_axes=keep)


# --------------------------------------------------------------------------------------------------
# Per-sample shapes: where the channels are, how many entries each mode has
# --------------------------------------------------------------------------------------------------

__all__ += ["MAX_CHANNELS", "axis_names", "channel_count", "distinct_keep_axes", "effective_per", "entry_counts",
            "with_channel_axis"]

#: A last axis of at most this many entries can hold channels (gray, gray + alpha, RGB, RGBA); a longer
#: last axis of a 3-D stack is the width of grayscale images.
MAX_CHANNELS = 4


def with_channel_axis(sample_shape: tuple[int, ...], channel_axis: int = -1) -> tuple[int, ...]:
    """The per-sample shape with a channel axis of size 1 appended when a grayscale image stack has none.

    A 3-D stack ``(n, h, w)`` (``keras.datasets.mnist``) whose last axis is longer than
    :data:`MAX_CHANNELS` is read as images without a channel axis; with ``channel_axis=-1`` the appended
    axis keeps axes 0..2 at the user's numbers. Every other shape is returned as it is.

    >>> with_channel_axis((28, 28))
    (28, 28, 1)
    >>> with_channel_axis((32, 32, 3)), with_channel_axis((28, 3)), with_channel_axis((28, 28), 1)
    ((32, 32, 3), (28, 3), (28, 28))
    """
    shape = tuple(int(s) for s in sample_shape)
    if len(shape) == 2 and shape[-1] > MAX_CHANNELS and channel_axis == -1:
        return (*shape, 1)
    return shape


def channel_count(sample_shape: tuple[int, ...], channel_axis: int = -1) -> int:
    """The length of the channel axis of samples of ``sample_shape``.

    ``channel_axis`` counts the axes of the whole input (axis 0 holds the samples), as everywhere in normlab.

    >>> channel_count((32, 32, 3)), channel_count((3, 32, 32), 1), channel_count((28, 28, 1), 3)
    (3, 3, 1)
    """
    return int(sample_shape[channel_axis % (len(sample_shape) + 1) - 1])


def entry_counts(sample_shape: tuple[int, ...], channel_axis: int = -1, *, channels: bool = True) -> dict[str, int]:
    """How many entries one fitted statistic has under each stateful mode, in the order of :data:`STATEFUL_MODES`.

    ``channels=False`` leaves ``"channel"`` out (samples without a channel axis).

    >>> entry_counts((28, 28, 1))
    {'global': 1, 'channel': 1, 'feature': 784}
    >>> entry_counts((30,), channels=False)
    {'global': 1, 'feature': 30}
    """
    counts = {"global": 1}
    if channels:
        counts["channel"] = channel_count(sample_shape, channel_axis)
    counts["feature"] = prod(sample_shape)
    return counts


def effective_per(sample_shape: tuple[int, ...], channel_axis: int = -1) -> str:
    """The stateful mode ``per="auto"`` amounts to for samples of ``sample_shape``.

    Per-channel statistics of single-channel data are global ones, so that case gives ``"global"``, as
    does an empty shape (no data at all).

    >>> effective_per((32, 32, 3)), effective_per((28, 28, 1)), effective_per((30,)), effective_per(())
    ('channel', 'global', 'feature', 'global')
    """
    if not sample_shape:
        return "global"
    per = resolve_layout("auto", (1, *sample_shape), channel_axis).per
    if per == "channel" and channel_count(sample_shape, channel_axis) == 1:
        return "global"
    return per


def axis_names(ndim: int, channel_axis: int = -1) -> list[str]:
    """The einops names of the axes of an ``ndim``-dimensional input, as :func:`describe_layout` writes them.

    >>> axis_names(4), axis_names(4, 1), axis_names(2)
    (['n', 'h', 'w', 'c'], ['n', 'c', 'h', 'w'], ['n', 'f'])
    """
    return describe_layout(ndim, channel_axis).strip("()").split(", ")


def distinct_keep_axes(shape: tuple[int, ...], channel_axis: int = -1, *,
                       channels: bool = True) -> dict[str, tuple[int, ...]]:
    """The kept axes of every ``per=`` mode on ``shape`` (samples first), size-1 axes left out.

    A mode that keeps the same axes as an earlier one is left out too, so each entry is a different way of
    grouping the values; ``channels=False`` leaves out the modes that need a channel axis.

    >>> distinct_keep_axes((10, 28, 28, 1))
    {'global': (), 'feature': (1, 2), 'sample': (0,)}
    >>> distinct_keep_axes((10, 32, 32, 3))
    {'global': (), 'channel': (3,), 'feature': (1, 2, 3), 'sample': (0,), 'sample-channel': (0, 3)}
    """
    out: dict[str, tuple[int, ...]] = {}
    for mode in (*STATEFUL_MODES, *SAMPLE_MODES):
        if mode in ("channel", "sample-channel") and not channels:
            continue
        lay = resolve_layout(mode, shape, channel_axis)
        keep = tuple(a for a in lay.keep_axes if shape[a] > 1)
        if keep not in out.values():
            out[mode] = keep
    return out
