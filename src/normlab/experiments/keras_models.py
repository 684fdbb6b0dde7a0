"""The models the Keras engine trains: the built-in architectures as Keras ``Sequential`` models, or yours.

The built-in models are the same architectures as :mod:`normlab.experiments.models`, written the way the
Keras posts and notebooks this bench answers wrote them: channels-last input, ``Dense(n_classes,
activation="softmax")`` as the output, ``loss="categorical_crossentropy"`` on one-hot labels, Keras'
optimizer with its defaults (``--loss logits`` gives a linear output and
``CategoricalCrossentropy(from_logits=True)`` instead). Keras initializes them (Glorot-uniform kernels,
zero biases, orthogonal recurrent kernels, an LSTM forget-gate bias of 1) under
``keras.utils.set_random_seed(init_seed)``, with Keras' default seeds drawn from that seed alone
(:func:`keras_seeded`).

A user's ``file.py:build`` may return a ``keras.Model``: if the builder compiled it, its ``compile()``
(loss, optimizer, metrics) is kept, with an ``"accuracy"`` metric added when it has none; otherwise the
bench compiles it with its optimizer and ``SparseCategoricalCrossentropy(from_logits=...)``, chosen from
the output activation (softmax: probabilities; anything else: logits). A ``--loss`` given explicitly is
checked against that model rather than silently replaced: a compiled model is refused (its own loss would
train, not the one asked for), and an uncompiled one must end the way the loss reads its output
(``keras-probs``: a softmax; ``logits``: no softmax), which is then the documented from-activation choice.

``batchnorm-input`` puts ``BatchNormalization(center=False, scale=False)`` in front of the model;
``batchnorm-all`` adds ``BatchNormalization`` after every hidden layer, before its activation (a user's
builder receives ``batchnorm=True``).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from normlab.experiments._common import CompareError
from normlab.experiments.models import ModelSpec, input_layout

__all__ = ["KERAS_ARCHITECTURES", "build_keras_model", "import_keras", "is_keras_model", "keras_device",
           "keras_seeded", "label_format"]


def import_keras() -> Any:
    """``keras`` on the PyTorch backend (``KERAS_BACKEND=torch``; TensorFlow is never needed)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        raise CompareError(
            f"the Keras engine trains on Keras' PyTorch backend, but Keras was loaded with the "
            f"{keras.backend.backend()!r} backend; expected KERAS_BACKEND=torch. Set it before Python starts."
        )
    return keras


@contextlib.contextmanager
def keras_device(device: str) -> Iterator[None]:
    """Keras creates its weights and tensors on ``device`` inside this block (when Keras is loaded).

    Keras 3 on the torch backend places everything on its default device, a GPU whenever torch sees one
    (``keras/src/backend/torch/core.py``: ``DEFAULT_DEVICE``), whatever the sweep's ``device`` says;
    ``keras.device(device)`` sets the backend's device for this thread. Without Keras loaded there is
    nothing to place, and Keras is not imported for it.
    """
    if "keras" not in sys.modules:
        yield
        return
    with import_keras().device(device):
        yield


_DRAWS = threading.local()


class _ThisThreadsRandom:
    """Stands in for the ``random`` module inside Keras' ``seed_generator``: in a thread under
    :func:`keras_seeded` its draws come from that thread's own generator, elsewhere from ``random``."""

    def __getattr__(self, name: str) -> Any:
        rng = getattr(_DRAWS, "rng", None)
        return getattr(rng if rng is not None else random, name)


@contextlib.contextmanager
def keras_seeded(seed: int) -> Iterator[None]:
    """``keras.utils.set_random_seed(seed)``, with Keras' default seeds drawn from this thread alone.

    Every Keras initializer and ``SeedGenerator`` built without a seed takes one from
    ``make_default_seed()``, that is from Python's process-wide ``random``
    (``keras/src/random/seed_generator.py``). In a Dask worker the worker's own threads draw from it too,
    at moments that vary from run to run, so the same init seed gave other weights there (measured: one
    run in four of a Keras sweep on two workers, after other work on them). Inside this block those
    draws come from ``random.Random(seed)``: the same numbers ``random.seed(seed)`` would give a quiet
    process, and nothing another thread does can move them.
    """
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    module = sys.modules.get("keras.src.random.seed_generator")
    if module is not None and not isinstance(getattr(module, "python_random", None), _ThisThreadsRandom):
        module.python_random = _ThisThreadsRandom()  # once per process; other threads see `random` itself
    old = getattr(_DRAWS, "rng", None)
    _DRAWS.rng = random.Random(seed)
    try:
        yield
    finally:
        _DRAWS.rng = old


def is_keras_model(obj: Any) -> bool:
    """True for a ``keras.Model`` (checked without importing Keras when it is not loaded)."""
    if not type(obj).__module__.startswith("keras"):
        return False
    return isinstance(obj, import_keras().Model)


def _dense(keras: Any, units: int, bn: bool) -> list[Any]:
    L = keras.layers
    if not bn:
        return [L.Dense(units, activation="relu")]
    return [L.Dense(units), L.BatchNormalization(), L.Activation("relu")]


def _conv(keras: Any, filters: int, k: int, bn: bool, padding: str = "valid") -> list[Any]:
    L = keras.layers
    if not bn:
        return [L.Conv2D(filters, k, padding=padding, activation="relu")]
    return [L.Conv2D(filters, k, padding=padding), L.BatchNormalization(), L.Activation("relu")]


def _image(name: str, shape: tuple[int, ...]) -> None:
    if input_layout(shape) != "image":
        raise CompareError(
            f"model {name!r} is a convolutional network for images (h, w, c), but the samples have shape "
            f"{shape}; expected image data. Use 'mlp' or 'logreg' for tables."
        )


def _logreg(keras: Any, name: str, shape: tuple[int, ...], bn: bool) -> list[Any]:
    return [keras.layers.Flatten()]


def _mlp(keras: Any, name: str, shape: tuple[int, ...], bn: bool) -> list[Any]:
    return [keras.layers.Flatten(), *_dense(keras, 128, bn)]


def _lenet(keras: Any, name: str, shape: tuple[int, ...], bn: bool) -> list[Any]:
    _image(name, shape)
    L = keras.layers
    return [*_conv(keras, 20, 5, bn, "same"), L.MaxPooling2D(2), *_conv(keras, 50, 5, bn, "same"),
            L.MaxPooling2D(2), L.Flatten(), *_dense(keras, 500, bn)]  # fmt: skip


def _cnn(keras: Any, name: str, shape: tuple[int, ...], bn: bool) -> list[Any]:
    _image(name, shape)
    L = keras.layers
    return [*_conv(keras, 32, 3, bn), *_conv(keras, 64, 3, bn), L.MaxPooling2D(2), L.Flatten(),
            *_dense(keras, 128, bn), *_dense(keras, 128, bn)]  # fmt: skip


def _recurrent(keras: Any, name: str, shape: tuple[int, ...], bn: bool) -> list[Any]:
    L = keras.layers
    kind = input_layout(shape)
    if kind == "table":
        raise CompareError(
            f"model {name!r} reads image rows (or sequence steps) as time steps, but the samples are table "
            f"rows of shape {shape}; expected images (h, w, c) or sequences (t, f). Use 'mlp' or 'logreg'."
        )
    layers = [L.Reshape((shape[0], math.prod(shape[1:])))] if kind == "image" else []
    layers.append((L.LSTM if name == "lstm" else L.GRU)(128))
    return layers + ([L.BatchNormalization()] if bn else [])


#: The built-in models as Keras layers before the output layer: ``build(keras, name, shape, bn)``.
KERAS_ARCHITECTURES: dict[str, Callable[[Any, str, tuple[int, ...], bool], list[Any]]] = {
    "logreg": _logreg, "mlp": _mlp, "lenet": _lenet, "cnn": _cnn, "lstm": _recurrent, "gru": _recurrent,
}  # fmt: skip


def _optimizer(keras: Any, name: str, lr: float) -> Any:
    return {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
            "rmsprop": keras.optimizers.RMSprop}[name](learning_rate=lr)  # fmt: skip


def build_keras_model(
    spec: ModelSpec, sample_shape: tuple[int, ...], n_classes: int, *, batchnorm_input: bool,
    batchnorm_all: bool, loss: str, optimizer: str, lr: float, loss_given: bool = False,
) -> Any:  # fmt: skip
    """The compiled Keras model of ``spec`` for samples of ``sample_shape`` (channels-last, as the data).

    ``loss_given``: the user chose ``loss``; a user's model that cannot train with it is a
    :class:`CompareError` (see the module's docstring).
    """
    keras = import_keras()
    if spec.builtin:
        if spec.name not in KERAS_ARCHITECTURES:
            raise CompareError(
                f"model {spec.name!r} has no Keras version; expected one of {', '.join(KERAS_ARCHITECTURES)}."
            )
        probs = loss == "keras-probs"
        body = KERAS_ARCHITECTURES[spec.name](keras, spec.name, tuple(sample_shape), batchnorm_all)
        head = keras.layers.Dense(n_classes, activation="softmax" if probs else None)
        model = keras.Sequential([keras.Input(tuple(sample_shape)), *body, head], name=spec.name)
        model.compile(
            optimizer=_optimizer(keras, optimizer, lr),
            loss="categorical_crossentropy" if probs else keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )  # fmt: skip
    else:
        model = _user_model(keras, spec, sample_shape, n_classes, batchnorm_all)
        if loss_given:
            _check_user_loss(spec, model, loss)
    if batchnorm_input:
        model = _with_input_batchnorm(keras, model, sample_shape)
    if not model.compiled:
        from_logits = not softmax_output(model)
        model.compile(
            optimizer=_optimizer(keras, optimizer, lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
            metrics=["accuracy"],
        )
    elif not _has_accuracy(model):
        _recompile(model, model, extra_metrics=["accuracy"])
    return model


def _user_model(keras: Any, spec: ModelSpec, shape: tuple[int, ...], n_classes: int, bn: bool) -> Any:
    builder = spec.load_builder()
    kwargs = {}
    if bn:
        if "batchnorm" not in inspect.signature(builder).parameters:
            raise CompareError(
                f"method 'batchnorm-all' needs the model to add its own BatchNorm layers, but {spec.name}'s "
                f"{spec.function}() has no `batchnorm` parameter; expected {spec.function}(input_shape, "
                "n_classes, batchnorm=False). Add the parameter, or drop batchnorm-all from --methods."
            )
        kwargs["batchnorm"] = True
    model = builder(tuple(shape), n_classes, **kwargs)
    if not is_keras_model(model):
        raise CompareError(
            f"--model {spec.name}: {spec.function}() returned {type(model).__name__} on one call and a "
            "keras.Model on another; expected the same kind of model every time."
        )
    return model


def _check_user_loss(spec: ModelSpec, model: Any, loss: str) -> None:
    """Refuse a user's Keras model that would not train with the explicitly chosen ``loss``."""
    call = f"{spec.function}()"
    if model.compiled:
        own = model.loss if isinstance(model.loss, str) else type(model.loss).__name__
        raise CompareError(
            f"--loss {loss} was given, but {spec.name}'s {call} returned a compiled keras.Model, which trains "
            f"with its own loss ({own}); expected one of the two, not both. Drop --loss to train with the "
            f"model's compile(), or return the model uncompiled to train with --loss {loss}."
        )
    probs = softmax_output(model)
    if loss == "keras-probs" and not probs:
        raise CompareError(
            f"--loss keras-probs is Keras 3's cross-entropy on a softmax output, but {spec.name}'s {call} "
            "returned a model whose last layer has no softmax (its outputs are logits); expected "
            "activation='softmax' on the last layer. Add it, or use --loss logits (or drop --loss)."
        )
    if loss == "logits" and probs:
        raise CompareError(
            f"--loss logits trains on the model's logits, but {spec.name}'s {call} returned a model whose last "
            "layer ends in a softmax (its outputs are probabilities, which Keras clips as keras-probs does); "
            "expected a last layer without softmax. Remove the softmax, or use --loss keras-probs (or drop --loss)."
        )


def _with_input_batchnorm(keras: Any, model: Any, shape: tuple[int, ...]) -> Any:
    """``BatchNormalization(center=False, scale=False)`` in front of ``model``, compiled as it was."""
    outer = keras.Sequential(
        [keras.Input(tuple(shape)), keras.layers.BatchNormalization(center=False, scale=False), model]
    )
    if model.compiled:
        _recompile(outer, model)
    return outer


def _has_accuracy(model: Any) -> bool:
    metrics = model.get_compile_config().get("metrics") or []
    names = [m if isinstance(m, str) else str(m) for m in (metrics if isinstance(metrics, list) else [metrics])]
    return any("acc" in n for n in names)


def _recompile(target: Any, source: Any, extra_metrics: list[str] | None = None) -> None:
    """Compile ``target`` with ``source``'s loss, optimizer and metrics (plus ``extra_metrics``)."""
    cfg = source.get_compile_config()
    metrics = cfg.get("metrics") or []
    metrics = list(metrics) if isinstance(metrics, list) else [metrics]
    target.compile(
        optimizer=source.optimizer, loss=source.loss, loss_weights=cfg.get("loss_weights"),
        metrics=metrics + list(extra_metrics or []), weighted_metrics=cfg.get("weighted_metrics"),
    )  # fmt: skip


def softmax_output(model: Any) -> bool:
    """True when the model's last layer ends in a softmax (its outputs are probabilities)."""
    keras = import_keras()
    layer = model.layers[-1]
    while isinstance(layer, keras.Model) and layer.layers:  # a wrapped model: its own last layer
        layer = layer.layers[-1]
    act = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Softmax) or act is keras.activations.softmax:
        return True
    return isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.softmax


def label_format(model: Any) -> str:
    """``"onehot"`` when the compiled loss is a non-sparse categorical loss, else ``"int"``."""
    loss = model.loss
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", "")
    name = str(name).lower()
    return "onehot" if "categorical" in name and "sparse" not in name else "int"
