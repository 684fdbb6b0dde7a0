"""The normalization inside a model, read without running it: Keras files, torch modules and state_dicts,
ONNX graphs; composed with the data so that every check judges what the first weight layer receives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tests.check.helpers import IMAGENET_MEAN, IMAGENET_STD, one

import normlab
import normlab.check as check
from normlab.adapters.models import read_model
from normlab.errors import DataError

# ---- Keras ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_rescaling_model(tmp_path_factory):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255, name="rescale"),
                              keras.layers.Conv2D(4, 3, name="conv"), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    path = tmp_path_factory.mktemp("models") / "model.keras"
    model.save(path)
    return path


def test_x_div_255_into_a_saved_keras_model_with_rescaling_is_double_scaling(mnist_small, keras_rescaling_model):
    r = check(mnist_small, normalized=mnist_small / 255.0, model=str(keras_rescaling_model))
    f = one(r, "double-scaling")
    assert (f.severity, f.numbers["factor"], f.numbers["model_layers"]) == ("error", pytest.approx(65025), ["rescale"])
    assert "One of the divisions is the model's own Rescaling 'rescale'." in f.message
    assert f.message.startswith("What the model's first layer 'conv' receives from the training data")
    info = one(r, "model-input")
    assert info.severity == "info" and info.numbers["first_layer"] == "conv"
    assert info.numbers["steps"][0]["scale"] == [pytest.approx(1 / 255)]


def test_raw_pixels_into_the_same_keras_model_are_silent(mnist_small, mnist_test, keras_rescaling_model):
    r = check(mnist_small, test=mnist_test[:2000], model=keras_rescaling_model, expects="unit")
    assert r.codes == ["model-input"]


def test_keras_normalization_and_normlab_layers_are_composed(cifar_subset):
    keras = pytest.importorskip("keras")
    norm = normlab.Standardize(per="channel").fit(cifar_subset)
    layer = norm.to_keras()
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1.0),
                              keras.layers.Normalization(mean=IMAGENET_MEAN * 255, variance=(IMAGENET_STD * 255) ** 2),
                              keras.layers.Conv2D(2, 3)])
    m = read_model(model)
    assert [s.kind for s in m.steps] == ["Rescaling", "Normalization"]
    a, b = m.steps[1].scale.ravel(), m.steps[1].offset.ravel()
    assert a == pytest.approx(1 / (IMAGENET_STD * 255)) and b == pytest.approx(-IMAGENET_MEAN / IMAGENET_STD)
    # the same model fed x / 255 sees 0..255 statistics on [0, 1] data
    assert "stats-outside-data" in check(cifar_subset / 255.0, model=model)
    ours = keras.Sequential([keras.Input((32, 32, 3)), layer, keras.layers.Conv2D(2, 3)])
    assert read_model(ours).steps[0].kind in ("normlab Normalize", "Normalization")
    assert check(cifar_subset, model=ours).codes == ["model-input"]


def test_a_lambda_layer_ends_the_reading_without_running_it(mnist_small):
    keras = pytest.importorskip("keras")
    calls = []

    def divide(x):
        calls.append(1)
        return x / 255.0

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1.0, name="identity"),
                              keras.layers.Lambda(divide, name="div255"), keras.layers.Conv2D(2, 3)])
    calls.clear()
    m = read_model(model)
    assert m.stopped == "Lambda 'div255' is not an affine map with constants (its code is not run)" and not calls
    info = check(mnist_small, model=model).by_code("model-input")[0]
    assert "Reading stopped at Lambda 'div255'" in info.message


def test_xception_fed_unit_data_is_an_expects_mismatch(cifar_subset):
    f = one(check(cifar_subset, normalized=cifar_subset / 255.0, expects="minus-one-one"), "expects-mismatch")
    assert f.numbers["expected_mean"] == pytest.approx(list(cifar_subset.mean(axis=(0, 1, 2)) / 127.5 - 1), rel=1e-9)
    assert f.hint.startswith("x = x * 2 - 1   # from what it gets now to what it expects")


def test_hugging_face_preprocessor_config(tmp_path, cifar_subset):
    cfg = tmp_path / "preprocessor_config.json"
    cfg.write_text('{"do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true, '
                   '"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')
    x01 = cifar_subset / 255.0
    assert check(cifar_subset, normalized=x01 * 2 - 1, expects=str(cfg)).codes == []
    assert "expects-mismatch" in check(cifar_subset, normalized=(x01 - IMAGENET_MEAN) / IMAGENET_STD, expects=str(cfg))
    timm = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert check(cifar_subset, normalized=(x01 - IMAGENET_MEAN) / IMAGENET_STD, expects=timm).codes == []


# ---- PyTorch --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_model():
    torch = pytest.importorskip("torch")

    class Normalize(torch.nn.Module):  # torchvision.transforms.Normalize, as a module
        def __init__(self, mean, std):
            super().__init__()
            self.mean, self.std = list(mean), list(std)

        def forward(self, x):
            return (x - torch.tensor(self.mean).view(-1, 1, 1)) / torch.tensor(self.std).view(-1, 1, 1)

    return torch.nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), torch.nn.Conv2d(3, 4, 3))


def test_a_torch_module_that_normalizes_first_is_composed_with_channels_first_data(cifar_subset, torch_model):
    x01 = np.ascontiguousarray((cifar_subset / 255.0).transpose(0, 3, 1, 2)).astype(np.float32)
    r = check(x01, model=torch_model, channel_axis=1)
    assert r.codes == ["model-input"]
    assert r.by_code("model-input")[0].numbers["first_layer"] == "1"
    # normalizing again before the model: the network gets ImageNet's statistics applied twice
    twice = (x01 - IMAGENET_MEAN.reshape(3, 1, 1)) / IMAGENET_STD.reshape(3, 1, 1)
    assert "expects-mismatch" in check(x01, normalized=twice, model=torch_model, channel_axis=1,
                                       expects="imagenet")


def test_a_torch_state_dict_is_read_with_weights_only_and_a_pickled_module_is_refused(tmp_path, mnist_small):
    torch = pytest.importorskip("torch")
    norm = normlab.Standardize(per="channel").fit(mnist_small)
    net = torch.nn.Sequential(norm.to_torch(), torch.nn.Conv2d(1, 2, 3))
    sd = tmp_path / "model.pt"
    torch.save(net.state_dict(), sd)
    m = read_model(sd)
    assert [s.kind for s in m.steps] == ["normlab Normalize"] and m.first_layer == "1"
    assert check(mnist_small, model=str(sd)).codes == ["model-input"]
    pickled = tmp_path / "whole.pt"
    torch.save(net, pickled)
    with pytest.raises(DataError, match=r"weights_only=True\) refused it\). Save model.state_dict\(\)"):
        check(mnist_small, model=str(pickled))
    scripted = tmp_path / "scripted.pt"
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; files saved with it still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net[1]), str(scripted))
    with pytest.raises(DataError, match=r"is a TorchScript archive .* expected a state_dict"):
        check(mnist_small, model=str(scripted))


# ---- ONNX -----------------------------------------------------------------------------------------


def _onnx_model(path, divisor):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    d = numpy_helper.from_array(np.array(divisor, np.float32).reshape(1, 1, 1, 1), "d")
    m = numpy_helper.from_array(np.array([0.0], np.float32).reshape(1, 1, 1, 1), "m")
    nodes = [helper.make_node("Cast", ["x"], ["xc"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Div", ["xc", "d"], ["x1"], name="div"),
             helper.make_node("Sub", ["x1", "m"], ["x2"], name="sub"),
             helper.make_node("Conv", ["x2", "w"], ["y"], name="conv")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, d, m])
    onnx.save(helper.make_model(graph), path)
    return path


def test_onnx_leading_div_and_sub_are_composed(tmp_path, mnist_small):
    x = np.ascontiguousarray(mnist_small.transpose(0, 3, 1, 2))
    path = _onnx_model(tmp_path / "model.onnx", 255.0)
    m = read_model(path)
    assert [s.kind for s in m.steps] == ["Div", "Sub"] and m.first_layer == "conv"
    assert check(x, model=str(path), channel_axis=1).codes == ["model-input"]
    assert "double-scaling" in check(x, normalized=x / 255.0, model=str(path), channel_axis=1)


def test_cli_check_with_model_prints_json_with_the_new_codes(mnist_small, keras_rescaling_model, tmp_path, capsys):
    import json

    from normlab.cli.main import main

    np.save(tmp_path / "x.npy", mnist_small)
    np.save(tmp_path / "z.npy", mnist_small / 255.0)
    code = main(["check", str(tmp_path / "x.npy"), "--normalized", str(tmp_path / "z.npy"), "--model",
                 str(keras_rescaling_model), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and [f["code"] for f in doc["findings"]] == ["double-scaling", "model-input"]
    assert doc["inputs"]["model"].endswith("Rescaling 'rescale' (x * 0.003922)")
    code = main(["check", str(tmp_path / "x.npy"), "--model", str(tmp_path / "nope.pt")])
    assert code == 1 and capsys.readouterr().err.startswith("Error: normlab.check(model=")


def test_cli_expects_a_hugging_face_config(cifar_subset, tmp_path, capsys):
    from normlab.cli.main import main

    cfg = tmp_path / "preprocessor_config.json"
    cfg.write_text('{"do_rescale": true, "rescale_factor": 0.00392156862745098, "image_mean": [0.5, 0.5, 0.5], '
                   '"image_std": [0.5, 0.5, 0.5]}')
    np.save(tmp_path / "x.npy", cifar_subset)
    np.save(tmp_path / "z.npy", cifar_subset / 255.0)
    code = main(["check", str(tmp_path / "x.npy"), "--normalized", str(tmp_path / "z.npy"), "--expects", str(cfg)])
    out = capsys.readouterr().out
    assert code == 1 and "error[expects-mismatch] (normalized)" in out
    assert "x = x * 2 - 1   # from what it gets now to what it expects" in out
    assert "x = (x_uint8 * 0.003922 - (0.5, 0.5, 0.5)) / (0.5, 0.5, 0.5)" in out


def test_a_torch_export_program_is_read_from_its_graph(tmp_path, cifar_subset):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1))
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv((x / 255.0 - self.mean) / self.std)

    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(Net(), (torch.rand(2, 3, 32, 32),)), str(path))
    m = read_model(path)
    assert [s.kind for s in m.steps] == ["aten.div", "aten.sub", "aten.div"] and m.first_layer == "conv2d"
    x = np.ascontiguousarray(cifar_subset.transpose(0, 3, 1, 2))
    assert check(x, model=str(path), channel_axis=1, expects="imagenet").codes == ["model-input"]
    assert "stats-outside-data" in check(x / 255.0, model=str(path), channel_axis=1)
