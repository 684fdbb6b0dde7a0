"""PyTorch modules that carry a fitted normalizer inside the model.

``normalizer.to_torch()`` returns an ``nn.Module`` that applies ``normalizer.transform`` (to float32
rounding):

- a stateful normalizer (``per="global" | "channel" | "feature"``) becomes :class:`Normalize`, whose
  statistics are registered buffers (``inv_scale`` and ``offset``: ``y = x * inv_scale + offset``, which is
  ``(x - center_) / scale_``), so ``state_dict()``, ``torch.save`` and ``.to(device)`` carry them;
- a per-sample mode (``per="sample" | "sample-channel"``) becomes :class:`SampleNormalize`, which computes
  each sample's statistics in ``forward`` (in float64) with the normalizer's own formula and zero rule.

Both accept uint8 or float input in the layout the normalizer was fitted on (``channel_axis``), return
float32 (or the dtype of the module after ``module.half()`` / ``.double()``), and work under
``torch.jit.script``, ``torch.export`` and ONNX export. The stateful module views a batch as
``(n, h * w * c)`` and the statistics as one row of the same length, so the work runs along long
contiguous rows instead of a length-3 channel vector. Its arithmetic is float32, like the model after it:
a feature whose mean is more than ~10^4 standard deviations from zero loses digits (as its float32 input
values already have); NumPy's ``transform`` of float64 input keeps them.

``dataset_stats(loader)`` answers "what mean and std do I pass to ``transforms.Normalize``?" exactly.
"""

# No ``from __future__ import annotations``: TorchScript reads the annotations below at runtime.
import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from normlab.core._estimator import check_is_fitted
from normlab.core._formulas import FORMULA_NAMES
from normlab.core._ranges import scale_mismatch
from normlab.core.axes import describe_layout, resolve_layout
from normlab.core.summary import stats
from normlab.errors import InputScaleWarning, LayoutError, NormlabError, ParameterError

__all__ = ["MeanStd", "Normalize", "SampleNormalize", "dataset_stats", "to_torch"]


# --------------------------------------------------------------------------------------------------
# Stateful modes: fitted statistics as buffers
# --------------------------------------------------------------------------------------------------


class Normalize(nn.Module):
    """``y = (x - center) / scale`` with fitted statistics, stored as buffers.

    Usually made by ``normalizer.to_torch()``. Build one by hand to load a ``state_dict`` saved earlier
    (the buffers are overwritten), or from statistics you already have.

    Parameters
    ----------
    center, scale : array_like of the statistic's shape
        ``(c,)`` for ``per="channel"``, the sample shape for ``per="feature"``, ``()`` for ``per="global"``.
        ``scale`` must be nonzero (normlab's fitted ``scale_`` always is).
    per : {"global", "channel", "feature"}
    channel_axis : int, default -1
        Where channels are in the input: ``-1`` for ``(n, h, w, c)``, ``1`` for ``(n, c, h, w)``.
    ndim : int, default 4
        Dimensions of the input batch, sample axis included.

    Attributes
    ----------
    inv_scale, offset : buffers, float32, shaped to broadcast against one sample
        E.g. ``(1, 1, c)`` for ``per="channel"`` on ``(n, h, w, c)``: ``y = x * inv_scale + offset``.

    Notes
    -----
    ``forward`` converts the batch to float32 once and finishes in that buffer with one fused
    multiply-add along rows as long as a sample, so it runs at memory speed. It rounds once where NumPy's
    ``transform`` rounds twice: results agree with it to within a float32 rounding step.

    Examples
    --------
    >>> import torch
    >>> m = Normalize([0.5, 1.0], [2.0, 4.0], per="channel", ndim=2 + 1)   # (n, l, c)
    >>> m(torch.tensor([[[1, 9], [3, 5]]], dtype=torch.uint8))
    tensor([[[0.2500, 2.0000],
             [1.2500, 1.0000]]])
    >>> sorted(m.state_dict())
    ['inv_scale', 'offset']
    """

    per: str
    layout: str
    ndim: int
    channel_axis: int
    n_channels: int
    sample_shape: list[int]
    fit_dtype: str
    fit_min: float
    fit_max: float
    checked: bool

    def __init__(self, center: Any, scale: Any, *, per: str = "channel", channel_axis: int = -1, ndim: int = 4,
                 fit_range: tuple[float, float] | None = None, fit_dtype: str = ""):
        super().__init__()
        # the fitted data's range, for the one-time input-scale check of the first forward()
        self.fit_min, self.fit_max = (math.nan, math.nan) if fit_range is None else (float(fit_range[0]), float(fit_range[1]))
        self.fit_dtype = str(fit_dtype)
        self.checked = fit_range is None
        center = np.asarray(center, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64)
        if center.shape != scale.shape:
            raise LayoutError(
                f"Normalize(per={per!r}) received center of shape {center.shape} and scale of shape "
                f"{scale.shape}; expected the same shape (the statistic's shape, e.g. (c,))."
            )
        if per not in ("global", "channel", "feature"):
            raise LayoutError(
                f"Normalize(per={per!r}) is not a stateful mode; expected 'global', 'channel' or 'feature'. "
                "Per-sample modes are SampleNormalize (normalizer.to_torch() picks the right module)."
            )
        if not np.all(np.isfinite(center)) or not np.all(np.isfinite(scale) & (scale != 0)):
            raise NormlabError(
                f"Normalize(per={per!r}) received non-finite or zero statistics; expected finite center and "
                "nonzero finite scale. Fit the normalizer on finite data (normlab replaces zero spreads by 1)."
            )
        # any shape whose sample part matches: channel sizes are what the layout needs
        if per == "feature":
            if center.ndim != ndim - 1:
                raise LayoutError(
                    f"Normalize(per='feature', ndim={ndim}) received statistics of shape {center.shape}; "
                    f"expected the shape of one sample ({ndim - 1} dimensions)."
                )
            probe = (1, *center.shape)
        else:
            probe = [1] * ndim
            lay0 = resolve_layout("channel", tuple(probe), channel_axis, owner=f"Normalize(per={per!r})")
            if per == "channel":
                if center.ndim != 1:
                    raise LayoutError(
                        f"Normalize(per='channel') received statistics of shape {center.shape}; expected one "
                        "value per channel, shape (c,)."
                    )
                probe[lay0.channel_axis] = center.shape[0]
            elif center.ndim != 0:
                raise LayoutError(
                    f"Normalize(per='global') received statistics of shape {center.shape}; expected scalars."
                )
        lay = resolve_layout(per, tuple(probe), channel_axis, owner=f"Normalize(per={per!r})")
        bshape = lay.broadcast_shape[1:]
        inv = 1.0 / scale
        self.register_buffer("inv_scale", torch.from_numpy(inv.reshape(bshape).astype(np.float32)))
        self.register_buffer("offset", torch.from_numpy((-center * inv).reshape(bshape).astype(np.float32)))
        self.per = lay.per
        self.layout = describe_layout(ndim, lay.channel_axis)
        self.ndim = int(ndim)
        self.channel_axis = int(lay.channel_axis)
        self.n_channels = int(center.shape[0]) if per == "channel" else -1
        self.sample_shape = [int(n) for n in center.shape] if per == "feature" else []

    @classmethod
    def from_normalizer(cls, normalizer: Any) -> "Normalize":
        """The module for a fitted stateful normalizer (what ``to_torch()`` returns)."""
        lay = normalizer.layout_
        return cls(normalizer.center_, normalizer.scale_, per=lay.per, channel_axis=lay.channel_axis, ndim=lay.ndim,
                   fit_range=getattr(normalizer, "input_range_", None), fit_dtype=str(normalizer.fit_dtype_))

    def extra_repr(self) -> str:
        return f"per={self.per!r}, layout={self.layout!r}"

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != self.ndim:
            raise ValueError(
                "Normalize(per='" + self.per + "') was fitted on " + str(self.ndim) + "-D data laid out as "
                + self.layout + " but received a " + str(x.dim()) + "-D tensor of shape " + str(list(x.shape))
                + "; expected " + str(self.ndim) + "-D input, or one " + str(self.ndim - 1) + "-D sample. "
                "Reshape the input to the layout used in fit."
            )
        if self.n_channels >= 0 and x.shape[self.channel_axis] != self.n_channels:
            raise ValueError(
                "Normalize(per='channel') was fitted on " + str(self.n_channels) + " channels (layout "
                + self.layout + ") but received shape " + str(list(x.shape)) + ", whose channel axis ("
                + str(self.channel_axis - self.ndim) + ") has " + str(x.shape[self.channel_axis])
                + " entries. Pass data in the fitted layout (permute channels-first/last to match)."
            )
        if len(self.sample_shape) > 0 and list(x.shape[1:]) != self.sample_shape:
            raise ValueError(
                "Normalize(per='feature') was fitted on samples of shape " + str(self.sample_shape)
                + " (layout " + self.layout + ") but received samples of shape " + str(list(x.shape[1:]))
                + "; expected the same shape per sample. Resize the input, or fit per='channel'."
            )

    @torch.jit.unused
    def _check_input_scale(self, x: torch.Tensor) -> None:
        """Warn once if the first input is on another scale than the fitted data (plain Python only)."""
        self.checked = True
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or x.numel() == 0:
            return
        lo, hi = torch.aminmax(x.detach().flatten().to(torch.float64))
        msg = scale_mismatch((self.fit_min, self.fit_max), self.fit_dtype, float(lo), float(hi),
                             x.is_floating_point(), who="This normlab.torch.Normalize module")
        if msg:
            warnings.warn(msg, InputScaleWarning, stacklevel=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.checked and not torch.jit.is_scripting():
            self._check_input_scale(x)
        if x.dim() == self.ndim - 1:  # one sample, e.g. (c, h, w) as a Dataset transform
            return self._batch(x.unsqueeze(0)).squeeze(0)
        return self._batch(x)

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        dtype = self.inv_scale.dtype
        # one row of parameters as long as a sample, so the work runs along long contiguous rows
        a = self.inv_scale.expand(x.shape[1:]).reshape(1, -1)
        b = self.offset.expand(x.shape[1:]).reshape(1, -1)
        x2 = x.flatten(1)
        if x2.dtype == dtype:
            y = torch.addcmul(b, x2, a)
        else:  # the converted input is a fresh buffer: finish in it, in one fused pass
            y = x2.to(dtype)
            torch.addcmul(b, y, a, out=y)
        return y.view(x.shape)


# --------------------------------------------------------------------------------------------------
# Per-sample modes: statistics computed in forward
# --------------------------------------------------------------------------------------------------


class SampleNormalize(nn.Module):
    """Normalize each sample with its own statistics (``per="sample"`` or ``"sample-channel"``).

    Usually made by ``normalizer.to_torch()``. The statistics are computed in float64 in ``forward``, with
    the normalizer's formula and zero rule (a zero spread divides by 1), then applied with the same
    arithmetic as ``normalizer.transform``. It holds no fitted values.

    Parameters
    ----------
    formula : {"identity", "scale", "scale-max", "center", "standardize", "minmax", "robust", "l1", "l2", "linf"}
    per : {"sample", "sample-channel"}
    channel_axis, ndim : as for :class:`Normalize`.
    divisor : float
        The constant of ``formula="scale"``.
    lo, hi : float
        ``feature_range`` for ``"minmax"``; the quantiles (fractions) for ``"robust"``.
    nan : {"raise", "ignore"}
        ``"ignore"`` leaves NaN out of the statistics (they pass through); otherwise NaN propagate.

    Examples
    --------
    >>> import torch
    >>> m = SampleNormalize("minmax", per="sample", ndim=2)
    >>> m(torch.tensor([[0, 5, 10], [2, 2, 4]], dtype=torch.uint8))
    tensor([[0.0000, 0.5000, 1.0000],
            [0.0000, 0.0000, 1.0000]])
    """

    formula: str
    per: str
    layout: str
    ndim: int
    channel_axis: int
    n_channels: int
    n_keep: int
    perm: list[int]
    keep_mask: list[bool]
    divisor: float
    lo: float
    hi: float
    nan_ignore: bool

    def __init__(self, formula: str, *, per: str = "sample", channel_axis: int = -1, ndim: int = 4,
                 n_channels: int = -1, divisor: float = 1.0, lo: float = 0.0, hi: float = 1.0, nan: str = "raise"):
        super().__init__()
        if formula not in FORMULA_NAMES:
            raise ParameterError(f"SampleNormalize(formula={formula!r}) is not known; expected one of {FORMULA_NAMES}.")
        if per not in ("sample", "sample-channel"):
            raise LayoutError(
                f"SampleNormalize(per={per!r}) is not a per-sample mode; expected 'sample' or 'sample-channel'."
            )
        lay = resolve_layout(per, (1,) * ndim, channel_axis, owner=f"SampleNormalize(per={per!r})")
        if not lay.reduce_axes:
            raise LayoutError(
                f"SampleNormalize(per={per!r}) on {ndim}-D data has no axis to compute a statistic over; "
                "expected data with spatial axes such as (n, h, w, c)."
            )
        self.formula = formula
        self.per = lay.per
        self.layout = describe_layout(ndim, lay.channel_axis)
        self.ndim = int(ndim)
        self.channel_axis = int(lay.channel_axis)
        self.n_channels = int(n_channels) if per == "sample-channel" else -1
        self.n_keep = len(lay.keep_axes)
        self.perm = [*lay.keep_axes, *lay.reduce_axes]
        self.keep_mask = [a in lay.keep_axes for a in range(ndim)]
        self.divisor, self.lo, self.hi = float(divisor), float(lo), float(hi)
        self.nan_ignore = nan == "ignore"
        # carries the output dtype through module.half() / .double(); not part of the state_dict
        self.register_buffer("dtype_anchor", torch.zeros((), dtype=torch.float32), persistent=False)

    @classmethod
    def from_normalizer(cls, normalizer: Any) -> "SampleNormalize":
        """The module for a fitted per-sample normalizer (what ``to_torch()`` returns)."""
        lay = normalizer.layout_
        kw = normalizer.formula_spec().kwargs()
        n_channels = lay.shape[lay.channel_axis] if lay.per == "sample-channel" else -1
        return cls(per=lay.per, channel_axis=lay.channel_axis, ndim=lay.ndim, n_channels=n_channels,
                   nan=normalizer.nan, **kw)

    def extra_repr(self) -> str:
        return f"formula={self.formula!r}, per={self.per!r}, layout={self.layout!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.ndim - 1:  # one sample, e.g. (c, h, w) as a Dataset transform
            return self._batch(x.unsqueeze(0)).squeeze(0)
        return self._batch(x)

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.ndim:
            raise ValueError(
                "SampleNormalize(per='" + self.per + "') was fitted on " + str(self.ndim) + "-D data laid out "
                "as " + self.layout + " but received a " + str(x.dim()) + "-D tensor of shape "
                + str(list(x.shape)) + "; expected " + str(self.ndim) + "-D input, or one " + str(self.ndim - 1)
                + "-D sample."
            )
        if self.n_channels >= 0 and x.shape[self.channel_axis] != self.n_channels:
            raise ValueError(
                "SampleNormalize(per='sample-channel') was fitted on " + str(self.n_channels) + " channels "
                "(layout " + self.layout + ") but received shape " + str(list(x.shape))
                + ". Pass data in the fitted layout (permute channels-first/last to match)."
            )
        xd = x.to(torch.float64)
        xk = xd.permute(self.perm).flatten(self.n_keep)  # (kept..., values)
        center, scale = _sample_center_scale(xk, self.formula, self.divisor, self.lo, self.hi, self.nan_ignore)
        bshape: list[int] = []
        for i in range(x.dim()):
            bshape.append(x.shape[i] if self.keep_mask[i] else 1)
        center = center.reshape(bshape)
        inv = (1.0 / scale).reshape(bshape)
        out_dtype = self.dtype_anchor.dtype
        if _small_int(x.dtype) and out_dtype != torch.float64:
            # 8/16-bit integers: x * a + b in float32, exactly as normlab's NumPy transform computes them
            a = inv.to(torch.float32)
            b = (-center * inv).to(torch.float32)
            return (x.to(torch.float32) * a + b).to(out_dtype)
        return ((xd - center) * inv).to(out_dtype)


def _small_int(dtype: torch.dtype) -> bool:
    return dtype == torch.uint8 or dtype == torch.int8 or dtype == torch.int16 or dtype == torch.bool


def _sorted_quantile(s: torch.Tensor, count: torch.Tensor, q: float) -> torch.Tensor:
    """``numpy.quantile(method="linear")`` along the last axis of sorted ``s`` (NaN last) with ``count`` values."""
    pos = (count - 1.0).clamp(min=0.0) * q
    lo = torch.floor(pos)
    t = pos - lo
    i0 = lo.to(torch.int64)
    i1 = torch.minimum(i0 + 1, (count - 1.0).clamp(min=0.0).to(torch.int64))
    a = s.gather(-1, i0)
    b = s.gather(-1, i1)
    d = b - a
    return torch.where(t >= 0.5, b - d * (1.0 - t), a + d * t)  # numpy's two-sided lerp


def _sample_center_scale(xk: torch.Tensor, formula: str, divisor: float, lo: float, hi: float,
                         nan_ignore: bool) -> list[torch.Tensor]:
    """Per-row ``(center, scale)`` over the last axis (keepdim), zero spreads made safe.

    The TorchScript copy of :mod:`normlab.core._formulas` (TorchScript cannot call through an ops
    namespace); ``tests/adapters/test_formulas.py`` pins it to the table, formula by formula.
    """
    eps = 2.220446049250313e-16  # float64 machine epsilon (TorchScript cannot read module globals)
    n_values = xk.shape[-1]
    if nan_ignore:
        valid = ~torch.isnan(xk)
        count = valid.sum(-1, keepdim=True).to(torch.float64)
        x0 = torch.where(valid, xk, torch.zeros_like(xk))
    else:
        valid = torch.ones_like(xk, dtype=torch.bool)
        count = torch.full_like(xk[..., :1], float(n_values))
        x0 = xk
    ones = torch.ones_like(count)
    zeros = torch.zeros_like(count)
    if formula == "identity":
        return [zeros, ones]
    if formula == "scale":
        return [zeros, ones * divisor]
    if formula == "center":
        return [x0.sum(-1, keepdim=True) / count, ones]
    if formula == "standardize":
        mean = x0.sum(-1, keepdim=True) / count
        dev = torch.where(valid, xk - mean, torch.zeros_like(xk))
        scale = torch.sqrt((dev * dev).sum(-1, keepdim=True) / count)
        mask = (scale == 0) | (scale < 32 * eps * mean.abs())  # _formulas.TWO_PASS resolution
        return [mean, torch.where(mask, ones, scale)]
    if formula == "l1" or formula == "l2" or formula == "linf":
        if formula == "l1":
            norm = x0.abs().sum(-1, keepdim=True)
        elif formula == "l2":
            norm = torch.sqrt((x0 * x0).sum(-1, keepdim=True))
        else:
            norm = x0.abs().amax(-1, keepdim=True)
        return [zeros, torch.where(norm == 0, ones, norm)]
    if formula == "robust":
        s = torch.sort(xk, dim=-1).values  # NaN sort last
        center = _sorted_quantile(s, count, 0.5)
        scale = _sorted_quantile(s, count, hi) - _sorted_quantile(s, count, lo)
    else:  # minmax, scale-max
        big = torch.full_like(xk, math.inf)
        dmin = torch.where(valid, xk, big).amin(-1, keepdim=True)
        dmax = torch.where(valid, xk, -big).amax(-1, keepdim=True)
        if formula == "minmax":
            rng = dmax - dmin
            rng = torch.where(rng < 10 * eps * torch.clamp(dmin.abs(), min=1.0), ones, rng)
            scale = rng / (hi - lo)
            return [dmin - lo * scale, scale]
        center = zeros
        scale = torch.maximum(dmin.abs(), dmax.abs())
    mask = scale.abs() < 10 * eps * torch.clamp(center.abs(), min=1.0)
    return [center, torch.where(mask, ones, scale)]


def to_torch(normalizer: Any) -> nn.Module:
    """The ``torch.nn.Module`` that applies a fitted normalizer (what ``normalizer.to_torch()`` returns).

    Examples
    --------
    >>> import numpy as np, torch, normlab
    >>> x = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3)          # (n, h, w, c)
    >>> norm = normlab.Standardize(per="channel").fit(x)
    >>> module = norm.to_torch()
    >>> module
    Normalize(per='channel', layout='(n, h, w, c)')
    >>> bool(torch.allclose(module(torch.from_numpy(x)), torch.from_numpy(norm.transform(x))))
    True
    """
    check_is_fitted(normalizer, "to_torch()")
    if normalizer.layout_.stateful:
        return Normalize.from_normalizer(normalizer)
    return SampleNormalize.from_normalizer(normalizer)


# --------------------------------------------------------------------------------------------------
# Statistics of a DataLoader
# --------------------------------------------------------------------------------------------------


class MeanStd(NamedTuple):
    """``(mean, std)`` as float64 tensors of the statistic's shape, e.g. ``(c,)``."""

    mean: torch.Tensor
    std: torch.Tensor


def dataset_stats(
    data: Any, per: str = "channel", *, channel_axis: int | None = None, scale: str = "raw", nan: str = "raise"
) -> MeanStd:
    """Exact mean and std of a ``DataLoader``, ``Dataset``, tensor or array: what ``transforms.Normalize`` needs.

    The statistics are pooled over every value of the dataset (not averaged per batch or per image, which
    underestimates the std by about 2 % on MNIST), summed exactly for integer data (uint8 images cannot
    overflow), and independent of the batch size.

    Parameters
    ----------
    data : DataLoader, Dataset, IterableDataset, tensor, array or iterable of batches
        Batches may be tensors or ``(x, y)`` pairs; the last batch may be smaller.
    per : {"channel", "global", "feature"}, default "channel"
    channel_axis : int, optional
        Unset: PyTorch's ``(n, c, h, w)`` for tensors, Datasets and DataLoaders, ``(n, h, w, c)`` for NumPy
        arrays (data that looks laid out the other way raises a ``LayoutError``); pass ``1`` or ``-1``.
    scale : {"raw", "unit"}, default "raw"
        ``"raw"``: in the data's own units (what a model fed raw uint8 tensors sees). ``"unit"``: integer data
        divided by its dtype's maximum (255 for uint8), i.e. what ``transforms.Normalize(mean, std)`` needs
        after ``ToTensor()``; float data is left as it is (``ToTensor()`` does not rescale floats).
    nan : {"raise", "ignore"}

    Returns
    -------
    MeanStd
        ``mean`` and ``std`` (ddof=0), float64 tensors of shape ``(c,)`` for ``per="channel"``.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> x = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).reshape(2, 3, 2, 2)   # (n, c, h, w)
    >>> mean, std = dataset_stats(DataLoader(TensorDataset(x), batch_size=1))
    >>> mean
    tensor([ 7.5000, 11.5000, 15.5000], dtype=torch.float64)
    >>> dataset_stats(DataLoader(TensorDataset(x), batch_size=1), scale="unit").mean   # after ToTensor()
    tensor([0.0294, 0.0451, 0.0608], dtype=torch.float64)
    """
    if scale not in ("raw", "unit"):
        raise ParameterError(f"dataset_stats(scale={scale!r}) is not a choice; expected 'raw' or 'unit'.")
    s = stats(data, per=per, channel_axis=channel_axis, quantiles=(), nan=nan, source="normlab.torch.dataset_stats")
    mean, std = (s.unit_mean, s.unit_std) if scale == "unit" and s.unit_divisor is not None else (s.mean, s.std)
    return MeanStd(torch.from_numpy(np.array(mean, dtype=np.float64)), torch.from_numpy(np.array(std, dtype=np.float64)))
