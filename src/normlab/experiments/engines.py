"""The training engines: who trains a run. One :class:`Engine` entry of ``ENGINES`` adds one.

* ``torch``: the bench's own PyTorch loop (:mod:`normlab.experiments.train`) on ``torch.nn.Module``
  models (the built-ins of :mod:`normlab.experiments.models`, or a builder returning a module).
* ``keras``: Keras' own ``model.fit`` on the PyTorch backend (:mod:`normlab.experiments.keras_train`) on
  ``keras.Model`` models (the built-ins of :mod:`normlab.experiments.keras_models`, or a builder
  returning a Keras model, which always trains here).

Each engine gives ``check(spec, sample_shape, n_classes, batchnorm_input, batchnorm_all, settings,
probe, device)``, which builds the model once and runs two samples through it before the sweep (a mistake
fails there, not in the first run), and ``run(task, settings, device, on_epoch)``, which trains one task
(the plain-dict form of a :class:`~normlab.experiments.plan.Task`) in a worker and returns its
:class:`~normlab.experiments.train.RunResult`, whose ``device`` is where the weights were.
``normlab compare --list`` and ``--help`` list them.

Both engines train on the sweep's ``device``: the torch engine moves the model and the data there; the
Keras engine builds, trains and evaluates inside ``keras.device(device)``, since Keras 3 on the torch
backend would otherwise put everything on a GPU whenever torch sees one, even for ``device="cpu"``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from normlab.experiments._common import CompareError
from normlab.experiments._usercode import user_code, user_frames
from normlab.experiments.models import ModelSpec, build_model, to_model_input
from normlab.experiments.train import RunResult, TrainSettings, train_run

__all__ = ["ENGINES", "Engine", "get_engine"]


@dataclass(frozen=True)
class Engine:
    """A training engine: its name, one line for ``--list``, the default loss, and its two functions."""

    name: str
    description: str
    default_loss: str
    check: Callable[..., None]
    run: Callable[..., RunResult]


def _file_version(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return str(path), int(st.st_size), int(st.st_mtime_ns)


_STATE: dict[str, Any] = {}


def prepared(files: list[str], convert: Callable[[np.ndarray], Any], tag: str) -> tuple[Any, ...]:
    """The preprocessed splits ``files`` converted by ``convert`` (kept for the next run of them).

    The cache is keyed by each file's path, size and modification time: a worker process can outlive a
    sweep (a Dask worker does), and a resumed sweep writes new splits to the same paths.
    """
    key = (tuple(_file_version(f) for f in files), tag)
    cached = _STATE.get("prepared")
    if cached is not None and cached[0] == key:
        return cached[1]
    _STATE.pop("prepared", None)  # free the previous method's arrays first
    arrays = tuple(convert(np.load(f)) for f in files)
    _STATE["prepared"] = (key, arrays)
    return arrays


def clear_prepared() -> None:
    _STATE.clear()


def _torch_check(spec: ModelSpec, sample_shape: tuple[int, ...], n_classes: int, bn_in: bool,
                 bn_all: bool, settings: TrainSettings, probe: np.ndarray, device: str) -> None:  # fmt: skip
    import torch

    with user_code(spec, f"{spec.function}(input_shape, n_classes)"):
        model = build_model(spec, sample_shape, n_classes, batchnorm_input=bn_in, batchnorm_all=bn_all)
    model.train()
    x = torch.from_numpy(to_model_input(probe))
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:
        raise CompareError(
            f"model {spec.name} failed on a batch of shape {tuple(x.shape)}: {type(e).__name__}: {e}"
            f"\n{user_frames(e, spec.path)}".rstrip()
        ) from e
    if tuple(out.shape) != (x.shape[0], n_classes):
        raise CompareError(
            f"model {spec.name} returned shape {tuple(out.shape)} for a batch of {x.shape[0]}; "
            f"expected ({x.shape[0]}, {n_classes}) class logits (no softmax: the loss applies it)."
        )


def _torch_run(task: dict[str, Any], settings: TrainSettings, device: str,
               on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:  # fmt: skip
    import torch

    dev = torch.device(device)
    data = prepared(task["files"], lambda a: torch.from_numpy(a).to(dev), f"torch:{dev}")
    t0 = time.perf_counter()
    torch.manual_seed(int(task["init_seed"]))  # weights are drawn on the CPU: the same on every device
    model = build_model(task["model_spec"], tuple(task["sample_shape"]), int(task["n_classes"]),
                        batchnorm_input=bool(task["batchnorm_input"]),
                        batchnorm_all=bool(task["batchnorm_all"])).to(dev)  # fmt: skip
    result = train_run(model, data, settings, int(task["order_seed"]), on_epoch=on_epoch)
    result.seconds = time.perf_counter() - t0
    return result


def _channels_last(a: np.ndarray) -> np.ndarray:
    """The cached splits are channels-first (the torch layout); Keras reads images channels-last."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 else a


def _keras_model(spec: ModelSpec, sample_shape: tuple[int, ...], n_classes: int, bn_in: bool,
                 bn_all: bool, settings: TrainSettings) -> Any:  # fmt: skip
    from normlab.experiments.keras_models import build_keras_model

    return build_keras_model(spec, sample_shape, n_classes, batchnorm_input=bn_in, batchnorm_all=bn_all,
                             loss=settings.loss, optimizer=settings.optimizer, lr=settings.learning_rate,
                             loss_given=settings.loss_given)  # fmt: skip


def _keras_check(spec: ModelSpec, sample_shape: tuple[int, ...], n_classes: int, bn_in: bool,
                 bn_all: bool, settings: TrainSettings, probe: np.ndarray, device: str) -> None:  # fmt: skip
    from normlab.experiments.keras_models import import_keras

    with import_keras().device(device):
        model = _keras_model(spec, sample_shape, n_classes, bn_in, bn_all, settings)
        try:
            out = np.asarray(model.predict(np.asarray(probe, dtype=np.float32), verbose=0))
        except Exception as e:
            raise CompareError(
                f"model {spec.name} failed on a batch of shape {tuple(probe.shape)}: {type(e).__name__}: {e}"
            ) from e
    if out.shape != (probe.shape[0], n_classes):
        raise CompareError(
            f"model {spec.name} returned shape {out.shape} for a batch of {probe.shape[0]}; expected "
            f"({probe.shape[0]}, {n_classes}): one probability (softmax) or logit per class."
        )


def _keras_run(task: dict[str, Any], settings: TrainSettings, device: str,
               on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:  # fmt: skip
    from normlab.experiments.keras_models import import_keras, keras_seeded
    from normlab.experiments.keras_train import train_keras_run

    keras = import_keras()
    data = prepared(task["files"], _channels_last, "keras")
    t0 = time.perf_counter()
    # weights, batches and evaluation on the sweep's device (not Keras' default), and the weights drawn from
    # the init seed alone, whatever other threads of the process draw meanwhile
    with keras.device(device), keras_seeded(int(task["init_seed"])):
        model = _keras_model(task["model_spec"], tuple(task["sample_shape"]), int(task["n_classes"]),
                             bool(task["batchnorm_input"]), bool(task["batchnorm_all"]), settings)  # fmt: skip
        result = train_keras_run(model, data, settings, int(task["order_seed"]), int(task["n_classes"]),
                                 on_epoch=on_epoch)  # fmt: skip
    result.seconds = time.perf_counter() - t0
    return result


#: The registry of engines, in the order ``--list`` shows them (the first is the default).
ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("torch", "the bench's PyTorch loop; built-in models output logits", "logits",
               _torch_check, _torch_run),
        Engine("keras", "Keras' model.fit (torch backend); built-in models as Keras Sequential, softmax "
               "output, categorical_crossentropy", "keras-probs", _keras_check, _keras_run),
    )
}  # fmt: skip


def get_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise CompareError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}.")
    return ENGINES[name]
