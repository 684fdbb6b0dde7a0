"""normalizer.to_torch(): the module, scripted, exported and ONNX forms all agree with NumPy's transform."""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import normlab  # noqa: E402
from normlab.adapters.torch import Normalize, SampleNormalize  # noqa: E402

CONFIG_NAMES = ("mnist-nhwc", "mnist-nchw", "mnist-flat", "cifar-nhwc", "cifar-nchw")  # tests/adapters/conftest.py


class Multi(torch.nn.Module):
    """Many normalizer modules applied to one input: one script/export/ONNX graph per configuration."""

    def __init__(self, modules):
        super().__init__()
        self.norms = torch.nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for m in self.norms:
            out.append(m(x))
        return out


@pytest.fixture(scope="module")
def check_all(assert_matches):
    def check(cfg, outputs, how: str) -> None:
        assert len(outputs) == len(cfg.expected)
        for label, y, expected in zip(cfg.labels, outputs, cfg.expected, strict=True):
            assert_matches(y.detach().numpy() if hasattr(y, "detach") else y, expected, f"{how} {label}")

    return check


@pytest.fixture(scope="module")
def modules(adapter_configs):
    return {name: Multi([n.to_torch() for n in cfg.norms]).eval() for name, cfg in adapter_configs.items()}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_module_matches_numpy_and_survives_torch_save(adapter_configs, modules, check_all, name):
    cfg, multi = adapter_configs[name], modules[name]
    x = torch.from_numpy(cfg.x_eval)
    check_all(cfg, multi(x), "eager")
    buf = io.BytesIO()
    torch.save(multi, buf)  # the whole model, statistics included
    buf.seek(0)
    check_all(cfg, torch.load(buf, weights_only=False)(x), "torch.save/load")


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_scripted_module_matches_numpy_after_jit_save_load(adapter_configs, modules, check_all, name):
    cfg = adapter_configs[name]
    scripted = torch.jit.script(modules[name])
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    with torch.jit.optimized_execution(False):  # the graph as compiled, without the profiling passes' warm-up
        check_all(cfg, torch.jit.load(buf)(torch.from_numpy(cfg.x_eval)), "jit.script")


def graph_key(module) -> tuple:
    """What an exported graph depends on: the module's structure and constants, not its statistics."""
    if isinstance(module, Normalize):
        return ("affine", module.per, module.layout, module.n_channels, tuple(module.sample_shape))
    return ("sample", module.formula, module.per, module.layout, module.n_channels, module.divisor, module.lo,
            module.hi, module.nan_ignore)


# Exporting costs ~0.2 s per graph, so export and ONNX cover every kind of graph rather than every case:
# on MNIST (n, h, w, c) every per-sample formula (per="sample"); on every layout the three stateful graphs
# and the most involved per-sample one (Robust: sort, gather, interpolation) with per="sample-channel".
# Every stateful case then runs through its exported graph with its own statistics (its state_dict).
FULL = "mnist-nhwc"


def graphs(name: str, multi) -> dict:
    """Case indices grouped by exported graph, for the graph kinds exported on configuration ``name``."""
    groups: dict = {}
    for i, m in enumerate(multi.norms):
        key = graph_key(m)
        default_constants = key[0] == "affine" or key[6:8] in {(0.0, 1.0), (0.25, 0.75)}
        robust_here = key[1] == "robust" and (key[2] == "sample-channel" or m.ndim == 2)
        wanted = key[0] == "affine" or (default_constants and (robust_here or (name == FULL and key[2] == "sample")))
        if wanted:
            groups.setdefault(key, []).append(i)
    return groups


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_exported_program_matches_numpy(adapter_configs, modules, assert_matches, name):
    cfg, multi = adapter_configs[name], modules[name]
    x = torch.from_numpy(cfg.x_eval)
    checked = set()
    for indices in graphs(name, multi).values():
        # the exported module shares its buffers with the source: export a copy before loading others
        module = torch.export.export(copy.deepcopy(multi.norms[indices[0]]), (x,)).module()
        for i in indices:
            module.load_state_dict(multi.norms[i].state_dict())
            assert_matches(module(x).numpy(), cfg.expected[i], f"torch.export {cfg.labels[i]}")
            checked.add(cfg.labels[i].split("(per=")[1])
    assert {"'global')", "'channel')", "'feature')"} <= checked and len(checked) >= 4


def test_exported_program_takes_any_batch_size_after_save_and_load(adapter_configs, modules, assert_matches):
    cfg, multi = adapter_configs["cifar-nchw"], modules["cifar-nchw"]
    picks = [i for i, label in enumerate(cfg.labels)
             if label.endswith(("Standardize(per='channel')", "Robust(per='sample-channel')"))]
    x = torch.from_numpy(cfg.x_eval)
    program = torch.export.export(Multi([multi.norms[i] for i in picks]), (x[:7],),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    buf.seek(0)
    loaded = torch.export.load(buf).module()
    for n in (1, 16):
        for i, y in zip(picks, loaded(x[:n]), strict=True):
            assert_matches(y.numpy(), cfg.expected[i][:n], f"torch.export batch {n} {cfg.labels[i]}")


@pytest.mark.slow
def test_onnx_model_matches_numpy_in_onnxruntime(adapter_configs, modules, assert_matches):
    # one ONNX model holding the exported graph kinds of two layouts; stateful cases run through their
    # graph with their own statistics written into its initializers (named after the module's buffers)
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx import numpy_helper

    names = (FULL, "cifar-nchw")
    groups = {n: list(graphs(n, modules[n]).values()) for n in names}

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.ModuleList([modules[names[0]].norms[g[0]] for g in groups[names[0]]])
            self.b = torch.nn.ModuleList([modules[names[1]].norms[g[0]] for g in groups[names[1]]])

        def forward(self, xa, xb):
            return [m(xa) for m in self.a] + [m(xb) for m in self.b]

    inputs = tuple(torch.from_numpy(adapter_configs[n].x_eval) for n in names)
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and tracing notes
        program = torch.onnx.export(Both().eval(), tuple(x[:5] for x in inputs), dynamo=True, verbose=False,
                                    optimize=False, dynamic_shapes=({0: batch}, {0: batch}))
    base = program.model_proto
    rounds = max(len(g) for n in names for g in groups[n])
    checked = 0
    for r in range(rounds):  # round r: the r-th case of every graph
        model = onnx.ModelProto()
        model.CopyFrom(base)
        initializers = {init.name: init for init in model.graph.initializer}
        cases = []
        for prefix, n in zip("ab", names, strict=True):
            for j, g in enumerate(groups[n]):
                i = g[min(r, len(g) - 1)]
                cases.append((n, i))
                for key, value in modules[n].norms[i].state_dict().items():
                    name = f"{prefix}.{j}.{key}"
                    initializers[name].CopyFrom(numpy_helper.from_array(value.numpy(), name))
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {inp.name: x.numpy() for inp, x in zip(session.get_inputs(), inputs, strict=True)}
        for (n, i), y in zip(cases, session.run(None, feeds), strict=True):
            cfg = adapter_configs[n]
            assert_matches(y, cfg.expected[i], f"onnxruntime {cfg.labels[i]}")
            checked += 1
    assert checked >= 3 * rounds


# ---- the module's contract ---------------------------------------------------------------------


def test_statistics_are_buffers_in_the_state_dict_and_reload_into_a_fresh_module(mnist_small, assert_matches):
    x = mnist_small.transpose(0, 3, 1, 2).copy()  # (n, c, h, w), writable
    norm = normlab.Standardize(per="channel", channel_axis=1).fit(x)
    module = norm.to_torch()
    state = module.state_dict()
    assert sorted(state) == ["inv_scale", "offset"]
    assert state["inv_scale"].shape == (1, 1, 1) and state["inv_scale"].dtype == torch.float32
    np.testing.assert_allclose(state["inv_scale"].item(), 1 / norm.std_[0], rtol=1e-7)
    np.testing.assert_allclose(state["offset"].item(), -norm.mean_[0] / norm.std_[0], rtol=1e-7)

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    fresh = Normalize(np.zeros(1), np.ones(1), per="channel", channel_axis=1, ndim=4)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert_matches(fresh(torch.from_numpy(x[:16])).numpy(), norm.transform(x[:16]), "state_dict reload")
    assert fresh.to(torch.float64).inv_scale.dtype == torch.float64  # buffers follow .to(device / dtype)


def test_float_input_and_module_dtype_follow_the_model(mnist_small, assert_matches):
    x = mnist_small[:64].copy()
    xf = x.astype(np.float32) / 255
    norm = normlab.Standardize().fit(xf)
    module = norm.to_torch()
    assert_matches(module(torch.from_numpy(xf)).numpy(), norm.transform(xf), "float32 input")
    x64 = xf.astype(np.float64)
    y = module(torch.from_numpy(x64))
    assert y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), norm.transform(x64), rtol=1e-6, atol=1e-6)
    assert module.half()(torch.from_numpy(x)).dtype == torch.float16
    sample = normlab.Standardize(per="sample").fit(x).to_torch().double()
    assert sample(torch.from_numpy(x)).dtype == torch.float64
    assert isinstance(sample, SampleNormalize)


def test_module_never_modifies_its_float_input():
    x = torch.linspace(0, 1, 24, dtype=torch.float32).reshape(2, 3, 4)
    before = x.clone()
    normlab.Standardize(per="feature").fit(x.numpy()).to_torch()(x)
    assert torch.equal(x, before)


def test_nan_ignore_passes_nan_through_and_leaves_it_out_of_per_sample_statistics():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5, 4, 2)).astype(np.float32)
    x[0, 1, 2, 0] = x[3, 0, 0, 1] = np.nan
    for norm in (normlab.Standardize(per="channel", nan="ignore"), normlab.Robust(per="sample", nan="ignore"),
                 normlab.MinMax(per="sample-channel", nan="ignore")):
        expected = norm.fit(x).transform(x)
        y = norm.to_torch()(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6, err_msg=repr(norm))


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_wrong_layout_is_an_error_that_names_the_fix():
    x = np.random.default_rng(4).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    module = normlab.Standardize(per="channel").fit(x).to_torch()
    with pytest.raises(ValueError, match=r"fitted on 3 channels .* Pass data in the fitted layout"):
        module(torch.zeros(4, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"4-D data .* or one 3-D sample\. Reshape the input"):
        module(torch.zeros(8, 3, dtype=torch.uint8))
    feature = normlab.Center(per="feature").fit(x).to_torch()
    with pytest.raises(ValueError, match=r"samples of shape \[8, 8, 3\] .* Resize the input"):
        feature(torch.zeros(4, 7, 8, 3))
    scripted = torch.jit.script(module)
    with pytest.raises(torch.jit.Error, match=r"fitted on 3 channels"):
        scripted(torch.zeros(4, 3, 8, 8, dtype=torch.uint8))


def test_unfitted_normalizer_cannot_become_a_module():
    with pytest.raises(normlab.NotFittedError, match=r"Call Standardize\(\.\.\.\)\.fit\(x_train\)"):
        normlab.Standardize().to_torch()


def test_module_runs_on_long_rows_for_channel_statistics(assert_matches):
    # the statistics are expanded to one sample per row, whatever the spatial size at inference
    x = np.random.default_rng(2).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    norm = normlab.Standardize(per="channel").fit(x)
    module = norm.to_torch()
    bigger = np.random.default_rng(3).integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    assert_matches(module(torch.from_numpy(bigger)).numpy(), norm.transform(bigger), "other spatial size")
    assert_matches(module(torch.from_numpy(bigger[:0])).numpy(), norm.transform(bigger)[:0], "empty batch")


def test_global_zero_spread_fits_and_exports(mnist_small, assert_matches):
    x = mnist_small[:64].copy()
    norm = normlab.Robust(per="global")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        norm.fit(x)  # MNIST's interquartile range is 0: divided by 1, with a warning
    assert any(issubclass(w.category, normlab.errors.ZeroVarianceWarning) for w in caught)
    assert norm.scale_ == 1.0
    assert_matches(norm.to_torch()(torch.from_numpy(x)).numpy(), norm.transform(x), "Robust(per='global')")


def test_a_module_takes_one_sample_so_it_serves_as_a_dataset_transform():
    x = np.random.default_rng(5).integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)  # (n, c, h, w)
    for norm in (normlab.Standardize(channel_axis=1).fit(x), normlab.MinMax(per="sample-channel", channel_axis=1).fit(x)):
        module = norm.to_torch()
        batch = module(torch.from_numpy(x))
        one = module(torch.from_numpy(x[2]))  # (c, h, w): what a Dataset's transform receives
        assert one.shape == (3, 8, 8) and torch.equal(one, batch[2])


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_a_module_fitted_on_pixels_warns_once_when_fed_unit_scale_floats(mnist_small):
    from normlab.errors import InputScaleWarning

    x = np.moveaxis(mnist_small[:500], -1, 1).copy()  # uint8 (n, 1, 28, 28)
    module = normlab.Standardize(channel_axis=1).fit(x).to_torch()
    as_totensor = torch.from_numpy(x).float() / 255  # the ToTensor() habit
    with pytest.warns(InputScaleWarning, match=r"fitted on uint8 data in \[0, 255\].*ToTensor\(\)"):
        module(as_totensor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(as_totensor)  # once: no second warning, and no per-call cost
        fresh = normlab.Standardize(channel_axis=1).fit(x).to_torch()
        fresh(torch.from_numpy(x))  # the fitted scale: silent
    unit = normlab.Standardize(channel_axis=1).fit(x.astype(np.float32) / 255).to_torch()
    with pytest.warns(InputScaleWarning, match=r"raw pixels: divide by 255"):
        unit(torch.from_numpy(x))
    scripted = torch.jit.script(normlab.Standardize(channel_axis=1).fit(x).to_torch())
    assert scripted(as_totensor).shape == as_totensor.shape  # scripted modules skip the check
