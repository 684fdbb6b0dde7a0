"""``normlab compare`` and ``normlab report`` on the command line: table on stdout, errors as one line."""

from __future__ import annotations

import json

import pytest

from normlab.cli.main import main


def test_compare_prints_the_table_and_the_report_path(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["compare", "--data", "breast-cancer", "--limit", "120", "--methods", "none,standardize",
                 "--model", "logreg", "--seeds", "2", "--epochs", "2", "--workers", "1", "--threads", "1",
                 "--quiet", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["method", "runs", "diverged"]
    assert lines[2].startswith("none (baseline)") and lines[3].startswith("standardize")
    assert lines[-1] == f"report: {out / 'report.html'}"
    assert (out / "report.html").is_file()

    code = main(["report", str(out), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["method"] for r in data["summary"]] == ["none", "standardize"]
    assert data["summary"][0]["t_p"] is None  # NaN becomes null in JSON


def test_list_shows_methods_models_and_presets(capsys):
    assert main(["compare", "--list"]) == 0
    text = capsys.readouterr().out
    for name in (
        "minmax-sample",
        "l2-axis1",
        "batchnorm-all",
        "lenet",
        "gru",
        "mnist-cnn",
        "tabular-logreg",
        "keras-probs",
    ):
        assert name in text


def test_list_shows_every_engine_loss_and_preset_under_its_heading(capsys):
    from normlab.experiments.engines import ENGINES
    from normlab.experiments.losses import LOSSES
    from normlab.experiments.presets import PRESETS

    assert main(["compare", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()

    def section(heading: str) -> list[str]:
        start = lines.index(heading) + 1
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith(" ")), len(lines))
        return [line.split()[0] for line in lines[start:end] if line.startswith("  ") and line[2] != " "]

    assert section("engines (--engine):") == list(ENGINES) == ["torch", "keras"]
    assert section("losses (--loss):") == list(LOSSES) == ["logits", "keras-probs"]
    assert {"mnist-cnn", "mnist-lenet", "rows-lstm", "input-bn"} <= set(section("presets:")) == set(PRESETS)
    keras_line = next(line for line in lines if line.startswith("  keras "))
    assert "model.fit" in keras_line and "categorical_crossentropy" in keras_line
    input_bn = lines[lines.index(next(x for x in lines if x.startswith("  input-bn"))) + 1]
    assert "methods standardize,batchnorm-input; model mlp; engine keras; 5 seeds × 5 epochs" in input_bn


def test_help_explains_keras_probs_in_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "keras-probs: Keras 3 (torch/JAX): softmax -> renormalize -> clip [1e-7, 1-1e-7] -> -log" in text
    assert "A compiled keras.Model of yours keeps its own loss (refused with --loss)" in text
    assert "--engine {torch,keras}" in text and "keras: Keras' model.fit (torch backend)" in text


@pytest.mark.parametrize(
    ("argv", "fix"),
    [
        (
            ["compare", "--methods", "none,zscore"],
            "expected one of none, scale, max, center, standardize",
        ),
        (["compare", "--model", "resnet"], "expected one of logreg, mlp, lenet, cnn, lstm, gru"),
        (["compare", "--preset", "mnist"], "expected one of mnist-cnn, mnist-lenet, rows-lstm, input-bn, tabular-logreg"),
        (["compare", "--preset", "mnist-cnn"], "expected --data mnist:DIR"),
        (["report", "no/such/folder"], "expected the --out folder of a `normlab compare` run"),
    ],
)
def test_mistakes_exit_1_with_the_fix_on_stderr(argv, fix, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and fix in err.replace("\n  ", " ")


def test_compare_logs_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NORMLAB_PROGRESS", raising=False)
    code = main(["compare", "--data", "breast-cancer", "--limit", "60", "--methods", "none", "--model",
                 "logreg", "--seeds", "1", "--epochs", "2", "--workers", "1", "--threads", "1",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "\r" not in err and "\x1b" not in err
    assert "compare: 100.0% |" in err and "2/2 epochs" in err and "runs 1/1" in err


KERAS_BUILDER = """
import keras

def build(input_shape, n_classes):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(n_classes)])
"""


@pytest.mark.parametrize("engine", ["torch", "keras", "keras-builder"])
def test_device_cuda_without_a_gpu_is_one_error_line_before_any_training(engine, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    if engine != "torch":
        pytest.importorskip("keras")
    model = ["--model", "mlp", "--engine", engine]
    if engine == "keras-builder":
        (tmp_path / "net.py").write_text(KERAS_BUILDER)
        model = ["--model", f"{tmp_path / 'net.py'}:build"]
    out = tmp_path / "run"
    code = main(["compare", "--data", "digits", "--limit", "100", "--methods", "none", *model, "--seeds", "1",
                 "--epochs", "1", "--workers", "1", "--device", "cuda", "--quiet", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert [line for line in captured.err.splitlines() if line.startswith("Error:")] == [
        captured.err.splitlines()[0]
    ]
    assert "PyTorch sees no CUDA GPU" in captured.err and "Use device='auto' or 'cpu'" in captured.err.replace("\n  ", " ")
    assert "Traceback" not in captured.err
    assert not out.exists()  # nothing trained, nothing written
