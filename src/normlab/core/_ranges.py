"""The input-scale rule: data on another scale than the normalizer was fitted on (one rule for every layer).

The classic case: a normalizer fitted on raw 0-255 pixels, exported into a model, and then fed
``ToTensor()`` output in [0, 1]: every value lands near ``-mean / std`` and accuracy collapses without an
error. The exported torch module checks its first input against this rule (once: no cost afterwards);
``normlab check`` reports the same mismatch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scale_mismatch"]


def scale_mismatch(
    fit_range: tuple[float, float], fit_dtype: str, in_min: float, in_max: float, in_is_float: bool, *,
    who: str = "the normalizer",
) -> str | None:
    """Why input in ``[in_min, in_max]`` does not fit data fitted in ``fit_range``, or None when it does.

    >>> scale_mismatch((0.0, 255.0), "uint8", 0.0, 0.98, True) is not None
    True
    >>> scale_mismatch((0.0, 255.0), "uint8", 0.0, 251.0, False) is None
    True
    """
    lo, hi = (float(v) for v in fit_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(in_min) and np.isfinite(in_max)):
        return None
    if hi > 2 and in_is_float and -1 <= in_min and 0 < in_max <= 1:
        return (
            f"{who} was fitted on {fit_dtype} data in [{lo:g}, {hi:g}] but received float input in "
            f"[{in_min:.3g}, {in_max:.3g}], which looks like ToTensor() output on the [0, 1] scale: every value "
            f"would land near the bottom of the fitted range. Feed the data on the fitted scale (e.g. the raw "
            "uint8 pixels, or x * 255), or refit the normalizer on [0, 1] data."
        )
    if -1 <= lo and hi <= 1 and not in_is_float and in_max > 2:
        return (
            f"{who} was fitted on data in [{lo:g}, {hi:g}] but received integer input up to {in_max:g}, which "
            "looks like raw pixels: divide by 255 first (as ToTensor() does), or refit on the raw values."
        )
    return None
