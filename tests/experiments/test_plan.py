"""The plan of a comparison: run identities pinned across versions, frozen tasks, one check per parameter.

The pinned values were computed by ``normlab.compare`` before the plan became a module of its own: a
run folder written then must resume now, so the same configuration must give the same hash and keys.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from normlab.experiments import CompareError
from normlab.experiments.plan import Task, plan

DEFAULT_KEYS = [
    f"mlp|{method}|init={k}|order={k}"
    for k in range(5)
    for method in ("none", "max", "standardize", "l2-axis1", "batchnorm-all")
]


def test_the_default_comparison_keeps_its_run_identity():
    # what `normlab compare` and `make demo` run: existing run folders of it resume
    sweep = plan(workers=1, threads=1)
    assert sweep.config_hash == "1262e4570f38bd16"
    assert sweep.rundir == Path("runs") / "digits-mlp-1262e457"
    assert [t.key for t in sweep.tasks] == DEFAULT_KEYS
    assert sweep.config["data"]["fingerprint"] == "819fa17ddf7ae2eb8ad0d605"


def test_a_factorial_design_with_every_setting_keeps_its_run_identity():
    sweep = plan(
        "breast-cancer", methods="none,standardize+batchnorm-all,robust", model="logreg,mlp",
        init_seeds=2, order_seeds=3, seed=7, optimizer="sgd", lr=0.05, batch_size=16, epochs=3,
        validation_split=0.3, limit=200,
    )  # fmt: skip
    assert sweep.config_hash == "af02784085b42489"
    assert sweep.rundir == Path("runs") / "breast-cancer-logreg-mlp-af027840"
    keys = sorted(t.key for t in sweep.tasks)
    assert len(keys) == 36 and keys[:3] == [
        "logreg|none|init=7|order=7",
        "logreg|none|init=7|order=8",
        "logreg|none|init=7|order=9",
    ]


def test_a_preset_keeps_its_run_identity():
    sweep = plan(preset="tabular-logreg")
    assert sweep.config_hash == "897c96d5e223c951"
    assert sweep.rundir == Path("runs") / "breast-cancer-logreg-897c96d5"
    assert len(sweep.tasks) == 20


def test_a_task_crosses_to_a_worker_and_back_unchanged(tmp_path):
    sweep = plan("digits", methods="none,standardize+batchnorm-all", model="logreg", seeds=2,
                 epochs=1, limit=120, out=tmp_path / "run")  # fmt: skip
    for task in sweep.tasks:
        payload = task.to_dict()
        assert payload["key"] == task.key
        assert Task.from_dict(payload) == task
    assert {t.batchnorm_all for t in sweep.tasks} == {False, True}
    assert all(Path(f).is_absolute() and Path(f).parent == tmp_path / "run" / ".cache"
               for t in sweep.tasks for f in t.files)  # fmt: skip


def test_the_plan_is_frozen():
    sweep = plan("digits", methods="none", model="logreg", seeds=1, epochs=1, limit=120)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.tasks[0].init_seed = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.baseline = "max"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"seeds": 0}, "seeds=0 is not a positive count; expected e.g. seeds=5."),
        ({"seeds": None, "init_seeds": True}, "init_seeds=True is not a positive count"),
        ({"epochs": 2.5}, "epochs=2.5 is not a positive integer; expected e.g. epochs=32."),
        ({"batch_size": -1}, "batch_size=-1 is not a positive integer; expected e.g. batch_size=32."),
        ({"workers": 0}, "workers=0 is not a positive integer; expected e.g. workers=2."),
        ({"threads": "2"}, "threads='2' is not a positive integer; expected e.g. threads=1."),
        ({"lr": float("inf")}, "lr=inf is not a positive learning rate; expected e.g. 0.001."),
        ({"lr": "fast"}, "lr='fast' is not a positive learning rate; expected e.g. 0.001."),
        # beyond what a machine can run: refused with the limit before anything is allocated
        ({"seeds": 10**9}, "seeds=1000000000 is above the limit of 10,000 seeds of one kind; expected 1 to 10,000"),
        ({"seeds": None, "init_seeds": 5000, "order_seeds": 5000}, "makes 25,000,000 seed pairs, above the limit of 100,000 runs"),
        ({"seeds": 10_000, "methods": "none,scale,max,center,standardize,robust,batchnorm-input,batchnorm-all,"
          "standardize+batchnorm-all,robust+batchnorm-all,scale+batchnorm-input"},
         "10,000 seed pairs × 11 (model, method) combinations make 110,000 runs, above the limit of 100,000"),
        ({"seed": -5}, "seed=-5 is not a non-negative integer; expected e.g. seed=0."),
        ({"seed": "0"}, "seed='0' is not a non-negative integer"),
        ({"seed": 2**63 - 1, "seeds": 2}, "makes seeds up to 9223372036854775808, above 9223372036854775807"),
        ({"threads": 100000}, "threads=100000 is above the limit of 256 PyTorch threads per worker"),
        ({"workers": 10**8}, "workers=100000000 is above the limit of "),
        ({"data_options": {"resize": (100000, 100000)}}, "resize=100000 is above the limit of 8,192 pixels per side"),
    ],
)
def test_every_count_is_checked_before_any_work(given, message):
    args = {"methods": "none", "model": "logreg", "seeds": 1, "epochs": 1, **given}
    with pytest.raises(CompareError, match=re.escape(message)):
        plan(data=object(), **args)  # a wrong count is reported before the data is opened


def test_the_rows_lstm_preset_plans_five_inits_by_five_orders_for_a_keras_lstm_and_dense_model(shared_data):
    mnist = shared_data / "mnist"
    sweep = plan(f"mnist:{mnist}", preset="rows-lstm", limit=100, workers=1)
    assert sweep.config["seeds"]["design"] == "factorial" and len(sweep.config["seeds"]["pairs"]) == 25
    assert sweep.config["engines"] == ["keras", "keras"] and sweep.config["loss"] == "keras-probs"
    assert len(sweep.tasks) == 25 * 2 * 3 and {t.engine for t in sweep.tasks} == {"keras"}
    # an explicit --seeds replaces the preset's design
    assert plan(f"mnist:{mnist}", preset="rows-lstm", limit=100, seeds=2).config["seeds"]["design"] == "paired"


def test_the_spread_finding_names_both_models_and_the_brown_forsythe_p_value():
    from normlab.experiments.report import spread_findings

    finals = {("lstm", "scale"): [(0.80, "done"), (0.95, "done"), (0.70, "stalled"), (0.99, "done")],
              ("mlp", "scale"): [(0.90, "done"), (0.91, "done"), (0.89, "done"), (0.90, "diverged")]}  # fmt: skip
    (line,) = spread_findings(finals, ["mlp", "lstm"], ["scale"])
    assert "0.1344 (std) with lstm against 0.0100 with mlp" in line and "p = 0.014; 4 and 3 runs" in line
