"""A finished run's outcome: ``done``, or ``stalled`` when training had stopped moving the network.

Diverged runs are stopped while they train (:mod:`normlab.experiments.train`); a stalled run trains to the
end but learns nothing any more, so it is decided on its history, after the last epoch. Its last epoch
decides (a run that recovers is not stalled), and the reason names the first epoch of the trailing
stretch in which the rule held:

1. **zero gradient**: the gradient norm (largest over the epoch's steps) is below ``GRAD_EPS``;
2. **softmax saturated**: at least ``ZERO_GRAD_SHARE`` of the training samples have exactly zero gradient
   (under ``keras-probs``, their true-class probability is outside the clip ``[1e-7, 1 - 1e-7]``) while
   the training accuracy is below ``FITTED_ACC``: misclassified samples get no gradient, so nothing can
   correct them (a network that fits its training set confidently also has zero gradient: it is done);
3. **one class**: the network predicts a single class for every validation sample while most training
   samples (at least half) have zero gradient, i.e. the loss sits at its clipped ceiling.

The epoch records carry ``grad_norm_max``, ``zero_grad_frac`` and ``n_pred_classes`` (see
``EPOCH_FIELDS``); a missing or NaN value never triggers a rule.

>>> e = {"grad_norm_max": 0.0, "zero_grad_frac": 1.0, "n_pred_classes": 1, "train_acc": 0.1}
>>> classify([{"epoch": 1, **e}, {"epoch": 2, **e}])
('stalled', 'softmax saturated: 100 % of samples have zero gradient at epoch 1')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["FITTED_ACC", "GRAD_EPS", "ZERO_GRAD_SHARE", "classify"]

GRAD_EPS = 1e-8
ZERO_GRAD_SHARE = 0.99
FITTED_ACC = 0.95


def _value(e: dict[str, Any], key: str) -> float:
    v = e.get(key)
    return math.nan if v is None else float(v)


def _saturated(e: dict[str, Any]) -> bool:
    return _value(e, "zero_grad_frac") >= ZERO_GRAD_SHARE and _value(e, "train_acc") < FITTED_ACC


def _no_gradient(e: dict[str, Any]) -> bool:
    return _value(e, "grad_norm_max") < GRAD_EPS


def _one_class(e: dict[str, Any]) -> bool:
    return _value(e, "n_pred_classes") == 1 and _value(e, "zero_grad_frac") >= 0.5


def _since(epochs: Sequence[dict[str, Any]], rule: Callable[[dict[str, Any]], bool]) -> int:
    """The first epoch of the trailing stretch in which ``rule`` holds (the last epoch must hold it)."""
    first = int(epochs[-1]["epoch"])
    for e in reversed(epochs):
        if not rule(e):
            break
        first = int(e["epoch"])
    return first


def classify(epochs: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """``("stalled", reason)`` when the last epoch meets a stall rule, else ``("done", "")``."""
    if not epochs:
        return "done", ""
    last = epochs[-1]
    if _saturated(last):
        share = _value(last, "zero_grad_frac")
        return "stalled", (
            f"softmax saturated: {_percent(share)} % of samples have zero gradient at epoch "
            f"{_since(epochs, _saturated)}"
        )
    if _no_gradient(last):
        return "stalled", (
            f"gradient norm {_value(last, 'grad_norm_max'):.3g} (below {GRAD_EPS:g}) from epoch "
            f"{_since(epochs, _no_gradient)}"
        )
    if _one_class(last):
        share = _value(last, "zero_grad_frac")
        return "stalled", (
            f"predicts a single class from epoch {_since(epochs, _one_class)}, with {_percent(share)} % of "
            "samples at zero gradient (the loss at its clipped ceiling)"
        )
    return "done", ""


def _percent(share: float) -> str:
    """``100`` only when every sample is counted; otherwise rounded down to one decimal."""
    if share >= 1.0:
        return "100"
    return f"{math.floor(share * 1000) / 10:g}"
