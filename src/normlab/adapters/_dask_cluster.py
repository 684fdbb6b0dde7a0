"""Connecting to a Dask cluster: a scheduler address, ``"local"`` for a LocalCluster, or a Client."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from normlab.errors import ClusterError, NormlabError

__all__ = ["ClusterError", "connect", "require_dask"]


def require_dask(what: str) -> None:
    """Raise a readable error when dask or distributed is missing."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as err:
        raise NormlabError(
            f"{what} needs dask and distributed, which are not installed ({err}); expected them for Dask "
            "input and --scheduler. Install them with: pip install 'normlab[dask]'"
        ) from None


@contextmanager
def connect(
    scheduler: Any = "local",
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    timeout: float = 30.0,
) -> Iterator[Any]:
    """A :class:`distributed.Client` for ``scheduler``, closed (with its LocalCluster) on exit.

    Parameters
    ----------
    scheduler : str or distributed.Client
        ``"tcp://host:8786"`` (a running ``dask scheduler``), ``"local"`` for a
        :class:`distributed.LocalCluster` of worker processes on this machine, or a Client to use as is
        (it is left open).
    n_workers, threads_per_worker : int
        For ``"local"`` only: worker processes (default: one per CPU core) and threads in each.
    timeout : float
        Seconds to wait for the scheduler.

    While the block runs, the client is Dask's default scheduler, so ``normlab.stats(bag)`` and
    ``Standardize().fit(dask_array)`` compute on it.
    """
    require_dask(f"connect({scheduler!r})")
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ClusterError(
            f"connect() received scheduler={scheduler!r}; expected an address such as 'tcp://10.0.0.5:8786', "
            "'local', or a distributed.Client."
        )
    address = scheduler.strip()
    if address == "local":
        workers = n_workers or max(1, (os.cpu_count() or 1) // max(1, threads_per_worker))
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        try:
            with Client(cluster, timeout=timeout) as client:
                yield client
        finally:
            cluster.close()
        return
    if "://" not in address:
        address = f"tcp://{address}"
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise ClusterError(
            f"cannot reach a Dask scheduler at {address} ({err}); expected a running scheduler. Start one "
            "with `dask scheduler` and workers with `dask worker ADDRESS`, or use --scheduler local."
        ) from None
    with client:
        yield client
