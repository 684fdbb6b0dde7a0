"""The engine is chosen for the job, never for one piece of it.

``engine="auto"`` runs the compiled kernels for jobs of at least ``NUMBA_MIN_BYTES``. A job is all the
data of one call: one array, a file read in 8 MiB batches, a stream of partial_fit updates so far, the
chunks of a Dask array. A file's batches are each just under 8 MiB, so a rule applied per batch ran every
file on NumPy at a fifth of the compiled speed; these tests pin the rule for every way data arrives.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import normlab
import normlab.data
from normlab.core import _engine as E
from normlab.core import _scan
from normlab.core.stats import StatsAccumulator

pytest.importorskip("numba")

MIB = 1 << 20


@pytest.fixture
def engines(monkeypatch):
    """The engine of every per-batch pass of the moments, in order."""
    seen: list[str] = []
    for name in ("int_parts", "float_parts", "wide_int_parts"):
        real = getattr(_scan, name)

        def spy(x3, k, *args, _real=real, _name=name, **kw):
            seen.append("wide" if _name == "wide_int_parts" else args[0])
            return _real(x3, k, *args, **kw)

        monkeypatch.setattr(_scan, name, spy)
    monkeypatch.delenv("NORMLAB_ENGINE", raising=False)
    return seen


def _batches(dtype, n_batches: int, batch_bytes: int):
    rng = np.random.default_rng(0)
    rows = batch_bytes // (3 * np.dtype(dtype).itemsize)
    for _ in range(n_batches):
        if np.dtype(dtype).kind == "b":
            yield rng.random((rows, 3, 1)) < 0.5
        elif np.dtype(dtype).kind == "f":
            yield rng.normal(size=(rows, 3, 1)).astype(dtype)
        else:
            yield rng.integers(0, 100, size=(rows, 3, 1)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_small_updates_of_a_big_job_run_compiled(dtype, engines):
    """Updates of 2 MiB each: NumPy until the job reaches 8 MiB, compiled from then on; same numbers."""
    acc, ref = StatsAccumulator(3), StatsAccumulator(3, engine="numpy")
    expected, job = [], 0
    for x3 in _batches(dtype, 6, 2 * MIB):
        job += x3.nbytes
        expected.append("numba" if job >= E.NUMBA_MIN_BYTES else "numpy")
        acc.update(x3)
    ran = list(engines)
    for x3 in _batches(dtype, 6, 2 * MIB):
        ref.update(x3)
    assert ran == expected and expected[0] == "numpy" and expected[-1] == "numba"
    for name in ("count", "mean", "var", "min", "max"):
        assert np.array_equal(getattr(acc, name), getattr(ref, name)), name


def test_the_size_of_the_job_can_be_given(engines):
    """A part of a known big job (a Dask chunk) runs compiled from its first update."""
    x3 = next(_batches(np.uint8, 1, MIB))
    StatsAccumulator(3, job_bytes=64 * MIB).update(x3)
    StatsAccumulator(3).update(x3)
    assert engines == ["numba", "numpy"]
    with pytest.raises(ValueError, match="job_bytes"):
        StatsAccumulator(3, job_bytes=-1)


def test_a_file_read_in_batches_runs_compiled(tmp_path, engines):
    """normlab.stats of a .npy file: batches of just under 8 MiB each, a 24 MiB job."""
    x = np.random.default_rng(1).integers(0, 256, (2048, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    got = normlab.stats(normlab.data.open(f"npy:{tmp_path / 'x.npy'}"), per="channel", quantiles=())
    assert len(engines) >= 3 and engines[0] == "numpy" and set(engines[1:]) == {"numba"}
    ref = normlab.stats(x, per="channel", quantiles=())
    np.testing.assert_array_equal(got.mean, ref.mean)
    np.testing.assert_array_equal(got.std, ref.std)


def test_a_partial_fit_stream_runs_compiled(engines):
    """A training loop's partial_fit on 1 MiB batches: the normalizer's stream is the job."""
    norm = normlab.Standardize(per="channel")
    rng = np.random.default_rng(3)
    for _ in range(12):
        norm.partial_fit(rng.integers(0, 256, (MIB // 48, 4, 4, 3), dtype=np.uint8))
    assert engines[:7] == ["numpy"] * 7 and engines[8:] == ["numba"] * 4


def test_dask_chunks_run_on_the_engine_of_the_whole_array(engines):
    """Chunks of 1 MiB of a 16 MiB Dask array: every chunk's kernel is chosen for the array."""
    da = pytest.importorskip("dask.array")
    import dask

    x = np.random.default_rng(2).integers(0, 256, (16 * MIB // 3, 3), dtype=np.uint8)
    dx = da.from_array(x, chunks=(MIB // 3, 3))
    with dask.config.set(scheduler="sync"):
        got = normlab.stats(dx, per="feature", quantiles=())
    assert len(engines) == dx.numblocks[0] and set(engines) == {"numba"}
    np.testing.assert_array_equal(got.mean, normlab.stats(x, per="feature", quantiles=()).mean)


def test_a_one_shot_command_loads_the_compiled_kernels_only_for_jobs_that_repay_it(monkeypatch):
    """The CLI runs one command and exits: before numba is imported, loading it (about 0.6 s) pays off only
    for jobs of ONE_SHOT_MIN_BYTES; once imported, the usual threshold holds again."""
    monkeypatch.delenv("NORMLAB_ENGINE", raising=False)
    assert E.resolve_engine("auto", 64 * MIB) == "numba"
    with E.one_shot():
        assert E.resolve_engine("auto", 64 * MIB) == "numba"  # numba is imported in this process already
        monkeypatch.delitem(sys.modules, "numba")
        assert E.resolve_engine("auto", 64 * MIB) == "numpy"
        assert E.resolve_engine("auto", E.ONE_SHOT_MIN_BYTES) == "numba"
        assert E.resolve_engine("numba", 10) == "numba"  # asked for: always
    assert E.resolve_engine("auto", 64 * MIB) == "numba"  # outside the command: the usual threshold


def test_the_cli_runs_its_command_as_one_shot(monkeypatch, capsys):
    from normlab.cli import main as cli
    from normlab.cli import stats as stats_cmd

    seen = []
    monkeypatch.setattr(stats_cmd, "run", lambda args: seen.append(bool(E._ONE_SHOT)) or 0)
    assert cli.main(["stats", "digits"]) == 0
    assert seen == [True] and not E._ONE_SHOT


def test_the_shards_of_a_dataset_run_on_the_engine_of_the_whole_dataset(tmp_path, engines):
    """dataset_bag: each partition reads a shard smaller than the threshold, of a dataset bigger than it."""
    pytest.importorskip("dask.bag")
    import dask

    from normlab.adapters.dask import dataset_bag

    x = np.random.default_rng(5).integers(0, 256, (1024, 64, 64, 3), dtype=np.uint8)  # 12 MiB
    np.save(tmp_path / "x.npy", x)
    ds = normlab.data.open(f"npy:{tmp_path / 'x.npy'}")
    with dask.config.set(scheduler="sync"):
        got = normlab.stats(dataset_bag(ds, n_shards=4), per="channel", quantiles=())  # 3 MiB a shard
    assert len(engines) == 4 and set(engines) == {"numba"}
    np.testing.assert_array_equal(got.mean, normlab.stats(x, per="channel", quantiles=()).mean)
