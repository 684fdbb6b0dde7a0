"""Statistics of Dask collections equal the in-memory ones, whatever the chunking."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import dask.bag as db
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import normlab
from normlab.adapters.dask import transform
from normlab.errors import DataError, DataTypeError, LayoutError, NonFiniteError

FIELDS = ("count", "mean", "var", "min", "max")


def uint8_stack(shape=(240, 12, 10, 3), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    x[..., 1] //= 3  # channels with different statistics
    return x


def assert_identical(got, want) -> None:
    assert (got.per, got.layout, got.sample_shape, got.n_samples, got.dtype) == (
        want.per, want.layout, want.sample_shape, want.n_samples, want.dtype,
    )  # fmt: skip
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert sorted(got.quantiles) == sorted(want.quantiles)
    for q in want.quantiles:
        np.testing.assert_array_equal(got.quantiles[q], want.quantiles[q], err_msg=f"q={q}")
    assert got.quantile_rank_error == want.quantile_rank_error == 0.0


@pytest.mark.parametrize(
    "chunks",
    [(80, 6, 5, 2), ((10, 100, 130), 7, (3, 7), 3)],
    ids=["every-axis", "uneven"],
)
def test_stats_of_a_chunked_uint8_stack_on_workers_are_bit_identical(client, chunks):
    from distributed import get_task_stream

    x = uint8_stack()
    dx = da.from_array(x, chunks=chunks)
    with get_task_stream(client) as tasks:
        got = {per: normlab.stats(dx, per=per) for per in ("channel", "global")}
    for per, s in got.items():
        assert_identical(s, normlab.stats(x, per=per))
    # one accumulator per chunk (after re-cutting chunks that split the channels), computed on the workers
    ran = [t for t in tasks.data if "normlab-chunk-" in str(t["key"])]
    whole_channels = dx.rechunk({0: "auto", 3: -1}) if len(dx.chunks[3]) > 1 else dx
    assert len(ran) == whole_channels.npartitions + dx.npartitions  # channel: re-cut; global: as given
    assert {t["worker"] for t in ran} <= set(client.scheduler_info()["workers"])


def test_fitted_normalizers_on_workers_equal_the_in_memory_fit(client):
    x = uint8_stack(seed=1)
    dx = da.from_array(x, chunks=(33, 6, 10, 2))
    for make in (
        lambda: normlab.Standardize(per="channel"),
        lambda: normlab.Robust(per="channel"),
        lambda: normlab.MinMax(per="global"),
        lambda: normlab.Standardize(per="feature"),
    ):
        got, want = make().fit(dx), make().fit(x)
        np.testing.assert_array_equal(got.center_, want.center_)
        np.testing.assert_array_equal(got.scale_, want.scale_)
        assert (got.n_samples_seen_, got.layout_, got.per_) == (want.n_samples_seen_, want.layout_, want.per_)


def _chunking(draw, shape):
    chunks = []
    for size in shape:
        cuts = sorted(draw(st.sets(st.integers(1, size - 1), max_size=3))) if size > 1 else []
        edges = [0, *cuts, size]
        chunks.append(tuple(b - a for a, b in itertools.pairwise(edges)))
    return tuple(chunks)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), per=st.sampled_from(["global", "channel", "feature"]))
def test_any_chunk_boundaries_give_bit_identical_integer_statistics(data, per):
    x = uint8_stack(shape=(23, 4, 5, 3), seed=2).astype(np.int16) - 100
    chunks = _chunking(data.draw, x.shape)
    with dask.config.set(scheduler="sync"):
        got = normlab.stats(da.from_array(x, chunks=chunks), per=per)
    assert_identical(got, normlab.stats(x, per=per))


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_any_chunk_boundaries_give_float_statistics_equal_to_rounding(data):
    rng = np.random.default_rng(3)
    x = 1e6 + rng.normal(size=(31, 6, 4)) * np.array([1.0, 10.0, 1e-3, 5.0])
    chunks = _chunking(data.draw, x.shape)
    with dask.config.set(scheduler="sync"):
        got = normlab.stats(da.from_array(x, chunks=chunks), per="channel")
    want = normlab.stats(x, per="channel")
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-14, atol=0)
    np.testing.assert_allclose(got.std, want.std, rtol=1e-9, atol=0)
    for name in ("count", "min", "max"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    for q in want.quantiles:  # exact values: float quantiles are exact too while they fit the budget
        np.testing.assert_array_equal(got.quantiles[q], want.quantiles[q])


def test_dask_dataframe_with_unknown_partition_sizes(client):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    rng = np.random.default_rng(4)
    table = pd.DataFrame({"a": rng.integers(0, 9, 500), "b": rng.integers(-5, 5, 500), "c": rng.integers(0, 2, 500)})
    ddf = dd.from_pandas(table, npartitions=3)
    assert np.isnan(ddf.to_dask_array().shape[0])
    assert_identical(normlab.stats(ddf), normlab.stats(table.to_numpy()))
    fitted = normlab.Standardize().fit(ddf)
    assert fitted.n_samples_seen_ == 500 and fitted.layout_.describe() == "(n, f)"
    assert list(fitted.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(fitted.mean_, normlab.Standardize().fit(table.to_numpy()).mean_)


def test_partial_fit_mixes_numpy_batches_and_dask_arrays():
    x = uint8_stack(seed=5)
    n = normlab.Standardize(per="channel")
    with dask.config.set(scheduler="sync"):
        n.partial_fit(x[:100]).partial_fit(da.from_array(x[100:], chunks=(30, 12, 10, 3)))
    n.partial_fit(x[:7])
    want = normlab.Standardize(per="channel").fit(np.concatenate([x, x[:7]]))
    np.testing.assert_array_equal(n.mean_, want.mean_)
    np.testing.assert_array_equal(n.std_, want.std_)
    assert n.n_samples_seen_ == 247


def test_nan_in_a_chunk_names_its_place_in_the_whole_array():
    x = np.random.default_rng(6).normal(size=(80, 5, 4, 2))
    x[57, 2, 1, 0] = np.nan
    dx = da.from_array(x, chunks=(20, 5, 4, 2))
    with dask.config.set(scheduler="sync"):
        with pytest.raises(DataError, match=r"in the array, .*index \(57, 2, 1, 0\).*pass nan='ignore'"):
            normlab.Standardize().fit(dx)
        got = normlab.Standardize(nan="ignore").fit(dx)
    want = normlab.Standardize(nan="ignore").fit(x)
    # different splits round differently: the means (near 0 here) agree to rounding of the data's scale
    np.testing.assert_allclose(got.mean_, want.mean_, rtol=0, atol=1e-14 * float(want.std_.max()))
    np.testing.assert_allclose(got.std_, want.std_, rtol=1e-12)


def test_a_bag_of_batches_and_delayed_batch_files_on_workers(client, tmp_path):
    x = uint8_stack(seed=7)
    y = np.arange(len(x)) % 10
    bag = db.from_sequence([(x[i : i + 40], y[i : i + 40]) for i in range(0, len(x), 40)], npartitions=3)
    assert_identical(normlab.stats(bag), normlab.stats(x))
    files = []
    for i in range(0, len(x), 70):
        files.append(tmp_path / f"batch{i}.npy")
        np.save(files[-1], x[i : i + 70])
    batches = [dask.delayed(np.load)(str(f)) for f in files]
    got = normlab.Robust(per="channel").fit(batches)
    want = normlab.Robust(per="channel").fit(x)
    np.testing.assert_array_equal(got.center_, want.center_)
    np.testing.assert_array_equal(got.scale_, want.scale_)
    assert got.n_samples_seen_ == len(x)


def test_batches_of_different_channel_counts_in_a_bag_are_refused():
    bag = db.from_sequence([np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 4, 4, 4), np.uint8)], npartitions=2)
    with dask.config.set(scheduler="sync"), pytest.raises(LayoutError, match="channel"):
        normlab.stats(bag, per="channel")


def test_complex_dask_arrays_are_refused_with_a_fix():
    dx = da.zeros((4, 3), dtype=np.complex64, chunks=2)
    with pytest.raises(DataTypeError, match=r"x\.real"):
        normlab.Standardize().fit(dx)


def test_transform_of_a_dask_array_equals_numpy_transform():
    x = uint8_stack(shape=(40, 6, 5, 3), seed=8)
    dx = da.from_array(x, chunks=(15, 4, 5, 2))
    with dask.config.set(scheduler="sync"):
        for n in (normlab.Standardize(per="channel"), normlab.MinMax(per="sample"), normlab.Center(per="feature")):
            n.fit(dx)
            np.testing.assert_array_equal(transform(n, dx).compute(), n.fit(x).transform(x))
        assert normlab.MinMax(per="sample").fit(dx).n_samples_seen_ == 40


def _threads_in_a_chunk_task() -> tuple[int, int, int, int]:
    import numba

    from normlab.adapters._dask_stats import _task_threads
    from normlab.core._engine import n_workers

    with _task_threads():
        inside = numba.get_num_threads(), n_workers()
    return (*inside, numba.get_num_threads(), n_workers())


def test_chunk_tasks_run_kernels_on_the_workers_own_thread_count(client):
    """numba's threads and normlab's own pool both: a worker with one thread runs its kernels on one."""
    pytest.importorskip("numba")
    nb_in, pool_in, nb_after, pool_after = client.submit(_threads_in_a_chunk_task, pure=False).result()
    assert (nb_in, pool_in) == (1, 1)  # the fixture's workers have one thread each
    assert nb_after >= nb_in and pool_after >= pool_in  # restored afterwards


def test_float_quantiles_of_a_big_array_are_selected_exactly_on_the_workers(client):
    """Past the one-pass store (2**22 values) a float Dask array is not sketched: each selection pass is a
    histogram per chunk on the workers, merged in a tree; the result equals np.quantile bit for bit, in
    every per= mode and through Robust.fit."""
    from distributed import get_task_stream

    rng = da.random.default_rng(12)
    dx = rng.normal(size=(220_000, 4, 5), chunks=(30_000, 2, 5))  # the channel axis is cut: re-cut
    dx = (dx * np.geomspace(0.01, 15, 5) + np.geomspace(0.3, 3e12, 5)).persist()  # in the workers' memory
    x = dx.compute()
    qs = (0.01, 0.25, 0.5, 0.75, 0.99)
    with get_task_stream(client) as tasks:
        s = normlab.stats(dx, per="channel", channel_axis=-1, quantiles=qs)
    assert s.quantile_rank_error == 0.0
    ref = np.quantile(x.reshape(-1, 5), qs, axis=0)
    for i, q in enumerate(qs):
        np.testing.assert_array_equal(s.quantiles[q], ref[i], err_msg=f"q={q}")
    # the chunks are in the workers' memory: every pass read them in place, no task at all
    assert not [t for t in tasks.data if "normlab-" in str(t["key"])]
    g = normlab.stats(dx, per="global", quantiles=(0.5,))
    assert g.quantiles[0.5].item() == np.quantile(x, 0.5)
    f32 = (x[:, :, :3] - np.geomspace(0.3, 3e12, 5)[:3]).astype(np.float32)
    f32d = dx[:, :, :3] - np.geomspace(0.3, 3e12, 5)[:3]
    r = normlab.Robust(per="feature").fit(f32d.astype(np.float32).reshape(len(f32), -1).rechunk((50_000, 12)))
    assert r.quantile_rank_error_ == 0.0
    np.testing.assert_array_equal(r.median_, np.quantile(f32.reshape(len(f32), -1).astype(np.float64), 0.5, axis=0))


def test_float_quantiles_of_a_lazy_array_are_selected_by_a_task_per_chunk(client):
    """Not persisted: the same passes run as a graph, a histogram task per chunk merged in a tree."""
    from distributed import get_task_stream

    dx = da.random.default_rng(14).normal(size=(300_000, 16), chunks=(40_000, 16)) * 1e3 + 1e9
    with get_task_stream(client) as tasks:
        s = normlab.stats(dx, per="feature", quantiles=(0.1, 0.9))
    x = dx.compute()
    assert s.quantile_rank_error == 0.0
    np.testing.assert_array_equal(s.quantiles[0.9], np.quantile(x, 0.9, axis=0))
    assert [t for t in tasks.data if "normlab-select-" in str(t["key"])]


def test_persisted_chunks_are_read_in_place(client):
    """Chunks already in the workers' memory get no task: each worker reads the chunks it holds, in place;
    the statistics stay bit-identical, and a NaN is still placed in the whole array."""
    from distributed import get_task_stream

    x = uint8_stack(shape=(400, 12, 10, 3), seed=9)
    dx = client.persist(da.from_array(x, chunks=(40, 12, 10, 3)))
    with get_task_stream(client) as tasks:
        got = normlab.stats(dx, per="channel")
    assert_identical(got, normlab.stats(x, per="channel"))
    assert not [t for t in tasks.data if "normlab-" in str(t["key"])]
    bad = np.random.default_rng(1).normal(size=(200, 5)).astype(np.float32)
    bad[123, 4] = np.nan
    with pytest.raises(NonFiniteError, match=r"\(123, 4\)"):
        normlab.stats(client.persist(da.from_array(bad, chunks=(50, 5))), per="feature")


def test_a_partial_fit_stream_of_dask_arrays_keeps_mergeable_quantiles():
    """partial_fit adds data, so selection (which needs all of it) is not used: the sketch's bound is stated."""
    x = np.random.default_rng(13).normal(size=(300_000, 20))
    r = normlab.Robust(per="feature")
    with dask.config.set(scheduler="sync"):
        for part in (x[:150_000], x[150_000:]):
            r.partial_fit(da.from_array(part, chunks=(50_000, 20)))
    assert 0 < r.quantile_rank_error_ <= 1e-3


def _impure_block(block):
    return block + np.random.default_rng().normal(size=block.shape)  # new values on every compute


def test_a_lazy_array_that_changes_between_passes_is_an_error(client):
    """A lazy Dask array that is not deterministic gives other values on each pass: refused with the fix."""
    base = da.zeros((300_000, 16), chunks=(50_000, 16))
    dx = base.map_blocks(_impure_block, dtype=np.float64, name="impure-block")
    with pytest.raises(DataError, match="persist a lazy Dask array"):
        normlab.stats(dx, per="feature")


def test_copies_of_persisted_chunks_never_pile_the_work_onto_one_worker(client):
    """After x.compute() (or replicate) both workers hold copies of chunks: the work is still split."""
    from normlab.adapters._dask_stats import _held

    x = uint8_stack(shape=(800, 8, 8, 3), seed=10)
    dx = client.persist(da.from_array(x, chunks=(50, 8, 8, 3)))
    client.replicate(dx)
    held = _held(dx)
    assert held is not None and len(held.groups) == 2
    sizes = sorted(len(idx) for idx in held.groups.values())
    assert sizes == [8, 8] and sorted(i for idx in held.groups.values() for i in idx) == list(range(16))
    assert_identical(normlab.stats(dx, per="channel"), normlab.stats(x, per="channel"))


def test_chunks_that_moved_are_read_by_tasks(client, monkeypatch):
    """Where a worker no longer holds what it was sent to read, the statistics come from tasks instead."""
    from distributed import get_task_stream

    from normlab.adapters import _dask_stats

    x = uint8_stack(shape=(300, 6, 6, 3), seed=4)
    dx = client.persist(da.from_array(x, chunks=(50, 6, 6, 3)))
    real = _dask_stats._held

    def swapped(arr):
        held = real(arr)
        workers = sorted(client.scheduler_info()["workers"])
        other = {w: workers[1 - workers.index(w)] for w in workers}
        held.groups = {other[w]: idx for w, idx in held.groups.items()}  # every chunk sent to the wrong worker
        return held

    monkeypatch.setattr(_dask_stats, "_held", swapped)
    with get_task_stream(client) as tasks:
        got = normlab.stats(dx, per="channel")
    assert [t for t in tasks.data if "normlab-chunk-" in str(t["key"])]
    assert_identical(got, normlab.stats(x, per="channel"))


def _read_in_place_from_a_task(keys, worker):
    from distributed import get_client

    from normlab.adapters._dask_stats import _chunks_part, _Held

    return _Held(get_client(), keys, {worker: list(range(len(keys)))}).run(_chunks_part, [None] * len(keys))


def test_a_task_never_waits_for_reads_in_place(client):
    """Inside a task the worker's thread may be the one the reads would queue behind: tasks instead."""
    from normlab.adapters._dask_stats import _held

    dx = client.persist(da.from_array(np.arange(100.0).reshape(50, 2), chunks=(25, 2)))
    held = _held(dx)
    w, idx = next(iter(held.groups.items()))
    assert client.submit(_read_in_place_from_a_task, [held.keys[i] for i in idx], w, pure=False).result() is None
