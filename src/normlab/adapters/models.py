"""Read the normalization a model applies to its own input: Keras, PyTorch and ONNX models.

:func:`read_model` returns a :class:`normlab.check._model.ModelInput`, the chain of affine maps
``y = x * scale + offset`` (NumPy constants, with the layers' names) that a model applies before its first
layer with weights; ``normlab.check(model=...)`` composes it with the data's own preprocessing. Recognized:

- Keras: ``Rescaling``, ``Normalization`` (``invert=False``), normlab's ``Normalize`` layer; layers that only
  move values (``Reshape``, ``Permute``, ``Dropout``, augmentation layers, which are the identity at inference)
  are passed; nested models are read layer by layer.
- PyTorch: normlab's ``Normalize`` module, any module named ``*Normalize*`` with ``mean``/``std``
  (torchvision's), in the order the modules were registered; a ``.pt`` file is loaded with
  ``torch.load(weights_only=True)``, so a state_dict is read by its leading ``mean``/``std`` (or normlab's
  ``inv_scale``/``offset``) buffers and a pickled module, which only loads by running its code, is refused.
- ``torch.export`` programs (``.pt2``, a graph of ATen operators, no pickled Python code): the leading
  ``sub``/``div``/``mul``/``add`` with a number, buffer or constant operand.
- ONNX: the leading ``Sub``/``Div``/``Mul``/``Add`` nodes with a constant operand (``Identity``/``Cast``
  passed).

Nothing of a model is executed: a layer that is not one of these (custom code, ``Lambda``, a per-sample
normalization) ends the reading, and :attr:`ModelInput.stopped` says where and why.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from normlab.check import InputStep, ModelInput
from normlab.errors import DataError

__all__ = ["read_model"]

#: Keras layers that pass values on unchanged at inference.
_KERAS_PASS = {"InputLayer", "Reshape", "Permute", "Flatten", "Resizing", "CenterCrop", "Dropout", "SpatialDropout2D", "GaussianNoise",
               "GaussianDropout", "AlphaDropout", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
               "RandomCrop", "RandomContrast", "RandomBrightness", "Activation_linear", "Cast"}
#: PyTorch modules that pass values on unchanged (at inference).
_TORCH_PASS = {"Identity", "Flatten", "Unflatten", "Dropout", "Dropout2d"}
_ONNX_PASS = {"Identity", "Cast", "Dropout"}


def read_model(model: Any) -> ModelInput | None:
    """The input normalization of a Keras, PyTorch or ONNX model or model file (None: not a model here)."""
    if isinstance(model, (str, os.PathLike)):
        return _read_file(Path(model))
    module = type(model).__module__ or ""
    if module.startswith("keras") or _is_keras(model):
        return _keras_chain(model, f"{type(model).__name__} {getattr(model, 'name', '')!r}".rstrip())
    if "torch" in sys.modules:
        import torch

        if isinstance(model, torch.nn.Module):
            return _torch_chain(model, f"{type(model).__name__} (torch)")
        if isinstance(model, torch.export.ExportedProgram):
            return _exported_chain(model, "torch.export program")
    if module.startswith("onnx"):
        return _onnx_chain(model, "ONNX model")
    return None


def _is_keras(model: Any) -> bool:
    return "keras" in sys.modules and isinstance(model, sys.modules["keras"].layers.Layer)


def _read_file(path: Path) -> ModelInput:
    if not path.is_file():
        raise DataError(f"normlab.check(model={str(path)!r}): no such file; expected a .keras, .pt or .onnx file.")
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5"):
        import keras

        import normlab.adapters.keras  # noqa: F401  (registers normlab's layers for loading)

        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as err:
            raise DataError(
                f"normlab.check(model={str(path)!r}) could not load the Keras model ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); expected a model saved with model.save(). "
                "Models with Lambda layers or unregistered custom layers are not loaded (their code would run)."
            ) from err
        return _keras_chain(model, str(path))
    if suffix in (".pt", ".pth", ".bin"):
        return _torch_file(path)
    if suffix == ".pt2":
        import torch

        return _exported_chain(torch.export.load(str(path)), str(path))
    if suffix == ".onnx":
        import onnx

        return _onnx_chain(onnx.load(str(path)), str(path))
    raise DataError(
        f"normlab.check(model={str(path)!r}) has the suffix {suffix!r}; expected .keras, .pt/.pth, .pt2 "
        "(torch.export.save) or .onnx."
    )


# ---- Keras ---------------------------------------------------------------------------------------


def _keras_layers(model: Any) -> list[Any]:
    """The layers in order, nested models opened."""
    out = []
    for layer in getattr(model, "layers", [model]):
        if hasattr(layer, "layers") and layer is not model:
            out += _keras_layers(layer)
        else:
            out.append(layer)
    return out


def _fitted_on(layer: Any) -> dict[str, Any]:
    """The fitted data's range and dtype that normlab's layers and modules record (for the scale check)."""
    lo, hi = getattr(layer, "fit_range", None) or (getattr(layer, "fit_min", None), getattr(layer, "fit_max", None))
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return {}
    return {"fit_range": (float(lo), float(hi)), "fit_dtype": str(getattr(layer, "fit_dtype", "") or "")}


def _keras_step(layer: Any) -> InputStep | None:
    kind = type(layer).__name__
    if kind == "Rescaling":
        cfg = layer.get_config()
        return InputStep(layer.name, kind, np.asarray(cfg["scale"], dtype=np.float64),
                         np.asarray(cfg["offset"], dtype=np.float64), **_fitted_on(layer))
    if kind == "Normalization" and not getattr(layer, "invert", False) and getattr(layer, "mean", None) is not None:
        mean = np.asarray(layer.mean, dtype=np.float64)
        std = np.maximum(np.sqrt(np.asarray(layer.variance, dtype=np.float64)), 1e-7)  # keras.backend.epsilon()
        mean, std = _drop_batch_axis(mean), _drop_batch_axis(std)
        return InputStep(layer.name, kind, 1.0 / std, -mean / std, **_fitted_on(layer))
    if kind == "Normalize" and type(layer).__module__.startswith("normlab"):
        return InputStep(layer.name, "normlab Normalize", np.asarray(layer.inv_scale, dtype=np.float64),
                         np.asarray(layer.offset, dtype=np.float64), **_fitted_on(layer))
    return None


def _drop_batch_axis(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[1:]) if a.ndim >= 2 and a.shape[0] == 1 else a


def _keras_chain(model: Any, source: str) -> ModelInput:
    steps: list[InputStep] = []
    for layer in _keras_layers(model):
        kind = type(layer).__name__
        step = _keras_step(layer)
        if step is not None:
            steps.append(step)
            continue
        if kind in _KERAS_PASS or (kind == "Activation" and layer.get_config().get("activation") == "linear"):
            continue
        if layer.weights:
            return ModelInput(source, tuple(steps), first_layer=layer.name)
        return ModelInput(source, tuple(steps), stopped=_stop_text(kind, layer.name))
    return ModelInput(source, tuple(steps))


def _stop_text(kind: str, name: str) -> str:
    if "SampleNormalize" in kind:
        return (f"{kind} {name!r} normalizes each sample by its own statistics, so what follows it no longer "
                "depends on the data's scale")
    return f"{kind} {name!r} is not an affine map with constants (its code is not run)"


# ---- PyTorch -------------------------------------------------------------------------------------


def _as_array(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=np.float64)


def _torch_step(name: str, module: Any) -> InputStep | None:
    kind = type(module).__name__
    if kind == "Normalize" and type(module).__module__.startswith("normlab"):
        return InputStep(name, "normlab Normalize", _as_array(module.inv_scale), _as_array(module.offset),
                         **_fitted_on(module))
    mean, std = getattr(module, "mean", None), getattr(module, "std", None)
    if "Normalize" in kind and mean is not None and std is not None and not callable(mean):
        m, s = _as_array(mean), _as_array(std)
        if m.ndim == 1:  # torchvision: channels first, (c,) -> (c, 1, 1)
            m, s = m.reshape(-1, 1, 1), s.reshape(-1, 1, 1)
        return InputStep(name, kind, 1.0 / s, -m / s)
    return None


def _torch_chain(model: Any, source: str) -> ModelInput:
    steps: list[InputStep] = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()) and _torch_step(name, module) is None:
            continue  # a container: its children come next
        kind = type(module).__name__
        step = _torch_step(name or kind, module)
        if step is not None:
            steps.append(step)
            continue
        if kind in _TORCH_PASS:
            continue
        if any(True for _ in module.parameters(recurse=False)):
            return ModelInput(source, tuple(steps), first_layer=name or kind)
        return ModelInput(source, tuple(steps), stopped=_stop_text(kind, name or kind))
    return ModelInput(source, tuple(steps))


def _is_torchscript(path: Path) -> bool:
    """A torch.jit.save archive: a zip with a ``code/`` folder (torch.load would hand it to torch.jit.load)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in name for name in zf.namelist())


def _torch_file(path: Path) -> ModelInput:
    import pickle

    import torch

    if _is_torchscript(path):
        raise DataError(
            f"normlab.check(model={str(path)!r}) is a TorchScript archive (torch.jit.save), whose code normlab does "
            "not load; expected a state_dict. Save model.state_dict(), export with torch.export.save (.pt2) or "
            "to ONNX, or pass the live module: normlab.check(..., model=model)."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
        raise DataError(
            f"normlab.check(model={str(path)!r}): the file is not a plain state_dict; a pickled model "
            "(torch.save(model)) loads only by running arbitrary code, which normlab never does "
            "(torch.load(weights_only=True) refused it). Save model.state_dict(), export to ONNX "
            "(torch.onnx.export), or pass the live module: normlab.check(..., model=model)."
        ) from err
    if isinstance(obj, torch.nn.Module):
        return _torch_chain(obj, str(path))
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"normlab.check(model={str(path)!r}) holds a {type(obj).__name__}; expected a state_dict.")
    return _state_dict_chain(state, str(path))


def _state_dict_chain(state: dict[str, Any], source: str) -> ModelInput:
    """Leading modules of a state_dict (in the order they were registered) whose buffers normalize."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        prefix, _, leaf = str(key).rpartition(".")
        groups.setdefault(prefix, {})[leaf] = value
    steps: list[InputStep] = []
    for prefix, leaves in groups.items():
        name = prefix or "(root)"
        if {"inv_scale", "offset"} <= set(leaves):
            steps.append(InputStep(name, "normlab Normalize", _as_array(leaves["inv_scale"]),
                                   _as_array(leaves["offset"])))
        elif {"mean", "std"} <= set(leaves) and "weight" not in leaves:
            m, s = _as_array(leaves["mean"]), _as_array(leaves["std"])
            if m.ndim == 1:
                m, s = m.reshape(-1, 1, 1), s.reshape(-1, 1, 1)
            steps.append(InputStep(name, "mean/std buffers", 1.0 / s, -m / s))
        else:
            return ModelInput(source, tuple(steps), first_layer=name,
                              notes=("read from a state_dict: modules in the order they were registered",))
    return ModelInput(source, tuple(steps))


# ---- torch.export --------------------------------------------------------------------------------

_ATEN_AFFINE = {"sub": "Sub", "div": "Div", "mul": "Mul", "add": "Add"}
_ATEN_PASS = {"_to_copy", "to", "clone", "contiguous", "alias", "detach"}


def _affine(op: str, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y = x <op> c`` as ``x * scale + offset``."""
    one, zero = np.ones_like(c), np.zeros_like(c)
    return {"Sub": (one, -c), "Add": (one, c), "Mul": (c, zero), "Div": (1.0 / np.where(c == 0, np.nan, c), zero)}[op]


def _exported_chain(ep: Any, source: str) -> ModelInput:
    sig = ep.graph_signature
    names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
             **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
    tensors = {**ep.state_dict, **ep.constants}
    consts = {ph: _as_array(tensors[name]) for ph, name in names.items() if name in tensors}
    nodes = list(ep.graph_module.graph.nodes)
    current = next((n for n in nodes if n.op == "placeholder" and n.name in sig.user_inputs), None)
    steps: list[InputStep] = []
    while current is not None:
        users = list(current.users)
        if len(users) != 1 or users[0].op != "call_function":
            return ModelInput(source, tuple(steps), stopped=None if not users else f"the input feeds {len(users)} nodes")
        node = users[0]
        op = str(getattr(node.target, "__name__", node.target)).split(".")[0]
        if op in _ATEN_PASS:
            current = node
            continue
        other = node.args[1] if len(node.args) == 2 and node.args[0] is current else None
        c = np.asarray(other, dtype=np.float64) if isinstance(other, (int, float)) else \
            consts.get(getattr(other, "name", None))
        if op in _ATEN_AFFINE and c is not None and "alpha" not in node.kwargs:
            scale, offset = _affine(_ATEN_AFFINE[op], _drop_batch_axis(c))
            steps.append(InputStep(node.name, f"aten.{op}", scale, offset))
            current = node
            continue
        if any(getattr(a, "name", None) in consts for a in node.args):
            return ModelInput(source, tuple(steps), first_layer=node.name)
        return ModelInput(source, tuple(steps), stopped=f"aten.{op} {node.name!r} is not an affine map with a constant")
    return ModelInput(source, tuple(steps))


# ---- ONNX ----------------------------------------------------------------------------------------


def _onnx_chain(model: Any, source: str) -> ModelInput:
    from onnx import numpy_helper

    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
    inputs = [i.name for i in graph.input if i.name not in consts]
    if not inputs:
        return ModelInput(source, (), stopped="the graph has no input")
    current = inputs[0]
    steps: list[InputStep] = []
    while True:
        users = [n for n in graph.node if current in n.input and n.op_type != "Constant"]
        if len(users) != 1:
            return ModelInput(source, tuple(steps), stopped=None if not users else
                              f"the input feeds {len(users)} nodes")
        node = users[0]
        name = node.name or node.op_type
        if node.op_type in _ONNX_PASS:
            current = node.output[0]
            continue
        other = [i for i in node.input if i != current]
        if node.op_type in ("Sub", "Div", "Mul", "Add") and len(other) == 1 and other[0] in consts \
                and node.input[0] == current:
            c = _drop_batch_axis(consts[other[0]])
            if node.op_type == "Div" and np.any(c == 0):
                return ModelInput(source, tuple(steps), stopped=f"Div {name!r} divides by zero")
            scale, offset = _affine(node.op_type, c)
            steps.append(InputStep(name, node.op_type, scale, offset))
            current = node.output[0]
            continue
        if any(i in consts for i in node.input):
            return ModelInput(source, tuple(steps), first_layer=name)
        return ModelInput(source, tuple(steps), stopped=f"{node.op_type} {name!r} is not an affine map with a constant")
