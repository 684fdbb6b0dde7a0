"""The training loop: what each epoch records, divergence as a result, and the same numbers every time."""

from __future__ import annotations

import math

import numpy as np
import torch

from normlab.experiments.models import build_model, parse_model
from normlab.experiments.train import EPOCH_FIELDS, TrainSettings, make_optimizer, train_run


def _data(n=120, f=10, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32) * scale
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    t = [torch.from_numpy(a) for a in (x[:90], y[:90], x[90:], y[90:])]
    return tuple(t)


def _run(settings, data, init_seed=0, order_seed=0):
    torch.manual_seed(init_seed)
    model = build_model(parse_model("mlp"), (data[0].shape[1],), 3)
    return train_run(model, data, settings, order_seed)


def test_every_epoch_records_losses_accuracies_time_and_gradient_norms():
    r = _run(TrainSettings(epochs=3, batch_size=16), _data())
    assert r.status == "done" and r.reason == ""
    assert [e["epoch"] for e in r.epochs] == [1, 2, 3]
    for e in r.epochs:
        assert set(EPOCH_FIELDS) <= set(e)
        assert 0 <= e["train_acc"] <= 1 and 0 <= e["val_acc"] <= 1
        assert 0 < e["grad_norm_mean"] <= e["grad_norm_max"]
        assert e["seconds"] > 0
    assert r.epochs[-1]["train_loss"] < r.epochs[0]["train_loss"]


def test_same_seeds_give_identical_numbers_and_each_seed_matters():
    data, s = _data(), TrainSettings(epochs=2, batch_size=16)
    a, b = _run(s, data), _run(s, data)
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "grad_norm_mean", "grad_norm_max")
    assert [[e[k] for k in keys] for e in a.epochs] == [[e[k] for k in keys] for e in b.epochs]
    other_init = _run(s, data, init_seed=1)
    other_order = _run(s, data, order_seed=1)
    assert other_init.epochs[0]["train_loss"] != a.epochs[0]["train_loss"]
    assert other_order.epochs[0]["train_loss"] != a.epochs[0]["train_loss"]


def test_exploding_loss_stops_the_run_as_diverged_not_as_an_error():
    r = _run(TrainSettings(optimizer="sgd", lr=1e4, epochs=5, batch_size=8), _data(scale=1e3))
    assert r.status == "diverged"
    assert "epoch 1" in r.reason and (
        "exceeded" in r.reason or "nan" in r.reason or "inf" in r.reason
    )
    assert len(r.epochs) < 5


def test_optimizers_use_keras_defaults():
    p = [torch.nn.Parameter(torch.zeros(2))]
    adam = make_optimizer("adam", p).defaults
    assert (adam["lr"], adam["betas"], adam["eps"]) == (1e-3, (0.9, 0.999), 1e-7)
    rms = make_optimizer("rmsprop", p).defaults
    assert (rms["lr"], rms["alpha"], rms["eps"]) == (1e-3, 0.9, 1e-7)
    assert make_optimizer("sgd", p, lr=0.5).defaults["lr"] == 0.5
    assert math.isclose(TrainSettings(optimizer="sgd").learning_rate, 0.01)
