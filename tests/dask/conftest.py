"""One real LocalCluster of two worker processes, shared by the Dask tests (starting one takes seconds)."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("distributed")


@pytest.fixture(scope="session")
def client():
    from distributed import Client, LocalCluster

    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
        # The NumPy engine spares each worker process loading the compiled kernels (seconds); the engines
        # give identical results, and the in-process references use the default engine.
        env={"NORMLAB_ENGINE": "numpy"},
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
