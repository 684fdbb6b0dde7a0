"""`normlab stats`: results on stdout, errors as one line on stderr with exit status 1."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import normlab
from normlab.cli.main import main


def test_digits_table_on_stdout(capsys):
    assert main(["stats", "digits", "--rows", "4"]) == 0
    out, err = capsys.readouterr()
    assert "digits [train]: 1797 samples of shape (64,)" in out and "per='feature'" in out
    assert out.splitlines()[1].split() == ["name", "count", "mean", "std", "min", "max", "q25", "median", "q75"]
    assert "(60 more rows" in out
    assert err == ""


def test_json_and_out_file_agree_with_the_library(tmp_path, capsys):
    x = np.random.default_rng(0).integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    out_file = tmp_path / "x.stats.json"
    assert main(["stats", str(tmp_path / "x.npy"), "--json", "--out", str(out_file)]) == 0
    doc = json.loads(capsys.readouterr().out)
    expect = normlab.Standardize().fit(x)
    assert doc["per"] == "channel" and doc["layout"] == "(n, h, w, c)"
    assert [e["mean"] for e in doc["entries"]] == expect.mean_.tolist()
    assert [e["std"] for e in doc["entries"]] == expect.std_.tolist()
    loaded = normlab.load(out_file)
    np.testing.assert_array_equal(loaded.mean, expect.mean_)


def test_mnist_prints_the_usual_constants(shared_data, capsys):
    assert main(["stats", f"mnist:{shared_data / 'mnist'}", "--per", "channel"]) == 0
    out = capsys.readouterr().out
    assert "60000 samples of shape (28, 28, 1) (uint8)" in out
    assert "on the [0, 1] scale (x / 255): mean (0.130660), std (0.308108)" in out


def test_bad_input_is_one_error_line_and_exit_1(tmp_path):
    missing = tmp_path / "nope.npy"
    proc = subprocess.run([sys.executable, "-m", "normlab.cli.main", "stats", str(missing)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("Error: ") and str(missing) in proc.stderr.splitlines()[0]
    assert "Traceback" not in proc.stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["stats", "digits", "--per", "sample"])
    assert exc.value.code == 2


def test_quantiles_option_picks_columns_and_none_skips_them(tmp_path, capsys):
    x = np.random.default_rng(1).normal(size=(400, 3))
    np.save(tmp_path / "t.npy", x)
    assert main(["stats", str(tmp_path / "t.npy"), "--quantiles", "0.01,0.5,0.99"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[-3:] == ["q1", "median", "q99"]
    out_file = tmp_path / "none.json"
    assert main(["stats", str(tmp_path / "t.npy"), "--quantiles", "none", "--json", "--out", str(out_file)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all("median" not in e for e in doc["entries"])
    loaded = normlab.load(out_file)  # statistics without quantiles load ...
    np.testing.assert_array_equal(loaded.mean, normlab.stats(x, per="feature", quantiles=()).mean)
    with pytest.raises(normlab.errors.NormlabError, match="quantile"):
        loaded.to_normalizer("robust")  # ... and say what is missing when a quantile is needed


@pytest.mark.parametrize("bad", ["1.5", "a,b", "", "0.5,,0.7", "nan"])
def test_bad_quantiles_are_an_error_line(tmp_path, bad):
    np.save(tmp_path / "t.npy", np.zeros((4, 2)))
    proc = subprocess.run([sys.executable, "-m", "normlab.cli.main", "stats", str(tmp_path / "t.npy"),
                           f"--quantiles={bad}"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("Error: --quantiles") and "Traceback" not in proc.stderr


def test_help_shows_quantiles_none(capsys):
    with pytest.raises(SystemExit):
        main(["stats", "--help"])
    assert "--quantiles" in capsys.readouterr().out


def test_python_dash_m_normlab_is_the_same_command_line(tmp_path, capsys):
    """``python -m normlab`` where no ``normlab`` script is on the PATH (the same parser, the same output)."""
    np.save(tmp_path / "x.npy", np.arange(60, dtype=np.uint8).reshape(10, 2, 3))
    got = subprocess.run([sys.executable, "-m", "normlab", "stats", str(tmp_path / "x.npy"), "--json"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert main(["stats", str(tmp_path / "x.npy"), "--json"]) == 0
    assert json.loads(got.stdout) == json.loads(capsys.readouterr().out)
