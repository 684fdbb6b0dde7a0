"""File-based datasets read in shards by Dask workers give the statistics of a local pass."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

import normlab
import normlab.data
from normlab.adapters.dask import ClusterError, Shard, connect, dataset_bag, dataset_shards
from normlab.cli.main import main
from normlab.errors import DatasetError, NormlabWarning

FIELDS = ("count", "mean", "var", "min", "max")


def assert_identical(got, want) -> None:
    assert (got.per, got.layout, got.sample_shape, got.n_samples, got.dtype) == (
        want.per, want.layout, want.sample_shape, want.n_samples, want.dtype,
    )  # fmt: skip
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    for q in want.quantiles:
        np.testing.assert_array_equal(got.quantiles[q], want.quantiles[q], err_msg=f"q={q}")


def test_mnist_statistics_from_shards_on_workers_equal_the_local_pass(client, shared_data):
    ds = normlab.data.open(f"mnist:{shared_data / 'mnist'}")
    assert len(dataset_shards(ds, "test")) == 1  # a gzip stream is read from its start: one shard by default
    got = normlab.stats(dataset_bag(ds, "test", n_shards=3))
    want = normlab.stats(ds, split="test")
    assert_identical(got, want)
    assert got.n_samples == 10000
    np.testing.assert_allclose(got.mean / 255, [0.132515], atol=5e-7)  # the t10k figures of shared/data
    np.testing.assert_allclose(got.std / 255, [0.310480], atol=5e-7)


def test_uncompressed_idx_is_cut_into_row_ranges_one_per_worker_thread_pair(client, shared_data, tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(shared_data / "mnist" / f"{name}.gz", "rb") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    ds = normlab.data.open(f"mnist:{tmp_path}")
    shards = dataset_shards(ds, "test")
    assert len(shards) == 4  # at least two per worker thread of the active client
    assert [s.n for s in shards] == [2500] * 4 and all(isinstance(s, Shard) for s in shards)
    assert_identical(normlab.stats(dataset_bag(ds, "test"), per="global"), normlab.stats(ds, split="test", per="global"))
    limited = normlab.data.open(f"mnist:{tmp_path}", limit=999, seed=3)  # a stratified subset: index shards
    assert_identical(normlab.stats(dataset_bag(limited, "test", n_shards=3)), normlab.stats(limited, split="test"))


def test_image_folder_shards_are_groups_of_files_and_skipped_files_come_back(client, shared_data, tmp_path):
    folder = shared_data / "cifar10-jpg-subset" / "test"
    ds = normlab.data.open(f"images:{folder}")
    shards = dataset_shards(ds, n_shards=5)
    assert sum(len(s.source.files) for s in shards) == 1000
    assert_identical(normlab.stats(dataset_bag(ds, n_shards=5)), normlab.stats(ds))

    for cls in ("cat", "dog"):
        shutil.copytree(folder / cls, tmp_path / cls)
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"not a jpeg at all")
    local = normlab.data.open(f"images:{tmp_path}", on_error="skip")
    remote = normlab.data.open(f"images:{tmp_path}", on_error="skip")
    with pytest.warns(NormlabWarning, match="skipped 1 unreadable"):
        want = normlab.stats(local)
    with pytest.warns(NormlabWarning, match=r"skipped 1 unreadable image file\(s\) \(first: .*broken\.jpg"):
        got = normlab.stats(dataset_bag(remote, n_shards=3))
    assert [p for p, _ in remote.skipped] == [str(tmp_path / "dog" / "broken.jpg")]
    assert_identical(got, want)
    assert got.n_samples == 200


def test_csv_byte_ranges_and_parquet_row_groups(client, tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.integers(-50, 50, 3000), "b": rng.integers(0, 7, 3000),
                          "label": rng.integers(0, 3, 3000)})  # fmt: skip
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet", row_group_size=400)
    for spec in (f"csv:{tmp_path / 't.csv'}", f"parquet:{tmp_path / 't.parquet'}"):
        ds = normlab.data.open(spec, target="label")
        got = normlab.stats(dataset_bag(ds, n_shards=4))
        assert_identical(got, normlab.stats(ds))
        assert got.n_samples == 3000
    parquet = dataset_shards(normlab.data.open(f"parquet:{tmp_path / 't.parquet'}", target="label"), n_shards=3)
    assert [s.n for s in parquet] == [1200, 800, 1000]  # whole row groups of 400 (the last holds 200)


def test_csv_with_line_breaks_inside_quotes_is_refused_when_cut(client, tmp_path):
    lines = ["a,note"] + [f'{i},"line one\nline two"' for i in range(200)]
    (tmp_path / "q.csv").write_text("\n".join(lines) + "\n")
    ds = normlab.data.open(f"csv:{tmp_path / 'q.csv'}", drop=["note"])
    assert normlab.stats(ds).n_samples == 200
    with pytest.raises(DatasetError, match="without --scheduler"):
        normlab.stats(dataset_bag(ds, n_shards=7))


def test_cli_stats_with_a_scheduler_address_prints_the_local_numbers(client, tmp_path, capsys):
    x = np.random.default_rng(1).integers(0, 4096, size=(300, 6, 5, 2), dtype=np.uint16)
    np.save(tmp_path / "x.npy", x)
    assert main(["stats", str(tmp_path / "x.npy"), "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["stats", str(tmp_path / "x.npy"), "--json", "--scheduler", client.scheduler.address]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote == local and remote["n_samples"] == 300


def test_float_npy_on_a_scheduler_gives_the_local_exact_quantiles(client, tmp_path, capsys):
    """A float file past the one-pass store: locally and on the workers alike its quantiles are selected
    exactly (each pass reads the shards again), so --scheduler prints the same numbers, not a sketch's."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(110_000, 40)) * np.geomspace(0.01, 15, 40) + np.geomspace(0.3, 3e12, 40)
    np.save(tmp_path / "x.npy", x)
    assert main(["stats", str(tmp_path / "x.npy"), "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["stats", str(tmp_path / "x.npy"), "--json", "--scheduler", client.scheduler.address]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote["quantile_rank_error"] == local["quantile_rank_error"] == 0.0
    for name in ("q25", "median", "q75", "min", "max", "count"):  # float moments agree to rounding only
        assert [e[name] for e in remote["entries"]] == [e[name] for e in local["entries"]], name
    assert [e["median"] for e in remote["entries"]] == np.quantile(x, 0.5, axis=0).tolist()


def test_an_unreachable_scheduler_is_one_readable_error():
    with pytest.raises(ClusterError, match=r"cannot reach a Dask scheduler at tcp://127\.0\.0\.1:9.*--scheduler local"):
        with connect("127.0.0.1:9", timeout=0.5):
            pass


@pytest.mark.slow
def test_cli_stats_with_a_local_cluster_of_its_own(tmp_path, capsys):
    x = np.random.default_rng(2).integers(0, 256, size=(200, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    assert main(["stats", str(tmp_path / "x.npy"), "--json", "--scheduler", "local"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["mean"] for e in doc["entries"]] == normlab.stats(x).mean.tolist()
