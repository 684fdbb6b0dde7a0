"""One training run: a model, preprocessed arrays, an optimizer and two seeds in; per-epoch records out.

Per epoch it records the training loss and accuracy (averaged over the epoch's batches as the weights
change, the way Keras reports them), the validation loss and accuracy (evaluated after the epoch, in
evaluation mode), the wall seconds, and the mean and maximum of the gradient's global L2 norm over the
epoch's steps. A loss or gradient that becomes NaN/inf, or a loss that grows past ``explode_factor`` times
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

__all__ = ["OPTIMIZERS", "RunResult", "TrainSettings", "make_optimizer", "train_run"]

#: Keras' default hyper-parameters for each optimizer (learning rate, and the rest as Keras sets them).
OPTIMIZERS: dict[str, dict[str, float]] = {
    "adam": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "sgd": {"lr": 1e-2, "momentum": 0.0},
    "rmsprop": {"lr": 1e-3, "rho": 0.9, "epsilon": 1e-7},
}

EPOCH_FIELDS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "grad_norm_mean", "grad_norm_max",
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

    @property
    def learning_rate(self) -> float:
        return float(self.lr) if self.lr is not None else OPTIMIZERS[self.optimizer]["lr"]


@dataclass
class RunResult:
    """What one run produced.

    Attributes
    ----------
    status : {"done", "diverged"}
    epochs : list of dict
        One record per finished epoch with the keys of ``EPOCH_FIELDS`` (plus ``epoch``, from 1).
    reason : str
        Why a diverged run was stopped; empty otherwise.
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


def evaluate(model: Any, x: Any, y: Any, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (evaluation mode) on tensors ``x``, ``y``."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            out = model(x[i : i + batch_size])
            yb = y[i : i + batch_size]
            total += F.cross_entropy(out, yb, reduction="sum").double()
            correct += (out.argmax(1) == yb).sum()
    n = max(1, x.shape[0])
    return float(total) / n, float(correct) / n


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
    order_seed : int
        Seeds the batch order: epoch ``e`` visits ``numpy.random.default_rng(order_seed)``'s ``e``-th
        permutation, the same for every method and model (paired design).
    on_epoch : callable, optional
        Called with ``(epoch, record)`` after each finished epoch (progress reporting).
    """
    import torch
    import torch.nn.functional as F

    x, y, xv, yv = data
    device = x.device
    on_cpu = device.type == "cpu"
    n = x.shape[0]
    bs = settings.batch_size
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
        # On a CPU, Python floats are the cheapest accumulators (reading a scalar costs no sync); on an
        # accelerator, accumulate on the device and synchronize only every `check_every` steps.
        loss_sum = correct = gsum = gmax = 0.0
        if not on_cpu:
            loss_t = torch.zeros((), dtype=torch.float64, device=device)
            correct_t = torch.zeros((), dtype=torch.int64, device=device)
            gsum_t = torch.zeros((), dtype=torch.float64, device=device)
            gmax_t = torch.zeros((), dtype=torch.float32, device=device)
        steps = 0
        for i in starts:
            idx = perm[i : i + bs if i + bs < n - 1 else n]
            xb, yb = x[idx], y[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = _grad_norm(params)
            steps += 1
            if on_cpu:
                lv, gv = loss.item(), gnorm.item()
                loss_sum += lv * yb.shape[0]
                correct += (out.detach().argmax(1) == yb).sum().item()
                gsum += gv
                gmax = max(gmax, gv)
            else:
                loss_t += loss.detach().double() * yb.shape[0]
                correct_t += (out.detach().argmax(1) == yb).sum()
                gsum_t += gnorm.double()
                torch.maximum(gmax_t, gnorm, out=gmax_t)
            if on_cpu or steps % check_every == 0 or steps == 1:
                if not on_cpu:
                    lv, gv = loss.item(), gnorm.item()
                if first_loss is None:
                    first_loss = max(lv, math.log(max(2, out.shape[1])))
                why = _diverged(lv, gv, first_loss, settings.explode_factor)
                if why:
                    result.status = "diverged"
                    result.reason = f"{why} at epoch {epoch}, step {steps}"
                    result.seconds = time.perf_counter() - start
                    return result
            opt.step()
        if not on_cpu:
            loss_sum, correct, gsum, gmax = (
                float(loss_t),
                float(correct_t),
                float(gsum_t),
                float(gmax_t),
            )
        train_loss = loss_sum / n
        why = _diverged(train_loss, gmax, first_loss or 1.0, settings.explode_factor)
        if why:  # caught here on accelerators, which check only every few steps
            result.status = "diverged"
            result.reason = f"{why} during epoch {epoch}"
            result.seconds = time.perf_counter() - start
            return result
        val_loss, val_acc = evaluate(model, xv, yv, settings.eval_batch_size)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": correct / n,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "seconds": time.perf_counter() - t0,
            "grad_norm_mean": gsum / max(1, steps),
            "grad_norm_max": gmax,
        }
        result.epochs.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
        if not math.isfinite(val_loss):
            result.status = "diverged"
            result.reason = f"validation loss became {val_loss} after epoch {epoch}"
            break
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
