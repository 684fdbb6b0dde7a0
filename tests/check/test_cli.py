"""``normlab check``: a readable report on stdout, --json for machines, an exit status that gates CI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from normlab.cli.main import main


@pytest.fixture(scope="module")
def mnist_axis1(shared_data, tmp_path_factory, keras_normalize):
    """2,000 MNIST training images as `--limit 2000` selects them, normalized the tutorial's way."""
    import normlab.data

    spec = f"mnist:{shared_data / 'mnist'}"
    x, _ = normlab.data.open(spec, limit=2000).arrays("train")
    path = tmp_path_factory.mktemp("check") / "x_train_axis1.npy"
    np.save(path, keras_normalize(x[..., 0], 1))
    return spec, str(path)


def test_wrong_axis_is_reported_and_fails_the_run(mnist_axis1, capsys):
    spec, path = mnist_axis1
    code = main(["check", spec, "--limit", "2000", "--normalized", path])
    out = capsys.readouterr()
    assert code == 1
    assert "error[wrong-axis] (normalized)\n  Each image column of the normalized data has unit L2 norm" in out.out
    assert "keras.utils.normalize(x, axis=1) on an (n, h, w) stack" in " ".join(out.out.split())  # unwrapped
    assert out.out.rstrip().endswith("1 error, 0 warnings, 0 info (8 checks run)")
    assert "failing: findings at --fail-on error or worse" in out.err


def test_json_output_and_ignore(mnist_axis1, capsys):
    spec, path = mnist_axis1
    code = main(["check", spec, "--limit", "2000", "--normalized", path, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [f["code"] for f in doc["findings"]] == ["wrong-axis"]
    assert doc["findings"][0]["numbers"]["axis"] == 1
    assert doc["inputs"]["test"].endswith("[test] (2000, 28, 28, 1) uint8")
    assert main(["check", spec, "--limit", "2000", "--normalized", path, "--ignore", "wrong-axis"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_fail_on_decides_whether_warnings_fail(capsys):
    pytest.importorskip("sklearn")
    assert main(["check", "breast-cancer"]) == 0
    out = capsys.readouterr().out
    assert "warning[scale-disparity] (train)" in out and "warning[features-not-scaled] (train)" in out
    assert main(["check", "breast-cancer", "--fail-on", "warning"]) == 1
    assert main(["check", "breast-cancer", "--fail-on", "never", "--json"]) == 0


def test_statistics_alone_can_be_checked(capsys):
    stats = json.dumps({"mean": [0.485, 0.456, 0.406], "std": [0.052441, 0.050176, 0.050625]})
    assert main(["check", "--stats", stats]) == 1
    assert "error[std-as-variance] (stats)" in capsys.readouterr().out
    assert main(["check", "--mean", "0.4914", "0.4822", "0.4465", "--std", "0.2023", "0.1994", "0.2010"]) == 0
    assert "warning[averaged-std] (stats)" in capsys.readouterr().out


def test_mean_without_std_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "--mean", "0.5"])
    assert exc.value.code == 2
    assert "--mean needs exactly one of --std or --var" in capsys.readouterr().err


def test_misaligned_normalized_data_is_one_error_line(tmp_path, capsys):
    pytest.importorskip("sklearn")
    path = tmp_path / "z.npy"
    np.save(path, np.zeros((10, 30)))
    assert main(["check", "breast-cancer", "--normalized", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: normlab.check(): the normalized data has 10 samples but the training data has 569")
    assert "expected the same samples in the same order" in err


@pytest.mark.parametrize("std", ["0", "-1", "nan", "inf"])
def test_statistics_no_data_has_are_one_error_line_not_a_clean_report(std, capsys):
    assert main(["check", "--mean", "0.5", "--std", std]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: normlab.check(stats=...): std holds") and "expected values finite and > 0" in err


def test_a_hugging_face_preprocessor_config_is_accepted_as_the_statistics(tmp_path, capsys):
    path = tmp_path / "preprocessor_config.json"
    # ImageNet's constants, as ViT image processors state them: checked on the raw-pixel scale they apply to
    path.write_text(json.dumps({"do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                                "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}))
    assert main(["check", "--stats", str(path)]) == 0
    assert "Error" not in capsys.readouterr().err


def test_channels_first_arrays_are_refused_unless_the_axis_is_given(tmp_path, mnist_axis1, capsys):
    spec, _ = mnist_axis1
    import normlab.data

    x, _ = normlab.data.open(spec, limit=500).arrays("train")  # (n, 28, 28, 1)
    path = tmp_path / "nchw.npy"
    np.save(path, np.moveaxis(x, -1, 1))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "looks channels-first" in err and "--channel-axis" in err
    main(["check", str(path), "--channel-axis", "1"])
    assert "looks channels-first" not in capsys.readouterr().err
