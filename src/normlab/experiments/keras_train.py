"""One run trained by Keras itself: ``model.fit`` on the PyTorch backend, recorded the way the bench records.

The weights are drawn under ``keras.utils.set_random_seed(init_seed)``. The batches come from a
``keras.utils.PyDataset`` that visits epoch *e* in ``numpy.random.default_rng(order_seed)``'s *e*-th
permutation, the same order as the torch engine (``fit(..., shuffle=False)``: Keras' own shuffle is not
used). A callback records every epoch:

* ``train_loss``, ``train_acc``: Keras' own running averages over the epoch (its ``logs``);
* ``val_loss``, ``val_acc``, ``n_pred_classes``: the model (inference mode) on the validation split, with
  the model's compiled loss, in batches of the training batch size as ``fit(validation_data=...)`` does
  (batches of 1,024 made a convolutional network's validation slower per sample on a CPU than Keras'
  own, measured: 2.5 s against 1.5 s per epoch for ``cnn`` on 2,000 images);
* ``grad_norm_mean``, ``grad_norm_max``, ``zero_grad_frac``, ``saturated_frac``: measured after the epoch
  on a fixed probe batch of training samples in inference mode: the global L2 norm of the loss's gradient
  (both fields hold it), the share of probe samples whose loss has exactly zero gradient with respect to
  the model's output, and the share whose softmax is saturated;
* ``seconds``: the epoch's wall time, the callback's work included.

A loss that becomes NaN/inf or grows past ``explode_factor`` times its first value stops the run
(``model.stop_training``) and marks it diverged; a run that ends frozen is stalled
(:func:`normlab.experiments.outcome.classify`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from normlab.experiments.keras_models import import_keras, label_format, softmax_output
from normlab.experiments.losses import CLIP
from normlab.experiments.outcome import classify
from normlab.experiments.train import RunResult, TrainSettings

__all__ = ["PROBE_SIZE", "train_keras_run"]

#: Training samples in the probe batch of the gradient measurements: at most ``PROBE_SIZE``, and at most
#: 1/``PROBE_SHARE`` of the training split (so that measuring costs a few percent of an epoch), at least 64.
PROBE_SIZE = 512
PROBE_SHARE = 32


def _batches(keras: Any, x: np.ndarray, y: np.ndarray, batch_size: int, order_seed: int) -> Any:
    """The epoch-by-epoch batches of the paired order (a last batch of one sample joins the one before)."""

    class OrderedBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            n = x.shape[0]
            self.rng = np.random.default_rng(order_seed)
            self.perm = self.rng.permutation(n)
            self.starts = [i for i in range(0, n, batch_size) if not (i == n - 1 and i > 0)]
            self.ends = [*self.starts[1:], n]

        def __len__(self) -> int:
            return len(self.starts)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            idx = self.perm[self.starts[i] : self.ends[i]]
            return x[idx], y[idx]

        def on_epoch_end(self) -> None:
            self.perm = self.rng.permutation(x.shape[0])

    return OrderedBatches()


class _Probe:
    """Loss, gradients and outputs of the model on fixed samples, without touching its training state."""

    def __init__(self, model: Any, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        keras = import_keras()
        self.model = model
        self.loss_fn = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
        self.onehot = label_format(model) == "onehot"
        self.probs = softmax_output(model)
        self.x, self.y = x, y
        self.n_classes = n_classes

    def _targets(self, y: np.ndarray, out: Any) -> Any:
        import torch

        t = torch.from_numpy(np.asarray(y, dtype=np.int64))
        if self.onehot:
            t = torch.nn.functional.one_hot(t, self.n_classes).float()
        return t.to(out.device)

    def _loss(self, y_true: Any, out: Any) -> Any:
        """The mean loss of a batch (a Keras loss function gives one value per sample, a Loss their mean)."""
        return self.loss_fn(y_true, out).mean()

    def outputs(self, x: np.ndarray, batch_size: int) -> Any:
        import torch

        with torch.no_grad():
            parts = [self.model(x[i : i + batch_size], training=False) for i in range(0, x.shape[0], batch_size)]
        return torch.cat([torch.as_tensor(p) for p in parts])

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float, int]:
        """Validation loss (the compiled loss), accuracy, and the number of distinct predicted classes."""
        import torch

        out = self.outputs(x, batch_size)
        with torch.no_grad():
            loss = float(self._loss(self._targets(y, out), out))
        pred = out.argmax(1).cpu().numpy()
        return loss, float((pred == y).mean()), int(np.unique(pred).size)

    def gradients(self) -> dict[str, float]:
        """Gradient norm, zero-gradient and saturated shares on the probe samples."""
        import torch

        weights = [v.value for v in self.model.trainable_weights]
        with torch.enable_grad():
            out = self.model(self.x, training=False)
            out_leaf = out.detach().requires_grad_(True)
            target = self._targets(self.y, out)
            grads = torch.autograd.grad(self._loss(target, out), weights, allow_unused=True)
            (per_output,) = torch.autograd.grad(self._loss(target, out_leaf), [out_leaf])
        norms = [g.detach().double().norm() for g in grads if g is not None]
        norm = float(torch.stack(norms).norm()) if norms else 0.0
        probs = out.detach() if self.probs else torch.softmax(out.detach(), 1)
        zero = (per_output.abs().sum(1) == 0).double().mean()
        sat = (probs.amax(1) > 1.0 - CLIP).double().mean()
        return {"grad_norm_mean": norm, "grad_norm_max": norm, "zero_grad_frac": float(zero),
                "saturated_frac": float(sat)}  # fmt: skip


def _device_of(keras: Any, model: Any) -> str:
    """Where the model's weights are (``"cpu"``, ``"cuda:0"``), or where Keras puts tensors if it has none."""
    for w in model.weights:
        return str(w.value.device)
    return str(keras.ops.convert_to_tensor(0.0).device)


def train_keras_run(
    model: Any,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    settings: TrainSettings,
    order_seed: int,
    n_classes: int,
    *,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> RunResult:
    """Train the compiled Keras ``model`` with ``model.fit`` for ``settings.epochs`` epochs, recording each.

    ``data`` is ``(x_train, y_train, x_val, y_val)`` as NumPy arrays in the model's layout (channels-last
    images), ``y`` integer labels (one-hot encoded here when the compiled loss wants it). The caller chooses
    the device (``keras.device``); the result records the one the weights are on.
    """
    import torch

    keras = import_keras()
    x, y, xv, yv = data
    targets = np.eye(n_classes, dtype=np.float32)[y] if label_format(model) == "onehot" else y
    n_probe = max(64, min(PROBE_SIZE, x.shape[0] // PROBE_SHARE))
    probe_idx = np.random.default_rng(order_seed).permutation(x.shape[0])[:n_probe]
    probe = _Probe(model, x[probe_idx], y[probe_idx], n_classes)
    result = RunResult(device=_device_of(keras, model), threads=torch.get_num_threads())
    recorder = _recorder(keras, probe, settings, xv, yv, result, on_epoch)
    start = time.perf_counter()
    model.fit(_batches(keras, x, targets, settings.batch_size, order_seed), epochs=settings.epochs,
              shuffle=False, verbose=0, callbacks=[recorder])  # fmt: skip
    if result.status != "diverged":
        result.status, result.reason = classify(result.epochs)
    result.seconds = time.perf_counter() - start
    return result


def _recorder(
    keras: Any, probe: _Probe, settings: TrainSettings, xv: np.ndarray, yv: np.ndarray,
    result: RunResult, on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> Any:  # fmt: skip
    """The callback that records every epoch into ``result`` and stops a diverging run."""

    class Recorder(keras.callbacks.Callback):
        first_loss: float | None = None
        t0 = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            loss = float(logs.get("loss", math.nan))
            if self.first_loss is None:
                self.first_loss = max(loss, math.log(max(2, probe.n_classes))) if math.isfinite(loss) else 1.0
            if not math.isfinite(loss) or loss > settings.explode_factor * self.first_loss:
                why = f"loss became {loss}" if not math.isfinite(loss) else (
                    f"loss {loss:.3g} exceeded {settings.explode_factor:g}× its first value {self.first_loss:.3g}")
                result.status, result.reason = "diverged", f"{why} during epoch {epoch + 1}"
                self.model.stop_training = True
                return
            val_loss, val_acc, n_pred = probe.evaluate(xv, yv, settings.batch_size)
            record = {"epoch": epoch + 1, "train_loss": loss, "train_acc": float(logs.get("accuracy", math.nan)),
                      "val_loss": val_loss, "val_acc": val_acc, "n_pred_classes": n_pred, **probe.gradients()}
            record["seconds"] = time.perf_counter() - self.t0
            result.epochs.append(record)
            if on_epoch is not None:
                on_epoch(epoch + 1, record)
            if not math.isfinite(val_loss):
                result.status, result.reason = "diverged", f"validation loss became {val_loss} after epoch {epoch + 1}"
                self.model.stop_training = True

    return Recorder()
