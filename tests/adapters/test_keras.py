"""normalizer.to_keras(), from_keras() and fitting from a PyDataset, on the torch backend (KERAS_BACKEND=torch)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import normlab  # noqa: E402
import normlab.keras as nk  # noqa: E402
from normlab.errors import DataTypeError, LayoutError, NormlabError, NotFittedError  # noqa: E402

CONFIG_NAMES = ("mnist-nhwc", "mnist-nchw", "mnist-flat", "cifar-nhwc", "cifar-nchw")  # tests/adapters/conftest.py


def numpy(y):
    return keras.ops.convert_to_numpy(y)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_layers_match_numpy_before_and_after_a_keras_save_and_load(adapter_configs, assert_matches, tmp_path, name):
    # one functional model holding every case's layer, saved as .keras and loaded back
    cfg = adapter_configs[name]
    layers = [n.to_keras() for n in cfg.norms]
    inputs = keras.Input(cfg.x_eval.shape[1:], dtype="uint8")
    model = keras.Model(inputs, [layer(inputs) for layer in layers])
    for label, y, expected in zip(cfg.labels, model(cfg.x_eval), cfg.expected, strict=True):
        assert_matches(numpy(y), expected, f"keras {label}")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for label, y, expected in zip(cfg.labels, loaded(cfg.x_eval), cfg.expected, strict=True):
        assert_matches(numpy(y), expected, f"keras save/load {label}")


def test_builtin_layers_are_used_where_they_are_exact(mnist_small):
    x = mnist_small[:200]
    assert isinstance(normlab.Scale().fit(x).to_keras(), keras.layers.Rescaling)
    assert isinstance(normlab.Identity(per="feature").fit(x).to_keras(), keras.layers.Rescaling)
    layer = normlab.Standardize(per="channel").fit(x).to_keras()
    assert isinstance(layer, keras.layers.Normalization) and layer.axis == (3,)
    nchw = normlab.Center(per="channel", channel_axis=1).fit(x.transpose(0, 3, 1, 2)).to_keras()
    assert isinstance(nchw, keras.layers.Normalization) and nchw.axis == (1,)
    assert normlab.Standardize(per="global").fit(x).to_keras().axis == ()
    assert isinstance(normlab.MinMax(per="global").fit(x).to_keras(), keras.layers.Rescaling)  # min 0: x / 255
    assert isinstance(normlab.Standardize(per="sample").fit(x).to_keras(), nk.SampleNormalize)


def test_scales_too_small_for_keras_normalization_use_the_normlab_layer(assert_matches, tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 3)) * [1e-9, 1.0, 1e21]).astype(np.float64)  # Keras' epsilon is 1e-7
    norm = normlab.Standardize().fit(x)
    layer = norm.to_keras()
    assert isinstance(layer, nk.Normalize)
    expected = norm.transform(x).astype(np.float32)
    np.testing.assert_allclose(numpy(layer(x)), expected, rtol=1e-6, atol=1e-6)
    model = keras.Sequential([keras.Input((3,)), layer])
    model.save(tmp_path / "tiny.keras")
    y = keras.saving.load_model(tmp_path / "tiny.keras").predict(x, verbose=0)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_wrong_layout_is_an_error_that_names_the_fix():
    x = np.random.default_rng(1).integers(0, 256, (8, 5, 5, 3), dtype=np.uint8)
    layer = normlab.Standardize(per="sample-channel").fit(x).to_keras()
    with pytest.raises(LayoutError, match=r"fitted on 3 channels .* Pass data in the fitted layout"):
        layer(x.transpose(0, 3, 1, 2))
    with pytest.raises(LayoutError, match=r"Reshape the input to the layout used in fit"):
        layer(x[:, :, :, 0])


# ---- from_keras ------------------------------------------------------------------------------------


def test_from_keras_reads_an_adapted_normalization_layer(mnist_small):
    x = mnist_small[:500].astype(np.float32) / 255
    layer = keras.layers.Normalization(axis=-1)
    layer.adapt(x)
    norm = nk.from_keras(layer)
    assert norm.per_ == "channel" and norm.layout_.describe() == "(n, h, w, c)"
    exact = normlab.Standardize().fit(x)
    np.testing.assert_allclose(norm.mean_, exact.mean_, rtol=1e-6)
    np.testing.assert_allclose(norm.std_, exact.std_, rtol=1e-5)
    np.testing.assert_allclose(norm.transform(x), numpy(layer(x)), rtol=1e-5, atol=1e-5)
    # and on to PyTorch: the statistics Keras adapted now travel inside a torch model
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(norm.to_torch()(torch.from_numpy(x)).numpy(), numpy(layer(x)), rtol=1e-5, atol=1e-5)


def test_from_keras_maps_the_kept_axes_to_per():
    x = np.random.default_rng(2).normal(size=(20, 4, 3)).astype(np.float32)
    for axis, per, channel_axis in ((None, "global", -1), ((1, 2), "feature", -1), (1, "channel", 1)):
        layer = keras.layers.Normalization(axis=axis)
        layer.adapt(x)
        norm = nk.from_keras(layer)
        assert (norm.per_, norm.channel_axis) == (per, channel_axis)
        np.testing.assert_allclose(norm.transform(x), numpy(layer(x)), rtol=1e-5, atol=1e-5)
    built = keras.layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0])
    built.build((None, 2))
    np.testing.assert_allclose(nk.from_keras(built).std_, [2.0, 3.0])


def test_from_keras_refuses_what_it_cannot_express():
    with pytest.raises(NotFittedError, match=r"Call layer\.adapt\(x_train\)"):
        nk.from_keras(keras.layers.Normalization())
    inverted = keras.layers.Normalization(invert=True, mean=0.0, variance=1.0)
    inverted.build((None, 3))
    with pytest.raises(NormlabError, match=r"expected invert=False"):
        nk.from_keras(inverted)
    odd = keras.layers.Normalization(axis=(1, 2))
    odd.adapt(np.zeros((4, 2, 3, 5), np.float32) + np.arange(5, dtype=np.float32))
    with pytest.raises(LayoutError, match=r"Adapt a layer with one of those axes"):
        nk.from_keras(odd)
    with pytest.raises(NormlabError, match=r"expected a keras\.layers\.Normalization"):
        nk.from_keras(keras.layers.Dense(3))


# ---- fitting from a PyDataset ----------------------------------------------------------------------


class Batches(keras.utils.PyDataset):
    """(x, y) batches of ``batch_size`` from arrays; the last one is smaller."""

    def __init__(self, x, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.batch_size = x, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        xb = self.x[i * self.batch_size : (i + 1) * self.batch_size]
        return xb, np.zeros(len(xb))


def test_fit_on_a_pydataset_gives_the_statistics_of_the_concatenated_data(mnist_small):
    x = mnist_small[:999]
    streamed = normlab.Standardize().fit(Batches(x, batch_size=64))
    whole = normlab.Standardize().fit(x)
    assert streamed.n_samples_seen_ == 999
    np.testing.assert_array_equal(streamed.mean_, whole.mean_)
    np.testing.assert_array_equal(streamed.var_, whole.var_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", normlab.errors.ZeroVarianceWarning)  # MNIST's constant border pixels
        robust = normlab.Robust(per="feature").fit(Batches(x.reshape(999, -1), batch_size=100))
        np.testing.assert_array_equal(robust.median_, normlab.Robust(per="feature").fit(x.reshape(999, -1)).median_)


def test_an_endless_pydataset_is_refused():
    class Endless(keras.utils.PyDataset):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, i):
            if i >= 100:  # a reader that does not check would never stop: fail fast instead
                raise RuntimeError("read 100 batches of an endless PyDataset")
            return np.zeros((2, 3))

    with pytest.raises(DataTypeError, match=r"Define __len__ or num_batches"):
        normlab.Standardize().fit(Endless())


# ---- the input-scale guard -------------------------------------------------------------------------

def _normalize_layer(norm):
    """normlab's own layer (what to_keras() picks for scales Keras' epsilon would change), made directly."""
    return nk.Normalize(norm.center_, norm.scale_, per="channel", ndim=4, fit_range=norm.input_range_,
                        fit_dtype=str(norm.fit_dtype_))


#: Each layer to_keras() returns for stateful modes (Keras' Normalization and Rescaling with the guard,
#: normlab's Normalize), from a normalizer fitted on 0-255 pixels.
GUARDED = (
    ("Normalization", lambda norm: norm.to_keras(), lambda: normlab.Standardize(per="channel")),
    ("Rescaling", lambda norm: norm.to_keras(), lambda: normlab.Scale()),
    ("Normalize", _normalize_layer, lambda: normlab.Standardize(per="channel")),
)


def _scale_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught if issubclass(w.category, normlab.errors.InputScaleWarning)]


@pytest.mark.parametrize("kind, export, make", GUARDED, ids=[g[0] for g in GUARDED])
def test_a_layer_fitted_on_pixels_warns_once_for_unit_scale_floats_and_never_for_pixels(mnist_small, kind, export,
                                                                                         make):
    x = mnist_small[:500]  # uint8 (n, 28, 28, 1) in [0, 255]
    norm = make().fit(x)
    layer = export(norm)
    assert type(layer).__name__ == kind and layer.fit_range == norm.input_range_ == (0.0, 255.0)
    unit = mnist_small[:64].astype(np.float32) / 255  # the ToTensor() habit
    messages = _scale_warnings(lambda: [layer(unit) for _ in range(3)])
    assert len(messages) == 1, messages  # once, however many calls
    assert f"layer {layer.name!r} was fitted on uint8 data in [0, 255]" in messages[0] and "ToTensor()" in messages[0]
    np.testing.assert_allclose(numpy(layer(unit)), norm.transform(unit), rtol=1e-5, atol=1e-5)  # still computes
    fresh = export(norm)
    assert _scale_warnings(lambda: [fresh(x[:64]) for _ in range(2)]) == []  # the fitted scale: silent


def test_a_layer_fitted_on_unit_floats_warns_for_raw_integer_pixels(mnist_small):
    unit = mnist_small[:500].astype(np.float32) / 255
    for norm in (normlab.Standardize().fit(unit), normlab.Identity().fit(unit)):
        layer = norm.to_keras()
        messages = _scale_warnings(lambda layer=layer: layer(mnist_small[:32]))
        assert len(messages) == 1 and "raw pixels: divide by 255" in messages[0]
        fresh = norm.to_keras()
        assert _scale_warnings(lambda fresh=fresh: fresh(unit[:32])) == []


def test_the_guard_keeps_keras_numbers_and_skips_symbolic_calls(mnist_small):
    x = mnist_small[:300]
    layer = normlab.Standardize(per="channel").fit(x).to_keras()
    inputs = keras.Input((28, 28, 1))  # float32: building the model must not consume the one check
    model = keras.Model(inputs, layer(inputs))
    assert layer._scale_checked is False
    own = keras.layers.Normalization(axis=-1, mean=numpy(layer.adapt_mean), variance=numpy(layer.adapt_variance))
    own.build((None, 28, 28, 1))  # Keras' own layer with the same statistics
    np.testing.assert_array_equal(numpy(model(x)), numpy(own(x)))  # the same call, bit for bit
    rescale = normlab.Scale().fit(x).to_keras()
    np.testing.assert_array_equal(numpy(rescale(x)), numpy(keras.layers.Rescaling(1 / 255)(x)))


def test_a_saved_model_keeps_the_guard_and_predict_warns_once(mnist_small, tmp_path):
    x = mnist_small[:500]
    norm = normlab.Standardize(per="channel").fit(x)
    model = keras.Sequential([keras.Input((28, 28, 1)), norm.to_keras(), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    train = lambda: model.fit(x[:100], np.zeros(100), epochs=1, batch_size=50, verbose=0)  # noqa: E731
    assert _scale_warnings(train) == []  # raw pixels, the fitted scale: trains, silent
    model.save(tmp_path / "guarded.keras")
    config = model.layers[0].get_config()
    assert config["fit_range"] == [0.0, 255.0] and config["fit_dtype"] == "uint8"
    loaded = keras.saving.load_model(tmp_path / "guarded.keras")
    guard = loaded.layers[0]
    assert isinstance(guard, nk.Normalization) and guard.fit_range == (0.0, 255.0)
    unit = x[:200].astype(np.float32) / 255
    messages = _scale_warnings(lambda: [loaded.predict(unit, batch_size=50, verbose=0) for _ in range(2)])
    assert len(messages) == 1 and "ToTensor()" in messages[0]  # the compiled predict() path, four batches
    # the same model from before the guard: Keras' own layer, and normlab's Normalize without fit_range
    old = {k: v for k, v in nk.Normalize(np.zeros(1), np.ones(1), ndim=2).get_config().items()
           if k not in ("fit_range", "fit_dtype")}
    restored = nk.Normalize.from_config(old)
    assert restored.fit_range is None and _scale_warnings(lambda: restored(unit.reshape(200, -1)[:, :1])) == []


def test_from_keras_keeps_the_fitted_range_of_a_guarded_layer(mnist_small):
    norm = normlab.Standardize(per="channel").fit(mnist_small[:300])
    back = nk.from_keras(norm.to_keras())
    assert back.input_range_ == (0.0, 255.0) and back.fit_dtype_ == np.uint8
    np.testing.assert_allclose(back.mean_, norm.mean_, rtol=1e-6)
