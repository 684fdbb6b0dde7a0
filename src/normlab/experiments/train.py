"""One training run: a model, preprocessed arrays, an optimizer and two seeds in; per-epoch records out.

Per epoch it records the training loss and accuracy (averaged over the epoch's batches as the weights
change, the way Keras reports them), the validation loss and accuracy (evaluated after the epoch, in
evaluation mode), the wall seconds, and the mean and maximum of the gradient's global L2 norm over the
epoch's steps, the share of training samples whose loss has exactly zero gradient and of saturated
softmax outputs (:mod:`normlab.experiments.losses`), and the number of distinct classes predicted on the
validation split. A loss or gradient that becomes NaN/inf, or a loss that grows past ``explode_factor`` times
its first value, stops the run and marks it diverged: a result, not an exception. A last batch of a
single sample joins the batch before it (BatchNorm needs two samples per batch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normlab.experiments._common import CompareError
from normlab.experiments.losses import get_loss, saturated
from normlab.experiments.outcome import classify

__all__ = ["OPTIMIZERS", "RunResult", "TrainSettings", "make_optimizer", "train_run"]

#: Keras' default hyper-parameters for each optimizer (learning rate, and the rest as Keras sets them).
OPTIMIZERS: dict[str, dict[str, float]] = {
    "adam": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "sgd": {"lr": 1e-2, "momentum": 0.0},
    "rmsprop": {"lr": 1e-3, "rho": 0.9, "epsilon": 1e-7},
}

EPOCH_FIELDS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "grad_norm_mean", "grad_norm_max",
    "zero_grad_frac", "saturated_frac", "n_pred_classes",
)  # fmt: skip


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters shared by every run of a sweep."""

    optimizer: str = "adam"
    lr: float | None = None
    batch_size: int = 32
    epochs: int = 10
    explode_factor: float = 1e3
    eval_batch_size: int = 1024
    loss: str = "logits"
    #: True when the user chose ``loss`` (``--loss``/``loss=``), False for the engine's default: a user's
    #: Keras model is then checked against it instead of trained with a loss nobody asked for.
    loss_given: bool = False

    @property
    def learning_rate(self) -> float:
        return float(self.lr) if self.lr is not None else OPTIMIZERS[self.optimizer]["lr"]


@dataclass
class RunResult:
    """What one run produced.

    Attributes
    ----------
    status : {"done", "diverged", "stalled"}
        ``stalled``: trained to the end, but the last epochs no longer moved the network
        (:func:`normlab.experiments.outcome.classify`).
    epochs : list of dict
        One record per finished epoch with the keys of ``EPOCH_FIELDS`` (plus ``epoch``, from 1).
    reason : str
        Why a run diverged or stalled; empty otherwise.
    seconds : float
        Wall time of the whole run (building the model included).
    """

    status: str = "done"
    epochs: list[dict[str, float]] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    device: str = "cpu"
    threads: int = 1


def make_optimizer(name: str, params: Any, lr: float | None = None) -> Any:
    """The torch optimizer for ``name`` with Keras' defaults (Adam's epsilon 1e-7, RMSprop's rho 0.9)."""
    import torch

    if name not in OPTIMIZERS:
        raise CompareError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}.")
    d = OPTIMIZERS[name]
    lr = d["lr"] if lr is None else float(lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(d["beta_1"], d["beta_2"]), eps=d["epsilon"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=d["momentum"])
    return torch.optim.RMSprop(params, lr=lr, alpha=d["rho"], eps=d["epsilon"])


def evaluate(model: Any, x: Any, y: Any, batch_size: int, loss: str = "logits") -> tuple[float, float, int]:
    """Mean loss, accuracy and number of distinct predicted classes of ``model`` (evaluation mode)."""
    import torch

    reduce = get_loss(loss).reduce
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    predicted = torch.zeros(0, dtype=torch.int64, device=x.device)
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            out = model(x[i : i + batch_size])
            yb = y[i : i + batch_size]
            total += reduce(out, yb, "sum").double()
            pred = out.argmax(1)
            correct += (pred == yb).sum()
            predicted = torch.unique(torch.cat([predicted, torch.unique(pred)]))
    n = max(1, x.shape[0])
    return float(total) / n, float(correct) / n, int(predicted.numel())


class _EpochSums:
    """An epoch's running sums: loss, correct, zero-gradient and saturated samples, gradient norms.

    On a CPU, Python floats are the cheapest accumulators (reading a scalar costs no sync); on an
    accelerator, the sums stay on the device and are read only when :meth:`read` is called.
    """

    def __init__(self, device: Any) -> None:
        import torch

        self.on_cpu = device.type == "cpu"
        self.steps = 0
        self.gmax = 0.0
        if self.on_cpu:
            self.sums = [0.0] * 5
        else:
            self.sums = [torch.zeros((), dtype=torch.float64, device=device) for _ in range(5)]
            self.gmax_t = torch.zeros((), dtype=torch.float32, device=device)

    def add(self, loss: Any, out: Any, yb: Any, gnorm: Any, zero_grad: Any) -> tuple[float, float] | None:
        """Add one step; on a CPU returns ``(loss, gradient norm)`` as floats (None on an accelerator)."""
        import torch

        probs = torch.softmax(out.detach().float(), 1)
        parts = (
            loss.detach().double() * yb.shape[0],
            (out.detach().argmax(1) == yb).sum(),
            zero_grad(probs, yb).sum(),
            saturated(probs).sum(),
            gnorm.double(),
        )
        self.steps += 1
        if not self.on_cpu:
            for total, part in zip(self.sums, parts, strict=True):
                total += part
            torch.maximum(self.gmax_t, gnorm, out=self.gmax_t)
            return None
        values = torch.stack([p.double() for p in parts]).tolist()  # one read of all five
        self.sums = [t + v for t, v in zip(self.sums, values, strict=True)]
        self.gmax = max(self.gmax, values[4])
        return values[0] / yb.shape[0], values[4]

    def read(self, n: int) -> dict[str, float]:
        sums = [float(v) for v in self.sums]
        gmax = self.gmax if self.on_cpu else float(self.gmax_t)
        return {
            "train_loss": sums[0] / n, "train_acc": sums[1] / n, "zero_grad_frac": sums[2] / n,
            "saturated_frac": sums[3] / n, "grad_norm_mean": sums[4] / max(1, self.steps),
            "grad_norm_max": gmax,
        }  # fmt: skip


def train_run(
    model: Any,
    data: tuple[Any, Any, Any, Any],
    settings: TrainSettings,
    order_seed: int,
    *,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> RunResult:
    """Train ``model`` for ``settings.epochs`` epochs and record every epoch.

    Parameters
    ----------
    model : torch.nn.Module
        Already initialized (under the run's init seed) and on the data's device.
    data : (x_train, y_train, x_val, y_val)
        torch tensors on one device; ``x`` float32 in the model's layout, ``y`` int64 labels.
    settings : TrainSettings
        Its ``loss`` (see :mod:`normlab.experiments.losses`) is used in training and evaluation.
    order_seed : int
        Seeds the batch order: epoch ``e`` visits ``numpy.random.default_rng(order_seed)``'s ``e``-th
        permutation, the same for every method and model (paired design).
    on_epoch : callable, optional
        Called with ``(epoch, record)`` after each finished epoch (progress reporting).
    """
    import torch

    x, y, xv, yv = data
    device = x.device
    n = x.shape[0]
    bs = settings.batch_size
    loss_fn = get_loss(settings.loss)
    rng = np.random.default_rng(order_seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(settings.optimizer, params, settings.lr)
    result = RunResult(device=str(device), threads=torch.get_num_threads())
    check_every = 25  # accelerators: steps between divergence checks (a CPU checks every step)
    # batch starts; a last batch of one sample joins the one before (BatchNorm needs two per batch)
    starts = [i for i in range(0, n, bs) if not (i == n - 1 and i > 0)]
    first_loss: float | None = None
    start = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        sums = _EpochSums(device)
        for i in starts:
            idx = perm[i : i + bs if i + bs < n - 1 else n]
            xb, yb = x[idx], y[idx]
            out = model(xb)
            loss = loss_fn.reduce(out, yb, "mean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = _grad_norm(params)
            read = sums.add(loss, out, yb, gnorm, loss_fn.zero_grad)
            if read is not None or sums.steps % check_every == 0 or sums.steps == 1:
                lv, gv = read if read is not None else (loss.item(), gnorm.item())
                if first_loss is None:
                    first_loss = max(lv, math.log(max(2, out.shape[1])))
                why = _diverged(lv, gv, first_loss, settings.explode_factor)
                if why:
                    return _stop(result, f"{why} at epoch {epoch}, step {sums.steps}", start)
            opt.step()
        record = sums.read(n)
        why = _diverged(record["train_loss"], record["grad_norm_max"], first_loss or 1.0,
                        settings.explode_factor)  # fmt: skip
        if why:  # caught here on accelerators, which check only every few steps
            return _stop(result, f"{why} during epoch {epoch}", start)
        val_loss, val_acc, n_pred = evaluate(model, xv, yv, settings.eval_batch_size, settings.loss)
        record.update(epoch=epoch, val_loss=val_loss, val_acc=val_acc, n_pred_classes=n_pred,
                      seconds=time.perf_counter() - t0)  # fmt: skip
        result.epochs.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
        if not math.isfinite(val_loss):
            return _stop(result, f"validation loss became {val_loss} after epoch {epoch}", start)
    result.status, result.reason = classify(result.epochs)
    result.seconds = time.perf_counter() - start
    return result


def _stop(result: RunResult, reason: str, start: float) -> RunResult:
    """Mark ``result`` diverged with ``reason``; the epochs recorded so far are kept."""
    result.status, result.reason = "diverged", reason
    result.seconds = time.perf_counter() - start
    return result


def _grad_norm(params: list[Any]) -> Any:
    """The global L2 norm of all gradients (one fused kernel per tensor, no Python loop over them)."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _diverged(loss: float, gnorm: float, first: float, factor: float) -> str:
    if not math.isfinite(loss):
        return f"loss became {loss}"
    if not math.isfinite(gnorm):
        return f"gradient norm became {gnorm}"
    if loss > factor * first:
        return f"loss {loss:.3g} exceeded {factor:g}× its first value {first:.3g}"
    return ""
