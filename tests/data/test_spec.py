"""Spec strings, option checks, missing paths, and what importing normlab.data costs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import normlab.data
from normlab.data.cli import SPEC_HELP, add_dataset_arguments, iter_from_args, open_from_args
from normlab.errors import DatasetError, NormlabError


def test_unknown_kind_lists_every_kind_with_an_example():
    with pytest.raises(DatasetError) as info:
        normlab.data.open("mnst:/data/mnist")
    message = str(info.value)
    assert "unknown dataset kind 'mnst'" in message
    for example in (
        "digits",
        "mnist:~/data/mnist",
        "cifar10:~/data/cifar-10-batches-py",
        "images:~/photos/train",
        "csv:customers.csv",
        "npz:data.npz",
    ):
        assert example in message
    assert isinstance(info.value, (NormlabError, ValueError))


def test_missing_path_says_which_and_suggests(tmp_path):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(
        DatasetError,
        match=r"the folder .*/mnsit does not exist; expected an existing folder\. Did you mean '.*/mnist'\?",
    ):
        normlab.data.open(f"mnist:{tmp_path / 'mnsit'}")
    with pytest.raises(
        DatasetError,
        match=r"the file .*/nope/x\.npy does not exist; expected an existing file\. Its folder .*/nope does not exist either",
    ):
        normlab.data.open(str(tmp_path / "nope" / "x.npy"))


def test_relative_missing_path_names_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=rf"resolved from the current folder {tmp_path}"):
        normlab.data.open("csv:data/customers.csv")


def test_file_and_folder_kinds_are_checked(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(DatasetError, match=r"is a file; expected a folder for mnist"):
        normlab.data.open(f"mnist:{tmp_path / 'x.npy'}")
    with pytest.raises(DatasetError, match=r"is a folder; expected a csv file"):
        normlab.data.open(f"csv:{tmp_path}")


def test_kind_and_path_mistakes():
    with pytest.raises(
        DatasetError,
        match=r"digits is bundled with scikit-learn and takes no path.*Drop the ':x' part",
    ):
        normlab.data.open("digits:x")
    with pytest.raises(
        DatasetError, match=r"names the kind but no path; expected e\.g\. 'mnist:~/data/mnist'"
    ):
        normlab.data.open("mnist")
    with pytest.raises(DatasetError, match="has no path after 'csv:'"):
        normlab.data.open("csv:")
    with pytest.raises(DatasetError, match="is not a non-empty string"):
        normlab.data.open("  ")


def test_bare_folder_gets_a_hint(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(
        DatasetError, match=r"It holds IDX files: use 'mnist:.*' or 'fashion-mnist:"
    ):
        normlab.data.open(str(tmp_path))


def test_options_that_do_not_apply_are_refused():
    with pytest.raises(
        DatasetError,
        match=r"option target= does not apply to digits datasets \(target= applies to csv, parquet\)",
    ):
        normlab.data.open("digits", target="y")
    with pytest.raises(DatasetError, match="resize= applies to images"):
        normlab.data.open("wine", resize=(4, 4))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"validation_split": 1.5},
            r"validation_split=1\.5 is not a fraction; expected a number strictly between 0 and 1",
        ),
        ({"validation_split": 0}, r"validation_split=0 is not a fraction"),
        ({"limit": 0}, r"limit=0 is not a positive number of samples"),
        ({"limit": 2.5}, r"limit=2\.5 is not a positive number"),
        ({"seed": "x"}, r"seed='x' is not an integer"),
    ],
)
def test_common_options_are_validated(options, message):
    with pytest.raises(DatasetError, match=message):
        normlab.data.open("wine", **options)


def test_aliases_paths_and_protocol(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    ds = normlab.data.open(tmp_path / "x.npy")  # a Path works too
    assert ds.kind == "npy" and isinstance(ds, normlab.data.Dataset)
    bc = normlab.data.open("breast_cancer")
    assert (
        bc.kind == "breast-cancer"
        and bc.sample_shape == (30,)
        and bc.class_names == ("malignant", "benign")
    )
    assert "Dataset('breast-cancer'" in repr(bc) and "n_classes=2" in repr(bc)
    assert normlab.data.open("digits").class_counts().sum() == 1797


@pytest.mark.parametrize("kind", ["mnist", "npy", "csv"])
def test_a_relative_spec_reads_the_same_files_from_any_folder(
    kind, shared_data, tmp_path, monkeypatch
):
    """What reads the files later (a Dask worker, a sweep worker) may run in another folder."""
    if kind == "csv":
        pytest.importorskip("pandas")
    if kind == "mnist":
        folder, spec = shared_data, "mnist:mnist"
    else:
        folder, spec = tmp_path, {"npy": "x.npy", "csv": "csv:t.csv"}[kind]
        np.save(tmp_path / "x.npy", np.arange(12.0).reshape(6, 2))
        (tmp_path / "t.csv").write_text("a,b\n" + "".join(f"{i},{2 * i}\n" for i in range(6)))
    monkeypatch.chdir(folder)
    ds = normlab.data.open(spec, limit=50)
    assert ds.name.endswith(spec)  # the name keeps the spec as written
    monkeypatch.chdir(tmp_path / ".." if kind != "mnist" else tmp_path)
    kind_, _, rel = spec.rpartition(":")
    absolute = normlab.data.open(f"{kind_ or 'npy'}:{folder / rel}", limit=50)
    assert len(list(ds.iter_batches(16))) > 0
    for a, b in zip(ds.iter_batches(16), absolute.iter_batches(16), strict=True):
        assert np.array_equal(
            a[0] if isinstance(a, tuple) else a, b[0] if isinstance(b, tuple) else b
        )


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetError, match=r"pip install 'normlab\[datasets\]'"):
        normlab.data.open("wine")


def test_importing_normlab_data_imports_numpy_only():
    code = (
        "import sys, json; import normlab.data; "
        "std = set(sys.stdlib_module_names); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} - std - {'normlab', 'numpy', '__main__'})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    extra = [m for m in json.loads(out) if not m.startswith("_")]
    assert extra == []


# ---------------------------------------------------------------- CLI options
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    add_dataset_arguments(parser)
    return parser


def test_cli_options_reach_open(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,name,y\n1,2,x,0\n3,4,y,1\n5,6,z,1\n7,8,w,0\n")
    args = _parser().parse_args(
        [
            f"csv:{tmp_path / 't.csv'}",
            "--target",
            "y",
            "--drop",
            "name",
            "--validation-split",
            "0.25",
            "--split",
            "validation",
            "--batch-size",
            "1",
        ]
    )
    ds = open_from_args(args.dataset, args)
    assert ds.feature_names == ("a", "b")
    batches = list(iter_from_args(ds, args))
    assert len(batches) == 1 and batches[0][0].tolist() == [[7, 8]]


def test_cli_resize_and_options_not_given_are_not_passed(tmp_path):
    args = _parser().parse_args(
        ["wine", "--limit", "10", "--seed", "3", "--shuffle-split", "--validation-split", "0.5"]
    )
    ds = open_from_args(args.dataset, args)
    assert ds.num_samples("train") == 5 and ds.seed == 3 and ds.shuffle_split
    args = _parser().parse_args(["wine", "--resize", "8", "9"])
    assert args.resize == [8, 9]
    with pytest.raises(DatasetError, match="resize= applies to images"):
        open_from_args(args.dataset, args)


def test_spec_help_lists_the_kinds():
    assert "mnist:~/data/mnist" in SPEC_HELP and "parquet:customers.parquet" in SPEC_HELP


def test_path_in_errors_is_the_one_given(tmp_path):
    missing = Path("relative") / "dir"
    with pytest.raises(DatasetError, match=r"dataset spec 'images:relative/dir'"):
        normlab.data.open(f"images:{missing}")
