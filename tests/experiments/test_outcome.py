"""Stalled runs: the classification pinned on constructed histories, and Keras' clipped loss that causes it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from normlab.experiments.outcome import classify

torch = pytest.importorskip("torch")


def _epoch(epoch, zero=0.0, acc=0.5, grad=1.0, classes=10):
    return {"epoch": epoch, "zero_grad_frac": zero, "train_acc": acc, "grad_norm_max": grad,
            "n_pred_classes": classes}  # fmt: skip


def test_a_saturated_softmax_with_misclassified_samples_is_stalled_since_the_first_such_epoch():
    history = [_epoch(1, zero=0.4), _epoch(2, zero=0.995, acc=0.2), _epoch(3, zero=1.0, acc=0.1)]
    assert classify(history) == (
        "stalled", "softmax saturated: 100 % of samples have zero gradient at epoch 2"
    )  # fmt: skip
    history[-1]["zero_grad_frac"] = 0.9987
    assert classify(history)[1] == "softmax saturated: 99.8 % of samples have zero gradient at epoch 2"


def test_a_run_that_recovers_or_fits_its_training_set_confidently_is_done():
    recovered = [_epoch(1, zero=1.0, acc=0.1), _epoch(2, zero=0.3, acc=0.8)]
    assert classify(recovered) == ("done", "")
    fitted = [_epoch(1, zero=0.995, acc=0.999)]  # zero gradient because every sample is right
    assert classify(fitted) == ("done", "")
    assert classify([]) == ("done", "")


def test_a_vanishing_gradient_or_a_single_class_at_the_clipped_ceiling_is_stalled():
    frozen = [_epoch(1, grad=0.5), _epoch(2, grad=0.0), _epoch(3, grad=1e-9)]
    assert classify(frozen) == ("stalled", "gradient norm 1e-09 (below 1e-08) from epoch 2")
    one_class = [_epoch(1, zero=0.6, classes=1), _epoch(2, zero=0.9, classes=1)]
    status, reason = classify(one_class)
    assert status == "stalled" and reason.startswith("predicts a single class from epoch 1, with 90 %")
    assert classify([_epoch(1, zero=0.1, classes=1)]) == ("done", "")  # one class, still learning


def test_missing_measurements_never_mark_a_run_stalled():
    assert classify([{"epoch": 1, "zero_grad_frac": None, "grad_norm_max": None}]) == ("done", "")


def test_keras_probs_is_clipped_softmax_cross_entropy_with_zero_gradient_outside_the_clip():
    from normlab.experiments.losses import LOSSES

    logits = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 40.0], [0.0, 0.0, 40.0]], requires_grad=True)
    y = torch.tensor([1, 0, 2])
    loss = LOSSES["keras-probs"].reduce(logits, y, "none")
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    assert math.isclose(loss[0].item(), -math.log(p[1]), rel_tol=1e-6)
    assert math.isclose(loss[1].item(), -math.log(1e-7), rel_tol=1e-6)  # the ceiling: -ln(1e-7)
    # the top of the clip in float32: 1 - 2**-23, the float32 nearest to 1 - 1e-7
    assert loss[2].item() == pytest.approx(-math.log(float(np.float32(1 - 1e-7))), rel=1e-3)
    loss.sum().backward()
    assert logits.grad[0].abs().sum() > 0 and logits.grad[1:].abs().sum() == 0
    probs = torch.softmax(logits.detach(), 1)
    assert LOSSES["keras-probs"].zero_grad(probs, y).tolist() == [False, True, True]
    # on the logits, a wrong sample always has a gradient; only an exactly one-hot right one has none
    assert LOSSES["logits"].zero_grad(probs, y).tolist() == [False, False, True]


def test_keras_probs_on_raw_mnist_pixels_stalls_runs_that_the_logits_loss_trains(tmp_path, shared_data):
    from normlab.experiments import compare

    runs = {}
    for loss in ("keras-probs", "logits"):
        result = compare(
            f"mnist:{shared_data / 'mnist'}", methods="none", model="mlp", seeds=4, epochs=4, batch_size=64,
            limit=2000, loss=loss, workers=2, threads=1, out=tmp_path / loss, progress=False,
            write_report=False,
        )  # fmt: skip
        runs[loss] = result
    from normlab.experiments.store import open_store

    with open_store(tmp_path / "keras-probs") as store:
        last = {e["init_seed"]: e for e in store.epochs()}
    # the mechanism, measured: almost every training sample has exactly zero gradient
    assert all(e["zero_grad_frac"] > 0.95 for e in last.values())
    assert runs["keras-probs"].n_stalled >= 1 and runs["logits"].n_stalled == 0
    assert runs["logits"].summary[0]["final_val_acc_mean"] > 0.8
    assert runs["keras-probs"].summary[0]["final_val_acc_mean"] < 0.6


def test_stalled_runs_are_counted_in_summary_csv_and_explained_in_the_report(tmp_path):
    import csv

    from normlab.experiments.report import build_report
    from normlab.experiments.store import open_store
    from normlab.experiments.train import RunResult

    config = {"data": {"name": "d", "n_train": 4, "n_val": 4, "validation": "split", "sample_shape": [2],
                       "dtype": "float32", "n_classes": 2}, "models": ["mlp"], "methods": ["none"],
              "seeds": {"design": "paired", "init": [0, 1], "order": [0, 1], "pairs": [[0, 0], [1, 1]]},
              "optimizer": "adam", "lr": 0.001, "batch_size": 2, "epochs": 1}  # fmt: skip
    record = {"epoch": 1, "train_loss": 14.5, "train_acc": 0.1, "val_loss": 14.5, "val_acc": 0.1,
              "seconds": 0.1, "grad_norm_mean": 0.0, "grad_norm_max": 0.0, "zero_grad_frac": 1.0,
              "saturated_frac": 1.0, "n_pred_classes": 1}  # fmt: skip
    with open_store(tmp_path, config, "h") as store:
        for k, (status, reason) in enumerate([("stalled", "softmax saturated: 100 % ..."), ("done", "")]):
            task = {"model": "mlp", "method": "none", "init_seed": k, "order_seed": k}
            store.add_run(f"mlp|none|init={k}|order={k}", task, RunResult(status, [record], reason))
        built = build_report(store, tmp_path)
    row = next(csv.DictReader((tmp_path / "summary.csv").read_text().splitlines()))
    assert (row["n_runs"], row["n_diverged"], row["n_stalled"]) == ("2", "0", "1")
    assert float(row["final_val_acc_mean"]) == pytest.approx(0.1)  # a stalled run keeps its accuracy
    page = built["report"].read_text()
    assert "1 of 2 runs stalled (softmax saturated: 100 % ...)" in page and 'tr class="stalled"' in page


def test_a_run_folder_written_before_the_stall_fields_gets_their_columns_and_keeps_its_epochs(tmp_path):
    import sqlite3

    from normlab.experiments.store import ResultStore
    from normlab.experiments.train import RunResult

    old = sqlite3.connect(tmp_path / "results.sqlite")
    old.execute("CREATE TABLE epochs (run_key TEXT NOT NULL, epoch INTEGER NOT NULL, train_loss REAL, "
                "PRIMARY KEY (run_key, epoch))")  # fmt: skip
    old.execute("INSERT INTO epochs VALUES ('old', 1, 0.5)")
    old.commit()
    old.close()
    store = ResultStore(tmp_path / "results.sqlite")
    try:
        record = {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5,
                  "seconds": 0.1, "grad_norm_mean": 1.0, "grad_norm_max": 1.0, "zero_grad_frac": 0.25,
                  "saturated_frac": 0.5, "n_pred_classes": 3}  # fmt: skip
        task = {"model": "mlp", "method": "none", "init_seed": 0, "order_seed": 0}
        store.add_run("new", task, RunResult("done", [record]))
        rows = dict(store.conn.execute("SELECT run_key, zero_grad_frac FROM epochs").fetchall())
    finally:
        store.close()
    assert rows == {"old": None, "new": 0.25}
