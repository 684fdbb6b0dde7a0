"""The losses a run can train with, and what "this sample has zero gradient" means under each.

``logits`` is cross-entropy on the model's logits (``F.cross_entropy``, tf.keras' behaviour for a softmax
output): its gradient with respect to the logits is ``softmax - onehot``, zero only for a sample whose
softmax is exactly one-hot on its true class in float32.

``keras-probs`` is what Keras 3 on the torch and JAX backends computes for a model with a softmax output and
``categorical_crossentropy``: the softmax output renormalized to sum 1, clipped to ``[1e-7, 1 - 1e-7]``,
then ``-log`` of the true class's probability. Outside the clip the gradient is exactly zero: a sample whose
true-class probability fell below 1e-7 teaches the network nothing, and a network whose softmax saturated
on one class for every sample is frozen (a *stalled* run, see :mod:`normlab.experiments.outcome`).

Every loss is one :class:`Loss` entry of ``LOSSES``: the registry that ``--loss``, ``--help`` and
``--list`` are generated from. Each gives the mean loss of a batch and the per-sample zero-gradient mask,
both from the model's logits and the integer labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from normlab.experiments._common import CompareError

__all__ = ["CLIP", "LOSSES", "Loss", "get_loss", "saturated"]

#: Keras' ``backend.epsilon()``: the clip of probabilities in its cross-entropy.
CLIP = 1e-7


@dataclass(frozen=True)
class Loss:
    """A training loss: its name, one line for ``--help``/``--list``, and its torch functions.

    ``reduce(logits, y, reduction)`` is the loss of a batch (``reduction`` "mean", "sum" or "none");
    ``zero_grad(probs, y)`` the boolean mask of the samples whose loss has exactly zero gradient with
    respect to the logits, given the batch's softmax ``probs`` (computed once per step by the loop).
    """

    name: str
    description: str
    reduce: Callable[[Any, Any, str], Any]
    zero_grad: Callable[[Any, Any], Any]


def _logits_loss(out: Any, y: Any, reduction: str) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(out, y, reduction=reduction)


def _logits_zero_grad(probs: Any, y: Any) -> Any:
    return probs.gather(1, y[:, None])[:, 0] == 1.0


def _true_class_prob(probs: Any, y: Any) -> Any:
    """Keras 3's probability of the true class: the softmax renormalized to sum 1 (before the clip)."""
    return (probs / probs.sum(1, keepdim=True)).gather(1, y[:, None])[:, 0]


def _keras_probs_loss(out: Any, y: Any, reduction: str) -> Any:
    import torch

    p = torch.clamp(_true_class_prob(torch.softmax(out, 1), y), CLIP, 1.0 - CLIP)
    per_sample = -torch.log(p)
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def _keras_probs_zero_grad(probs: Any, y: Any) -> Any:
    p = _true_class_prob(probs, y)
    return (p < CLIP) | (p > 1.0 - CLIP)


def saturated(probs: Any) -> Any:
    """Mask of the samples whose softmax is saturated: the top class holds all but < 1e-7 of the mass."""
    return probs.amax(1) > 1.0 - CLIP


#: The registry of losses, in the order ``--list`` shows them (the first is the default).
LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("logits", "cross-entropy on the logits (PyTorch's F.cross_entropy; tf.keras on a softmax)",
             _logits_loss, _logits_zero_grad),
        Loss("keras-probs", "Keras 3 (torch/JAX): softmax -> renormalize -> clip [1e-7, 1-1e-7] -> -log; "
             "zero gradient outside the clip", _keras_probs_loss, _keras_probs_zero_grad),
    )
}  # fmt: skip


def get_loss(name: str) -> Loss:
    """The :class:`Loss` called ``name``; a :class:`CompareError` naming the choices otherwise."""
    if name not in LOSSES:
        raise CompareError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}.")
    return LOSSES[name]
