"""Models: every built-in runs on its inputs, the BatchNorm variants keep the paired initialization, and
a user's build() file is loaded with clear errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from normlab.experiments import CompareError
from normlab.experiments.models import MODELS, build_model, parse_model, to_model_input


@pytest.mark.parametrize("name", list(MODELS))
def test_builtin_models_map_images_to_class_logits(name):
    x = torch.from_numpy(to_model_input(np.zeros((3, 12, 12, 1), np.float32)))
    for bn_in, bn_all in ((False, False), (True, True)):
        model = build_model(
            parse_model(name), (12, 12, 1), 7, batchnorm_input=bn_in, batchnorm_all=bn_all
        )
        assert model(x).shape == (3, 7)
        has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
        assert has_bn == (bn_in or bn_all)


def test_images_reach_convolutions_channels_first():
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    y = to_model_input(x)
    assert y.shape == (2, 3, 4, 5)
    assert y[1, 2, 3, 4] == x[1, 3, 4, 2]


def test_batchnorm_layers_do_not_change_the_paired_initial_weights():
    def weights(**bn):
        torch.manual_seed(3)
        model = build_model(parse_model("cnn"), (10, 10, 1), 4, **bn)
        return [p.detach().clone() for n, p in model.named_parameters() if p.dim() > 1]

    plain, with_input_bn, with_all_bn = (
        weights(),
        weights(batchnorm_input=True),
        weights(batchnorm_all=True),
    )
    for a, b, c in zip(plain, with_input_bn, with_all_bn, strict=True):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)


def test_keras_style_initialization():
    torch.manual_seed(0)
    model = build_model(parse_model("lstm"), (8, 6, 1), 3)
    h = model.rnn.hidden_size
    assert torch.all(model.rnn.bias_ih_l0[h : 2 * h] == 1)  # forget gate
    assert torch.all(model.out.bias == 0)
    w = model.rnn.weight_hh_l0.detach()
    torch.testing.assert_close(w.T @ w, torch.eye(h), atol=1e-4, rtol=0)


def test_table_data_is_refused_by_image_models():
    with pytest.raises(CompareError, match="Use 'mlp' or 'logreg' for tables"):
        build_model(parse_model("cnn"), (30,), 2)
    with pytest.raises(CompareError, match="reads image rows"):
        build_model(parse_model("gru"), (30,), 2)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(CompareError, match="expected one of logreg, mlp, lenet, cnn, lstm, gru"):
        parse_model("resnet50")
    with pytest.raises(CompareError, match="not found"):
        parse_model("nowhere/net.py:build")


def test_user_model_file_is_built_and_checked(tmp_path):
    f = tmp_path / "net.py"
    f.write_text(
        textwrap.dedent("""
        import torch
        def build(input_shape, n_classes, batchnorm=False):
            layers = [torch.nn.Flatten(), torch.nn.Linear(int(torch.tensor(input_shape).prod()), 16)]
            if batchnorm:
                layers.append(torch.nn.BatchNorm1d(16))
            return torch.nn.Sequential(*layers, torch.nn.ReLU(), torch.nn.Linear(16, n_classes))
        def plain(input_shape, n_classes):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(n_classes))
        def broken(input_shape, n_classes):
            return "not a module"
    """)
    )
    spec = parse_model(f"{f}:build")
    assert spec.name == "net.py:build" and not spec.builtin
    model = build_model(spec, (6, 6, 2), 5, batchnorm_all=True)
    assert model(torch.zeros(4, 2, 6, 6)).shape == (4, 5)
    with pytest.raises(CompareError, match="has no `batchnorm` parameter"):
        build_model(parse_model(f"{f}:plain"), (6, 6, 2), 5, batchnorm_all=True)
    with pytest.raises(CompareError, match=r"expected a torch\.nn\.Module"):
        build_model(parse_model(f"{f}:broken"), (6, 6, 2), 5)
    with pytest.raises(CompareError, match="Functions found: build, plain, broken"):
        build_model(parse_model(f"{f}:missing"), (6, 6, 2), 5)
