"""``normlab.check``: run every check that the given inputs allow, return a :class:`Report`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from normlab.check import _axis, _expects, _leakage, _network, _statistics, _values
from normlab.check._context import Context
from normlab.check._findings import CODES, Finding, Report
from normlab.check._shared import stats_used
from normlab.errors import DataError

__all__ = ["check"]

# (codes a check can report, what it needs, the check). Order: cheap value checks first.
_CHECKS: tuple[tuple[tuple[str, ...], Callable[[Context], bool], Callable[[Context], list[Finding]]], ...] = (
    (("model-input",), lambda c: c.model is not None, _network.model_input),
    (("nan-or-inf",), lambda c: bool(c.data), _values.nan_or_inf),
    (("pixels-not-scaled", "features-not-scaled"), lambda c: c.X is not None or c.Z is not None,
     _values.not_scaled),
    (("scale-disparity",), lambda c: c.X is not None or c.Z is not None, _values.scale_disparity),
    (("constant-feature",), lambda c: c.X is not None, _values.constant_feature),
    (("wrong-axis",), lambda c: (c.X is not None and c.Z is not None) or (c.T is not None and c.ZT is not None),
     _axis.wrong_axis),
    (("stats-from-test-split",), lambda c: c.X is not None and c.T is not None and
     (c.given is not None or c.Z is not None), _leakage.stats_from_test_split),
    (("train-test-mismatch",), lambda c: c.ZT is not None, _leakage.train_test_mismatch),
    (("uint8-wraparound",), lambda c: c.Z is not None or c.ZT is not None, _axis.uint8_wraparound),
    (("double-scaling",), lambda c: c.X is not None or c.Z is not None, _values.double_scaling),
    (("std-as-variance",), lambda c: stats_used(c) is not None, _statistics.std_as_variance),
    (("averaged-std",), lambda c: stats_used(c) is not None, _statistics.averaged_std),
    (("input-scale-mismatch",), lambda c: c.given is not None or c.model is not None, _network.input_scale_mismatch),
    (("stats-outside-data",), lambda c: c.X is not None and stats_used(c) is not None,
     _network.stats_outside_data),
    (("stats-from-other-data",), lambda c: c.X is not None and stats_used(c) is not None,
     _network.stats_from_other_data),
    (("test-values-explode",), lambda c: c.ZT is not None or (c.T is not None and c.given is not None),
     _network.test_values_explode),
    (("expects-mismatch",), lambda c: c.expects is not None and (c.X is not None or c.Z is not None),
     _expects.expects_mismatch),
)


def _applies(code: str, ctx: Context) -> bool:
    """Images are checked for pixels-not-scaled, tables for features-not-scaled."""
    if code in ("pixels-not-scaled", "features-not-scaled") and ctx.data:
        return (code == "pixels-not-scaled") == ctx.is_image
    return True


def check(
    train: Any = None,
    *,
    normalized: Any = None,
    test: Any = None,
    test_normalized: Any = None,
    normalizer: Any = None,
    stats: Any = None,
    per: str = "auto",
    channel_axis: int | None = None,
    ignore: Iterable[str] = (),
    max_samples: int = 2000,
    model: Any = None,
    expects: Any = None,
) -> Report:
    """Find the normalization mistakes that silently cost accuracy, like a linter.

    Give it the raw training data and whatever you have of the rest: the data after your own
    normalization, a test set (raw and/or normalized), and the statistics or fitted normalizer you
    normalize with. Every check whose inputs are present runs; each finding has a stable code, a
    severity, a message with the numbers behind it and a fix as code.

    Parameters
    ----------
    train : array-like, dataset spec (str), path or ``normlab.data`` dataset, optional
        The raw training data, samples first: ``(n, h, w, c)`` images or ``(n, f)`` tables. A spec such
        as ``"mnist:DIR"`` or ``"breast-cancer"`` is opened with ``normlab.data.open`` (split ``"train"``).
        When neither ``normalized`` nor ``normalizer``/``stats`` is given, ``train`` is taken to be what the
        model is fed.
    normalized : array-like or path (``.npy``), optional
        ``train`` after your normalization: the same samples in the same order. Any shape with the
        same number of values per sample, e.g. ``(n, 28, 28)`` next to raw ``(n, 28, 28, 1)``.
    test, test_normalized : optional
        The same for a test (or validation) split. With a spec or dataset, its ``"test"`` split is used.
    normalizer : fitted normlab normalizer or path, optional
        What you normalize with: a fitted ``normlab.Standardize`` etc., or a file from ``save()``.
    stats : dict, ``DatasetStats`` or path, optional
        Statistics you normalize with, as copied from a tutorial: ``{"mean": [...], "std": [...]}`` or
        ``{"mean": ..., "var": ...}``, on the raw scale or the [0, 1] scale (for integer images whose
        statistics all lie in [0, 1], ``x / 255`` is assumed, as torchvision's ``ToTensor`` does). Also a
        scikit-learn scaler, a ``normlab.stats`` result, or a JSON file (normlab's, or a plain dict).
    per : {"auto", "global", "channel", "feature"}
        What one statistic is computed for when nothing else says it (default: channel for images,
        feature for tables; the given statistics' own mode wins).
    channel_axis : int, optional
        Where channels are in ``normalized`` (or ``train``): ``-1`` or ``1``. Unset, the inputs' convention
        decides (PyTorch tensors channels-first, NumPy channels-last) and data that looks laid out the other
        way is refused with a ``LayoutError`` naming both readings (the rule of ``per=``). A 3-D stack
        ``(n, h, w)`` whose last axis is longer than 4 is read as grayscale images without a channel axis.
    ignore : iterable of str
        Codes not to report (e.g. ``["scale-disparity"]``).
    max_samples : int
        At most this many samples (evenly spaced) are used by the per-sample analyses (which axis, rank
        order, wrap-around); every statistic is exact over all samples.
    model : keras.Model, torch.nn.Module, ExportedProgram, ONNX model or path (``.keras``, ``.pt``, ``.pt2``, ``.onnx``), optional
        The model the data is fed to. The normalization layers at its input (``Rescaling``,
        ``Normalization``, normlab's layers, torchvision-style ``Normalize``, leading ``Sub``/``Div``
        nodes) are composed with the data's preprocessing, and every check judges what its first weight
        layer receives. Nothing of the model is executed; a ``.pt`` file is read with
        ``torch.load(weights_only=True)``.
    expects : str, dict or path, optional
        What the (pretrained) model was trained on: ``"unit"`` ([0, 1]), ``"minus-one-one"`` ([-1, 1]),
        ``"imagenet"`` (x / 255 standardized with ImageNet's mean and std), ``"caffe"`` (BGR, ImageNet
        mean subtracted on 0..255), ``"standardized"`` (mean 0, std 1 per channel), or a Hugging Face
        ``preprocessor_config.json`` / timm config (a path or a dict with ``image_mean``/``image_std``/
        ``rescale_factor`` or ``mean``/``std``).

    Returns
    -------
    Report
        The findings, errors first. ``report.exit_code("error")`` is 1 when there is an error.

    Notes
    -----
    The checks, their codes and thresholds are listed in ``normlab.check.CODES`` and documented in each
    check module; every threshold is chosen so that correctly normalized data (MNIST / 255, MNIST
    standardized per channel, breast-cancer standardized per feature) produces no finding.

    Examples
    --------
    >>> import numpy as np, normlab
    >>> x = np.random.default_rng(0).integers(0, 256, size=(64, 8, 8, 1), dtype=np.uint8)
    >>> normlab.check(x, normalized=x / 255.0 / 255.0).codes
    ['double-scaling']
    >>> normlab.check(x, normalized=x / 255.0).codes
    []

    What a model does to its input counts (``model=`` also takes a keras.Model, a torch module or a file):

    >>> from normlab.check import InputStep, ModelInput
    >>> rescaling = InputStep("rescaling", "Rescaling", np.array(1 / 255), np.array(0.0))
    >>> normlab.check(x, normalized=x / 255.0, model=ModelInput("model", (rescaling,), "conv2d")).codes
    ['double-scaling', 'model-input']
    """
    ignored = set(ignore)
    unknown = ignored - set(CODES)
    if unknown:
        raise DataError(f"normlab.check(ignore={sorted(unknown)}) names unknown codes; expected any of "
                         f"{', '.join(CODES)}.")
    ctx = Context(train=train, normalized=normalized, test=test, test_normalized=test_normalized,
                  normalizer=normalizer, stats=stats, per=per, channel_axis=channel_axis, max_samples=max_samples,
                  model=model, expects=_expects.resolve_expects(expects))
    findings: list[Finding] = []
    ran: list[str] = []
    for codes, needs, fn in _CHECKS:
        if all(code in ignored for code in codes) or not needs(ctx):
            continue
        ran += [c for c in codes if c not in ignored and _applies(c, ctx)]
        findings += [f for f in fn(ctx) if f.code not in ignored]
    return Report(findings, inputs=ctx.describe_inputs(), checks=tuple(ran))
