"""Damaged and hostile saved files: every one is refused with a PersistError, nothing else, quickly.

The class: a saved normalizer or statistics file whose values no fit can produce (NaN, zero or negative
scales, negative variances, numbers that overflow, wrong shapes or types, unknown keys that would shadow
methods, deep nesting). A fuzz test mutates valid files at random, structurally and byte by byte; it runs
for a few seconds by default and for NORMLAB_FUZZ_SECONDS when that is set.
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import normlab
from normlab.errors import NormlabError, PersistError

X = np.random.default_rng(3).normal(size=(40, 3)) * 5 + 2
IMAGES = np.random.default_rng(4).integers(0, 256, size=(10, 4, 4, 3), dtype=np.uint8)
FUZZ_SECONDS = float(os.environ.get("NORMLAB_FUZZ_SECONDS", "4"))


def _documents(tmp_path) -> dict[str, dict]:
    made = {
        "standardize": normlab.Standardize().fit(X),
        "robust-channel": normlab.Robust(per="channel").fit(IMAGES),
        "minmax-global": normlab.MinMax(per="global").fit(X),
        "scale-max": normlab.Scale(by="max").fit(X),
        "lp-sample": normlab.LpNormalize().fit(X),
    }
    docs = {}
    for name, est in made.items():
        est.save(tmp_path / f"{name}.json")
        docs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    normlab.stats(IMAGES, per="channel").save(tmp_path / "stats.json")
    docs["stats"] = json.loads((tmp_path / "stats.json").read_text())
    return docs


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    return _documents(tmp_path_factory.mktemp("saved"))


def _load(tmp_path, doc, name="x.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return normlab.load(path)


def _set(doc, keys, value):
    doc = copy.deepcopy(doc)
    node = doc
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return doc


def _array(values, shape):
    return {"ndarray": values, "shape": shape}


@pytest.mark.parametrize(
    ("keys", "value", "match"),
    [
        (("fitted", "scale_"), _array([1.0, {"float": "nan"}, 2.0], [3]), r"scale_ holds nan .* > 0"),
        (("fitted", "scale_"), _array([1.0, 0.0, 2.0], [3]), r"scale_ holds 0.0 at \(1,\)"),
        (("fitted", "scale_"), _array([1.0, -3.0, 2.0], [3]), r"scale_ holds -3.0"),
        (("fitted", "var_"), _array([1.0, -0.5, 2.0], [3]), r"var_ holds -0.5 .* >= 0"),
        (("fitted", "center_"), _array([1.0, {"float": "inf"}, 2.0], [3]), r"center_ holds inf"),
        (("fitted", "center_"), _array([1.0, 1e400, 2.0], [3]), r"center_ holds inf"),
        (("fitted", "mean_"), _array([1, 10**400, 2], [3]), r"too large for float64"),
        (("fitted", "mean_"), _array(["a", 1.0, 2.0], [3]), r"holds 'a' where a number was expected"),
        (("fitted", "mean_"), _array([1.0, 2.0], [3]), r"2 values that do not fit shape \[3\]"),
        (("fitted", "mean_"), _array([1.0, 2.0, 3.0], [-1]), r"not a valid array entry"),
        (("fitted", "mean_"), [1.0, 2.0, 3.0], r"mean_ should be an array of shape \(3,\)"),
        (("fitted", "center_"), _array([1.0, 2.0, 3.0, 4.0], [4]), r"center_ should be an array of shape \(3,\)"),
        (("fitted", "transform"), 1, r"'transform' is not a fitted attribute"),
        (("fitted", "affine_"), 1, r"'affine_' is not a fitted attribute"),
        (("fitted", "__class__"), "Standardize", r"'__class__' is not a fitted attribute"),
        (("fitted", "n_samples_seen_"), -4, r"n_samples_seen_ is -4"),
        (("fitted", "n_samples_seen_"), 2.5, r"n_samples_seen_ is 2.5"),
        (("fitted", "shape_"), [None, 10**12], r"shape_ is"),
        (("fitted", "per_"), ["channel"], r"wrong type"),
        (("fitted", "fit_dtype_"), "object", r"fit_dtype_ object is not numeric"),
        (("fitted", "fit_dtype_"), "no-such-dtype", r"fitted layout is missing or malformed"),
        (("params", "per"), "columns", r"parameters are not valid"),
    ],
)
def test_a_saved_normalizer_with_values_no_fit_produces_is_refused(tmp_path, documents, keys, value, match):
    with pytest.raises(PersistError, match=match):
        _load(tmp_path, _set(documents["standardize"], keys, value))


@pytest.mark.parametrize(
    ("keys", "value", "match"),
    [
        (("fitted", "var"), _array([1.0, -2.0, 3.0], [3]), r"var entries"),
        (("fitted", "count"), _array([10.0, -1.0, 3.0], [3]), r"count entries"),
        (("fitted", "count"), _array([10.0, 1e400, 3.0], [3]), r"count entries"),
        (("fitted", "min"), _array([300.0, 0.0, 0.0], [3]), r"min/max entries"),
        (("fitted", "mean"), _array([1.0, {"float": "nan"}, 3.0], [3]), r"mean entries"),
        (("fitted", "mean"), _array([1.0, 2.0], [2]), r"inconsistent shapes"),
    ],
)
def test_saved_statistics_with_values_no_data_has_are_refused(tmp_path, documents, keys, value, match):
    with pytest.raises(PersistError, match=match):
        _load(tmp_path, _set(documents["stats"], keys, value))


def test_deeply_nested_json_is_refused_in_one_line(tmp_path):
    with pytest.raises(PersistError, match="nested too deeply"):
        _load(tmp_path, '{"format": "normlab", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")


# ---------------------------------------------------------------------------------------------- fuzzing

HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.just({"float": "nan"}), st.just({"float": "-inf"}), st.just([]),
    st.just({"ndarray": [1.0], "shape": [1]}), st.just({"ndarray": [[1.0]], "shape": [1]}),
    st.lists(st.floats(), max_size=4),
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:4]):
            yield from _paths(v, (*prefix, i))


def _assert_loads_or_refuses(tmp_path, text):
    start = time.perf_counter()
    try:
        obj = _load(tmp_path, text, "fuzz.json")
    except NormlabError:
        return
    finally:
        assert time.perf_counter() - start < 5
    if isinstance(obj, normlab.DatasetStats):
        return
    # what loads is a usable normalizer: it transforms data of its layout, or refuses it with a NormlabError
    probe = IMAGES if obj.layout_.ndim == 4 else X
    if obj.layout_.shape[1:] == probe.shape[1:]:
        with warnings.catch_warnings():  # a valid file may still overflow float32 on foreign data
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                obj.transform(probe)
            except NormlabError:
                pass


@given(data=st.data())
def _structural(tmp_path, documents, data):
    doc = documents[data.draw(st.sampled_from(sorted(documents)))]
    paths = [p for p in _paths(doc) if p]
    keys = data.draw(st.sampled_from(paths))
    _assert_loads_or_refuses(tmp_path, json.dumps(_set(doc, keys, data.draw(HOSTILE))))


@given(data=st.data())
def _bytewise(tmp_path, documents, data):
    doc = documents[data.draw(st.sampled_from(sorted(documents)))]
    raw = bytearray(json.dumps(doc).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        (tmp_path / "fuzz.json").write_bytes(bytes(raw))
        with pytest.raises(PersistError):
            normlab.load(tmp_path / "fuzz.json")
        return
    _assert_loads_or_refuses(tmp_path, text)


@pytest.mark.parametrize("mutate", [_structural, _bytewise], ids=["structural", "bytewise"])
def test_mutated_saved_files_load_or_raise_a_normlab_error(tmp_path, documents, mutate):
    deadline = time.monotonic() + FUZZ_SECONDS / 2
    runs = 0
    batch = settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))(mutate)
    while runs == 0 or time.monotonic() < deadline:
        batch(tmp_path, documents)
        runs += 25
