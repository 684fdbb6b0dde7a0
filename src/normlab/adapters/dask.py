"""normlab on a Dask cluster: exact statistics of Dask collections and datasets, and the connection.

Statistics. ``Standardize().fit(x)``, ``partial_fit(x)`` and ``normlab.stats(x)`` accept a Dask array of
any chunking, a Dask DataFrame, a bag of batches or delayed batches (a list of them). Each chunk becomes a
:class:`~normlab.core.stats.StatsAccumulator` on the worker that holds it; accumulators are merged in a
tree and only the result comes back. Integer data give bit-identical statistics (quantiles included) to
the in-memory fit, whatever the chunking; float data agree to rounding (about 1e-15 relative). A chunk that
cuts through the entries of a statistic (e.g. the channel axis for ``per="channel"``) is re-cut first.

Datasets. A ``normlab.data`` dataset cuts itself into :class:`~normlab.data.Shard` objects that workers
read by themselves (IDX/``.npy`` row ranges, groups of image files, CIFAR batch files, Parquet row groups,
CSV byte ranges: ``dataset.shards()``, written next to each reader); :func:`dataset_bag` makes them the
partitions of a bag. ``normlab stats SPEC --scheduler ADDRESS`` uses it.

Sweeps. ``normlab compare --scheduler`` runs its tasks through :func:`connect` with
:func:`normlab.experiments.cluster.execute_tasks_on_cluster` (experiments sit above the adapters).

Examples
--------
>>> import dask, dask.array as da, numpy as np, normlab
>>> x = np.random.default_rng(0).integers(0, 256, size=(64, 8, 8, 3), dtype=np.uint8)
>>> dx = da.from_array(x, chunks=(10, 5, 8, 2))        # any chunking, channels cut too
>>> with dask.config.set(scheduler="sync"):             # or inside `with connect("local"):`
...     n = normlab.Standardize(per="channel").fit(dx)
>>> bool(np.array_equal(n.mean_, normlab.Standardize(per="channel").fit(x).mean_))
True
"""

from __future__ import annotations

from normlab.adapters._dask_cluster import ClusterError as ClusterError
from normlab.adapters._dask_cluster import connect as connect
from normlab.adapters._dask_stats import Shard as Shard  # (normlab.data.Shard)
from normlab.adapters._dask_stats import dataset_bag as dataset_bag
from normlab.adapters._dask_stats import dataset_shards as dataset_shards
from normlab.adapters._dask_stats import feed_collection as feed_collection
from normlab.adapters._dask_stats import transform as transform

__all__ = [
    "ClusterError",
    "Shard",
    "connect",
    "dataset_bag",
    "dataset_shards",
    "feed_collection",
    "transform",
]
