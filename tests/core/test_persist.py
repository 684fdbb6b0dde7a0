"""Saving and loading: exact round trips, atomic writes, and refusal of damaged or foreign files."""

from __future__ import annotations

import json

import numpy as np
import pytest

import normlab
from normlab.errors import PersistError

X = np.random.default_rng(3).normal(size=(30, 5)) * 1e-3 + 1 / 3


@pytest.fixture
def saved(tmp_path):
    est = normlab.Standardize().fit(X)
    path = tmp_path / "std.json"
    est.save(path)
    return est, path


def test_file_is_small_readable_versioned_json(saved):
    _, path = saved
    doc = json.loads(path.read_text())
    assert doc["format"] == "normlab" and doc["version"] == 1 and doc["class"] == "Standardize"
    assert doc["fitted"]["per_"] == "feature" and doc["fitted"]["layout_"] == "(n, f)"
    assert path.stat().st_size < 4000


def test_floats_round_trip_bit_identically(saved):
    est, path = saved
    back = normlab.load(path)
    assert back.mean_.tobytes() == est.mean_.tobytes()
    assert back.std_.tobytes() == est.std_.tobytes()
    assert back.transform(X).tobytes() == est.transform(X).tobytes()


def test_save_is_atomic_and_leaves_no_temporary_files(saved, tmp_path, monkeypatch):
    _, path = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        normlab.Standardize().fit(X * 2).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["std.json"]


def test_saving_an_unfitted_normalizer_says_fit_first(tmp_path):
    with pytest.raises(normlab.NotFittedError, match="fit"):
        normlab.Standardize().save(tmp_path / "x.json")


def test_saving_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PersistError, match="does not exist"):
        normlab.Standardize().fit(X).save(tmp_path / "nope" / "x.json")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "not valid JSON"),
        ('{"format": "normlab", "version": 1, "kind": "normalizer", "class": "Standardize", "par', "truncated"),
        ('{"hello": "world"}', "not a normlab file"),
        ("[1, 2, 3]", "not a normlab file"),
        ('{"format": "normlab", "version": 99, "normlab_version": "9.0"}', "Upgrade normlab"),
        ('{"format": "normlab", "version": 1, "kind": "normalizer", "class": "os.system", "params": {}, "fitted": {}}',
         "unknown normalizer class"),
    ],
)
def test_damaged_or_foreign_files_are_refused(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PersistError, match=match):
        normlab.load(path)


def test_tampered_statistics_are_refused(saved):
    _, path = saved
    doc = json.loads(path.read_text())
    doc["fitted"]["scale_"]["shape"] = [4]
    doc["fitted"]["scale_"]["ndarray"] = doc["fitted"]["scale_"]["ndarray"][:4]
    path.write_text(json.dumps(doc))
    with pytest.raises(PersistError, match="should be an array of shape"):
        normlab.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(PersistError, match="no such file"):
        normlab.load(tmp_path / "missing.json")


def test_dataset_stats_round_trip_and_become_a_normalizer(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
    s = normlab.stats(x)
    s.save(tmp_path / "s.json")
    back = normlab.load(tmp_path / "s.json")
    assert isinstance(back, normlab.DatasetStats)
    np.testing.assert_array_equal(back.mean, s.mean)
    np.testing.assert_array_equal(back.median, s.median)
    est = back.to_normalizer("standardize")
    np.testing.assert_array_equal(est.transform(x), normlab.Standardize().fit(x).transform(x))
