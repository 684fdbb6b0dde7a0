"""End to end: a small real sweep writes every file, resumes to a no-op, refuses another configuration,
reproduces its numbers in worker processes, and escapes user-provided names in the report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from normlab.experiments import CompareError, compare, report
from normlab.experiments.report import SUMMARY_COLUMNS


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sweep_writes_the_run_folder(sweep):
    d = sweep.rundir
    for name in (
        "results.sqlite",
        "report.html",
        "curves.png",
        "final.png",
        "summary.csv",
        "epochs.csv",
        "config.json",
    ):
        assert (d / name).is_file(), name
    assert not (d / ".cache").exists()
    assert (d / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = _read_csv(d / "summary.csv")
    assert list(summary[0]) == list(SUMMARY_COLUMNS)
    assert [(r["model"], r["method"]) for r in summary] == [
        (m, meth)
        for m in ("net<img src=x onerror=alert(1)>.py:build", "logreg")
        for meth in ("none", "standardize", "standardize+batchnorm-all")
    ]
    assert all(r["n_runs"] == "2" for r in summary)
    epochs = _read_csv(d / "epochs.csv")
    assert len(epochs) == 2 * 3 * 2 * 2  # models × methods × seeds × epochs
    assert {r["epoch"] for r in epochs} == {"1", "2"}
    assert all(0 <= float(r["val_acc"]) <= 1 for r in epochs)
    config = json.loads((d / "config.json").read_text())
    assert (
        config["identity"]["data"]["n_train"] == 225 and config["identity"]["data"]["n_val"] == 75
    )
    assert config["identity"]["seeds"]["pairs"] == [[0, 0], [1, 1]]


def test_summary_rows_match_the_epochs(sweep):
    epochs = _read_csv(sweep.rundir / "epochs.csv")
    for row in sweep.summary:
        finals = [
            float(e["val_acc"])
            for e in epochs
            if e["model"] == row["model"] and e["method"] == row["method"] and e["epoch"] == "2"
        ]
        assert row["final_val_acc_mean"] == pytest.approx(sum(finals) / len(finals))
        assert row["ci_low"] <= row["final_val_acc_mean"] <= row["ci_high"]
        assert row["baseline"] == "none"
        assert math.isnan(row["t_p"]) == (row["method"] == "none")


def test_same_command_again_trains_nothing(sweep, run_sweep):
    again = run_sweep(sweep.rundir)
    assert again.ran == [] and again.n_skipped == 12 and again.n_finished == 12
    assert [r["final_val_acc_mean"] for r in again.summary] == [
        r["final_val_acc_mean"] for r in sweep.summary
    ]


def test_another_configuration_in_the_same_folder_is_refused(sweep, run_sweep):
    with pytest.raises(
        CompareError, match=r"differs in epochs: 2 → 3.*Choose another --out folder"
    ):
        run_sweep(sweep.rundir, epochs=3)


def test_same_configuration_reproduces_the_same_numbers_in_worker_processes(
    sweep, run_sweep, tmp_path
):
    # a run's numbers depend on its identity only: the same runs, alone in another folder, trained by
    # spawned worker processes, give bit-identical records
    subset = run_sweep(
        tmp_path / "b", workers=2, methods="standardize+batchnorm-all", model=["logreg"]
    )
    assert len(subset.ran) == 2

    def numbers(d):
        return [
            {k: v for k, v in r.items() if k != "seconds"}
            for r in _read_csv(d / "epochs.csv")
            if r["model"] == "logreg" and r["method"] == "standardize+batchnorm-all"
        ]

    assert len(numbers(subset.rundir)) == 4
    assert numbers(subset.rundir) == numbers(sweep.rundir)


def test_user_provided_names_are_escaped_in_the_html(sweep):
    page = (sweep.rundir / "report.html").read_text()
    assert "<img src=x" not in page
    assert "net&lt;img src=x onerror=alert(1)&gt;.py:build" in page
    assert "<b>&</b>" not in page and "digits &lt;b&gt;&amp;&lt;/b&gt; &#x27;q&#x27;" in page
    assert "http://" not in page and "https://" not in page


def test_report_rebuilds_the_files(sweep):
    d = sweep.rundir
    before = (d / "summary.csv").read_text()
    for name in ("summary.csv", "report.html", "curves.png", "final.png"):
        (d / name).unlink()
    rebuilt = report(d)
    assert (d / "summary.csv").read_text() == before
    assert rebuilt.report_path.is_file() and (d / "final.png").is_file()
    with pytest.raises(CompareError, match="expected one of them"):
        report(d, baseline="robust")
    with pytest.raises(CompareError, match="not a comparison run folder"):
        report(d / "nothing-here")


def test_configuration_errors_are_raised_before_training(tmp_path):
    with pytest.raises(CompareError, match="baseline 'max' is not among the methods"):
        compare("digits", methods="none,center", baseline="max", out=tmp_path / "x", progress=False)
    with pytest.raises(CompareError, match="expected one design"):
        compare("digits", seeds=2, init_seeds=2, out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_factorial_seeds_cover_every_combination(tmp_path, tiny_digits):
    r = compare(
        tiny_digits(120),
        methods="none",
        model="logreg",
        init_seeds=2,
        order_seeds=3,
        epochs=1,
        workers=1,
        threads=1,
        out=tmp_path / "f",
        progress=False,
    )
    keys = sorted(r.ran)
    assert len(keys) == 6
    assert {k.split("|", 2)[2] for k in keys} == {
        f"init={i}|order={o}" for i in (0, 1) for o in (0, 1, 2)
    }
    assert (
        json.loads((r.rundir / "config.json").read_text())["identity"]["data"]["name"]
        == "digits <b>&</b> 'q' $x"
    )


def test_diverging_runs_are_recorded_and_the_sweep_goes_on(tmp_path, tiny_digits):
    r = compare(tiny_digits(120), methods="none,max", model="logreg", optimizer="sgd", lr=1e5, seeds=2,
                epochs=2, workers=1, threads=1, out=tmp_path / "d", progress=False)  # fmt: skip
    assert r.n_finished == 4 and r.n_diverged == 4
    assert all(
        row["n_diverged"] == 2 and math.isnan(row["final_val_acc_mean"]) for row in r.summary
    )
    runs = _read_csv(tmp_path / "d" / "summary.csv")
    assert [row["n_diverged"] for row in runs] == ["2", "2"]
    page = r.report_path.read_text()
    assert "2 of 2 runs diverged" in page and "exceeded 1000× its first value" in page


def test_moving_the_data_files_resumes_the_same_run_folder(tmp_path):
    # a spec's folders are not part of the run's identity (the data's contents are)
    import numpy as np

    import normlab.data

    x, y = normlab.data.open("digits", limit=120).arrays("train")
    x, y = np.asarray(x), np.asarray(y)
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "d.npz", x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    run = dict(methods="none", model="logreg", seeds=1, epochs=1, workers=1, threads=1,
               out=tmp_path / "run", progress=False)  # fmt: skip
    first = compare(f"npz:{tmp_path / 'a' / 'd.npz'}", **run)
    (tmp_path / "a").rename(tmp_path / "b")
    again = compare(f"npz:{tmp_path / 'b' / 'd.npz'}", **run)
    assert len(first.ran) == 1 and again.ran == [] and again.n_skipped == 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["identity"]["data"]["name"] == "npz:d.npz"


def test_the_report_says_what_each_method_feeds_the_model(sweep):
    from normlab.experiments.store import open_store

    with open_store(sweep.rundir) as store:
        described = {m: d for m, (d, _) in store.methods().items()}
    assert described["none"] == "raw input"
    assert described["standardize+batchnorm-all"].startswith("standardize (per feature)")
    assert described["standardize+batchnorm-all"].endswith("; BatchNorm after every hidden layer")
    assert "BatchNorm after every hidden layer" in (sweep.rundir / "report.html").read_text()


def test_findings_state_a_difference_as_a_size_and_a_direction():
    from normlab.experiments.report import _findings

    common = dict(model="mlp", n_runs=5, n_diverged=0, final_val_acc_std=0.01,
                  wilcoxon_p_holm=0.06, p_improvement=0.0)  # fmt: skip
    rows = [
        dict(common, method="none", final_val_acc_mean=0.9, t_p_holm=math.nan, diff_mean=math.nan),
        dict(common, method="l2-axis1", final_val_acc_mean=0.85, t_p_holm=0.004, diff_mean=-0.05),
    ]
    text = " ".join(_findings(rows, "none"))
    assert "mlp / l2-axis1 is worse than none by 0.0500 accuracy" in text
    assert "-0.05" not in text


def test_workers_get_absolute_paths_to_the_prepared_splits(tmp_path, tiny_digits, monkeypatch):
    # a Dask worker started in another folder must find the files of a relative --out folder
    from normlab.experiments import execute as execute_step

    seen: list[str] = []
    execute = execute_step.execute_tasks

    def record(tasks, settings, **kw):
        seen.extend(f for t in tasks for f in t["files"])
        execute(tasks, settings, **kw)

    monkeypatch.setattr(execute_step, "execute_tasks", record)
    monkeypatch.chdir(tmp_path)
    compare(tiny_digits(120), methods="none", model="logreg", seeds=1, epochs=1, workers=1,
            threads=1, out="relative-run", progress=False, write_report=False)  # fmt: skip
    assert seen and all(Path(f).is_absolute() for f in seen)
    assert all(Path(f).parent == tmp_path / "relative-run" / ".cache" for f in seen)
