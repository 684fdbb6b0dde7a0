"""The Keras engine: a user's keras.Model (compiled or not) and the built-ins trained by Keras' model.fit."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
pytest.importorskip("keras")
pytest.importorskip("torch")

from normlab.cli.main import main
from normlab.experiments import compare
from normlab.experiments.store import open_store

UNCOMPILED = textwrap.dedent("""
    import keras

    def build(input_shape, n_classes, batchnorm=False):
        layers = [keras.Input(input_shape), keras.layers.Dense(32)]
        if batchnorm:
            layers.append(keras.layers.BatchNormalization())
        return keras.Sequential(layers + [keras.layers.Activation("relu"),
                                          keras.layers.Dense(n_classes, activation="softmax")])
""")

# the user's optimizer is kept: a learning rate of 0 never moves the weights
COMPILED = textwrap.dedent("""
    import keras

    def build(input_shape, n_classes):
        model = keras.Sequential([keras.Input(input_shape), keras.layers.Dense(n_classes)])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model
""")

KEEP = ("train_loss", "train_acc", "val_loss", "val_acc", "grad_norm_max", "zero_grad_frac",
        "saturated_frac", "n_pred_classes")  # fmt: skip


@pytest.fixture(scope="module")
def builders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_models")
    (folder / "uncompiled.py").write_text(UNCOMPILED)
    (folder / "compiled.py").write_text(COMPILED)
    return folder


def _epochs(rundir):
    with open_store(rundir) as store:
        return [{k: e[k] for k in ("model", "method", "init_seed", "epoch", *KEEP)} for e in store.epochs()]


def _sweep(builders, out, tiny_digits, methods="none,standardize,batchnorm-input,batchnorm-all"):
    return compare(tiny_digits(1000), methods=methods, model=f"{builders / 'uncompiled.py'}:build", seeds=2,
                   epochs=3, batch_size=32, workers=1, threads=1, out=out, progress=False)  # fmt: skip


def test_an_uncompiled_keras_builder_trains_with_keras_under_every_method_the_same_numbers_twice(
    builders, tmp_path, tiny_digits
):
    first = _sweep(builders, tmp_path / "a", tiny_digits)
    assert first.n_finished == 8 and first.n_diverged == 0
    assert all(r["final_val_acc_mean"] > 0.3 for r in first.summary), first.table()  # chance: 0.1
    settings = json.loads((tmp_path / "a" / "config.json").read_text())["settings"]
    assert "keras" in settings["versions"]
    again = _sweep(builders, tmp_path / "b", tiny_digits)
    assert _epochs(again.rundir) == _epochs(first.rundir)
    other_seed = [e for e in _epochs(first.rundir) if e["init_seed"] == 1]
    assert other_seed[0]["train_loss"] != _epochs(first.rundir)[0]["train_loss"]


def test_a_compiled_keras_builder_keeps_its_own_optimizer_and_loss(builders, tmp_path, tiny_digits):
    result = compare(tiny_digits(), methods="none", model=f"{builders / 'compiled.py'}:build", seeds=1,
                     epochs=2, workers=1, threads=1, out=tmp_path / "c", progress=False)  # fmt: skip
    one, two = _epochs(result.rundir)
    assert one["val_loss"] == two["val_loss"] and one["val_acc"] == two["val_acc"]  # learning rate 0
    assert one["grad_norm_max"] > 0  # there was a gradient: only the user's optimizer ignored it


def test_the_cli_trains_builtin_models_with_keras_and_a_keras_builder_beside_a_torch_one(
    builders, tmp_path, capsys, user_model
):
    argv = ["compare", "--data", "digits", "--limit", "300", "--validation-split", "0.25",
            "--methods", "none,max", "--seeds", "1", "--epochs", "2", "--workers", "1",
            "--threads", "1", "--quiet"]  # fmt: skip
    assert main([*argv, "--model", "mlp", "--engine", "keras", "--out", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    assert "report:" in out
    config = json.loads((tmp_path / "k" / "config.json").read_text())["identity"]
    assert config["engines"] == ["keras"] and config["loss"] == "keras-probs"
    both = f"{builders / 'uncompiled.py'}:build,{user_model}:build"
    assert main([*argv, "--model", both, "--out", str(tmp_path / "mixed")]) == 0
    config = json.loads((tmp_path / "mixed" / "config.json").read_text())["identity"]
    assert config["engines"] == ["keras", "torch"]


def _run_devices(rundir):
    import sqlite3

    con = sqlite3.connect(f"file:{rundir / 'results.sqlite'}?mode=ro", uri=True)
    try:
        return [row[0] for row in con.execute("SELECT device FROM runs")]
    finally:
        con.close()


@pytest.mark.parametrize("model", ["mlp", "uncompiled"])
def test_the_keras_engine_trains_on_the_sweeps_device_not_keras_default(builders, tmp_path, tiny_digits, model):
    # Keras 3 on torch puts tensors on its default device (a GPU whenever torch sees one); an outer
    # keras.device("meta") stands in for that default here, and device="cpu" must win over it.
    import keras

    spec = "mlp" if model == "mlp" else f"{builders / 'uncompiled.py'}:build"
    with keras.device("meta"):
        result = compare(tiny_digits(300), methods="none,batchnorm-input", model=spec, engine="keras",
                         device="cpu", seeds=1, epochs=1, workers=1, threads=1, out=tmp_path / model,
                         progress=False, write_report=False)  # fmt: skip
    assert result.n_finished == 2
    assert _run_devices(result.rundir) == ["cpu", "cpu"]  # the device the weights were on
    assert all(0.0 < e["val_acc"] <= 1.0 for e in _epochs(result.rundir))  # real numbers, not meta tensors


LOGITS_OUT = textwrap.dedent("""
    import keras

    def build(input_shape, n_classes):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(32, activation="relu"),
                                 keras.layers.Dense(n_classes)])
""")


@pytest.mark.parametrize(
    ("builder", "loss", "fix"),
    [
        ("compiled.py", "logits", "Drop --loss to train with the model's compile(), or return the model uncompiled"),
        ("compiled.py", "keras-probs", "Drop --loss to train with the model's compile()"),
        ("uncompiled.py", "logits", "Remove the softmax, or use --loss keras-probs (or drop --loss)"),
        ("logits_out.py", "keras-probs", "Add it, or use --loss logits (or drop --loss)"),
    ],
)
def test_an_explicit_loss_a_keras_builder_cannot_train_with_is_refused_before_the_sweep(
    builders, tmp_path, tiny_digits, builder, loss, fix
):
    from normlab.experiments import CompareError

    (builders / "logits_out.py").write_text(LOGITS_OUT)
    with pytest.raises(CompareError, match=r"expected .*" + fix.replace("(", r"\(").replace(")", r"\)")):
        compare(tiny_digits(100), methods="none", model=f"{builders / builder}:build", loss=loss, seeds=1,
                epochs=1, workers=1, threads=1, out=tmp_path / "run", progress=False)  # fmt: skip
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("builder", "loss", "from_logits"), [("uncompiled.py", "keras-probs", False),
                                                              ("logits_out.py", "logits", True)])  # fmt: skip
def test_an_uncompiled_keras_builder_with_the_matching_loss_gets_from_logits_from_its_output_activation(
    builders, builder, loss, from_logits
):
    import keras

    from normlab.experiments.keras_models import build_keras_model
    from normlab.experiments.models import parse_model

    (builders / "logits_out.py").write_text(LOGITS_OUT)
    spec = parse_model(f"{builders / builder}:build")
    for given in (True, False):  # the same model whether the loss was asked for or is the default
        model = build_keras_model(spec, (64,), 10, batchnorm_input=False, batchnorm_all=False, loss=loss,
                                  optimizer="adam", lr=1e-3, loss_given=given)  # fmt: skip
        assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
        assert model.loss.get_config()["from_logits"] is from_logits


@pytest.mark.parametrize("name", ["logreg", "mlp", "lenet"])
def test_builtin_keras_models_have_a_softmax_head_for_keras_probs_and_a_linear_one_with_from_logits_for_logits(
    name,
):
    import keras

    from normlab.experiments.keras_models import build_keras_model, softmax_output
    from normlab.experiments.models import parse_model

    def build(loss):
        return build_keras_model(parse_model(name), (28, 28, 1), 10, batchnorm_input=False, batchnorm_all=False,
                                 loss=loss, optimizer="adam", lr=1e-3, loss_given=True)  # fmt: skip

    probs, logits = build("keras-probs"), build("logits")
    assert softmax_output(probs) and probs.loss == "categorical_crossentropy"
    assert not softmax_output(logits) and logits.layers[-1].activation is keras.activations.linear
    assert isinstance(logits.loss, keras.losses.CategoricalCrossentropy)
    assert logits.loss.get_config()["from_logits"] is True


def test_keras_weights_depend_on_the_init_seed_alone_while_other_threads_draw_from_random():
    """Keras draws the seeds of unseeded initializers from Python's process-wide ``random``; in a Dask
    worker the worker's own threads draw from it too. Under keras_seeded the weights are those of a quiet
    process however busy the other threads are (without it, they changed with the other threads' timing)."""
    import random
    import threading

    import numpy as np

    pytest.importorskip("keras")
    from normlab.experiments.engines import _keras_model
    from normlab.experiments.keras_models import keras_seeded
    from normlab.experiments.models import parse_model
    from normlab.experiments.train import TrainSettings

    settings = TrainSettings(loss="keras-probs")

    def weights() -> list[np.ndarray]:
        with keras_seeded(3):
            model = _keras_model(parse_model("mlp"), (8, 8, 1), 10, True, False, settings)
        return [np.array(w.numpy()) for w in model.weights]

    quiet = weights()
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            random.random()

    others = [threading.Thread(target=busy) for _ in range(2)]
    for t in others:
        t.start()
    try:
        noisy = [weights() for _ in range(5)]
    finally:
        stop.set()
        for t in others:
            t.join()
    for got in noisy:
        assert all(np.array_equal(a, b) for a, b in zip(got, quiet, strict=True))
