"""``normlab.compare`` and ``normlab.report``: the experiment bench's two library entry points.

:func:`compare` is four steps, each a module of its own: :func:`~normlab.experiments.plan.plan` checks
the configuration and lists the runs (a frozen ``Sweep`` of ``Task`` values), the store
(:func:`~normlab.experiments.store.open_store`) says which runs are already done,
:func:`~normlab.experiments.execute.execute` trains the others, and
:func:`~normlab.experiments.report.build_report` writes the report. :func:`report` is the last step alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normlab.experiments._common import CompareError
from normlab.experiments.execute import execute
from normlab.experiments.plan import plan
from normlab.experiments.report import build_report, format_table
from normlab.experiments.store import open_store

__all__ = ["ComparisonResult", "compare", "report"]


@dataclass
class ComparisonResult:
    """What :func:`compare` and :func:`report` return.

    Attributes
    ----------
    rundir : Path
        The run folder (results.sqlite, report.html, curves.png, final.png, summary.csv, epochs.csv,
        config.json).
    report_path : Path
    summary : list of dict
        One row per (model, method), the columns of summary.csv.
    ran : list of str
        Keys of the runs trained by this call; ``n_skipped`` runs were already in the store.
    n_planned, n_finished : int
        Runs in the configuration, and runs in the store now.
    """

    rundir: Path
    report_path: Path
    summary: list[dict[str, Any]]
    ran: list[str] = field(default_factory=list)
    n_skipped: int = 0
    n_planned: int = 0
    n_finished: int = 0

    @property
    def n_diverged(self) -> int:
        return int(sum(r["n_diverged"] for r in self.summary))

    @property
    def n_stalled(self) -> int:
        return int(sum(r["n_stalled"] for r in self.summary))

    def table(self) -> str:
        """The summary as a plain-text table."""
        return format_table(self.summary)

    def __repr__(self) -> str:
        return (
            f"ComparisonResult(rundir={str(self.rundir)!r}, runs={self.n_finished}/{self.n_planned}, "
            f"ran={len(self.ran)}, diverged={self.n_diverged}, stalled={self.n_stalled})"
        )


def compare(
    data: Any = None,
    *,
    methods: str | list[str] | None = None,
    model: str | list[str] | None = None,
    preset: str | None = None,
    seeds: int | None = None,
    init_seeds: int | None = None,
    order_seeds: int | None = None,
    seed: int = 0,
    optimizer: str | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    epochs: int | None = None,
    validation_split: float | None = None,
    limit: int | None = None,
    baseline: str | None = None,
    device: str = "auto",
    loss: str | None = None,
    engine: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    scheduler: Any = None,
    out: str | Path | None = None,
    data_options: dict[str, Any] | None = None,
    progress: bool | str = "auto",
    write_report: bool = True,
) -> ComparisonResult:
    """Train one model under several normalization methods over several seeds, and report the evidence.

    Every method's statistics are fitted on the training split only. Replicate *k* of every method uses
    the same weight-initialization seed and batch-order seed (a paired design), so differences between
    methods are measured against the same randomness. Each finished run is committed to the SQLite store
    in ``out`` before the next starts: calling ``compare`` again with the same arguments after an
    interruption trains only the missing runs. The folder then holds report.html, curves.png, final.png,
    summary.csv, epochs.csv and config.json.

    Parameters
    ----------
    data : str or dataset, default "digits"
        A spec for :func:`normlab.data.open` (``"digits"``, ``"mnist:DIR"``, ``"csv:FILE"``, ...) or an
        opened dataset (``normlab.data.open(...)``, ``normlab.data.from_arrays(x, y, validation_split=0.2)``).
    methods : str or list of str
        Comma-separated or a list of the steps of :data:`normlab.experiments.METHODS` (``normlab compare
        --list``), each alone or combined with ``+``, such as ``"standardize+batchnorm-all"``.
    model : str or list of str
        A name of :data:`normlab.experiments.MODELS`, or ``path/to/file.py:build`` where
        ``build(input_shape, n_classes)`` returns a ``torch.nn.Module`` (``input_shape`` channels-first
        for images) or a ``keras.Model``, compiled or not (``input_shape`` channels-last); several are
        compared side by side.
    preset : str, optional
        Start from the settings of a preset of :data:`normlab.experiments.PRESETS`; explicit arguments
        override them.
    seeds : int
        Replicates per method (paired: replicate *k* uses init seed and order seed ``seed + k``).
    init_seeds, order_seeds : int
        Vary the two kinds of randomness separately: every combination of ``init_seeds`` weight
        initializations and ``order_seeds`` batch orders (full factorial). Each count is at most 10,000,
        and a sweep at most 100,000 runs.
    seed : int
        The first seed.
    optimizer : {"adam", "sgd", "rmsprop"}
        With Keras' defaults (Adam: learning rate 0.001, epsilon 1e-7).
    lr, batch_size, epochs : number
        Learning rate (default: the optimizer's), batch size (32), epochs.
    validation_split : float, optional
        Hold out the last fraction of the training split as validation data (Keras-style). Without it
        the dataset's test split is used, or the last 20 % of train when there is none.
    limit : int, optional
        At most this many samples per split (stratified by class), for quick runs.
    baseline : str, optional
        The method the others are tested against (default: the first).
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` uses a CUDA GPU when PyTorch sees one.
    loss : {"logits", "keras-probs"}, optional
        The loss of training and evaluation (:data:`normlab.experiments.losses.LOSSES`): ``"logits"``
        (default) is cross-entropy on the logits; ``"keras-probs"`` is what Keras 3 on the torch and JAX
        backends computes for a softmax output (softmax, renormalized, clipped to [1e-7, 1 - 1e-7],
        ``-log``), whose gradient is zero outside the clip: runs can *stall*. Default: the engine's
        (``logits`` for torch, ``keras-probs`` for keras).
    engine : {"torch", "keras"}, optional
        Who trains the built-in models (:data:`normlab.experiments.engines.ENGINES`): the bench's PyTorch
        loop (default), or Keras' own ``model.fit`` on the PyTorch backend, the models written as Keras
        ``Sequential`` with a softmax output and ``categorical_crossentropy``. A ``model`` file whose
        builder returns a ``keras.Model`` always trains with Keras.
    workers : int, optional
        Worker processes (default: one per CPU core; up to 4 sharing a GPU; at most 4 per core). ``1``
        trains in this process. Workers never import your script again, so a plain script without
        ``if __name__ == "__main__":`` works.
    threads : int, optional
        PyTorch threads per worker (default ``cores // workers``, at least 1; at most 256). Numbers are
        bit-identical for the same configuration and the same threads per run; other thread counts change
        them at rounding level only (floating-point sums run in another order).
    scheduler : str or distributed.Client, optional
        Run the sweep on a Dask cluster instead of local worker processes: a scheduler address
        (``"tcp://host:8786"``), ``"local"``, or a Client (see :func:`normlab.adapters.dask.connect`). This
        process still commits every run, so resuming works the same.
    out : path, optional
        The run folder. Default: ``runs/<data>-<model>-<hash>``, named after the configuration, so the
        same call always resumes the same folder. A folder holding another configuration is refused, and
        so is a folder another running ``compare`` holds (one sweep per folder: no run is trained twice).
    data_options : dict, optional
        More options for :func:`normlab.data.open` (``target=``, ``resize=``, ...).
    progress : bool, "auto" or "log"
        Progress bar with ETA on stderr (``"auto"``: only on a terminal; ``"log"``: the bar on a terminal,
        otherwise a plain line every 30 seconds, as ``normlab compare`` does).
    write_report : bool
        Write the report files (default). ``False`` only stores the runs and returns the summary;
        :func:`report` writes the files later.

    Returns
    -------
    ComparisonResult
        ``.summary`` rows, ``.table()``, ``.report_path``, the runs trained now (``.ran``).

    Examples
    --------
    >>> import normlab
    >>> result = normlab.compare("digits", methods="none,standardize", model="logreg", seeds=2,
    ...                          epochs=2, workers=1, out=tmp / "digits", progress=False)  # doctest: +SKIP
    >>> [r["method"] for r in result.summary]  # doctest: +SKIP
    ['none', 'standardize']
    """
    sweep = plan(
        data, methods=methods, model=model, preset=preset, seeds=seeds, init_seeds=init_seeds,
        order_seeds=order_seeds, seed=seed, optimizer=optimizer, lr=lr, batch_size=batch_size,
        epochs=epochs, validation_split=validation_split, limit=limit, baseline=baseline,
        device=device, loss=loss, engine=engine, workers=workers, threads=threads, scheduler=scheduler, out=out,
        data_options=data_options,
    )  # fmt: skip
    with open_store(sweep.rundir, sweep.config, sweep.config_hash) as store:
        todo = sweep.pending(store.finished_keys())
        ran = execute(sweep, store, todo, progress=progress)
        built = build_report(store, sweep.rundir, baseline=sweep.baseline, write=write_report)
    return ComparisonResult(
        rundir=sweep.rundir,
        report_path=built["report"],
        summary=built["rows"],
        ran=ran,
        n_skipped=len(sweep.tasks) - len(todo),
        n_planned=len(sweep.tasks),
        n_finished=built["n_runs"],
    )


def report(rundir: str | Path, *, baseline: str | None = None) -> ComparisonResult:
    """Rebuild report.html, curves.png, final.png, summary.csv, epochs.csv and config.json of ``rundir``.

    Works on a finished or partly finished sweep; ``baseline`` picks another reference method.
    """
    rundir = Path(rundir)
    with open_store(rundir) as store:
        methods = store.config()["methods"]
        if baseline is not None and baseline not in methods:
            raise CompareError(
                f"baseline {baseline!r} is not among the methods of {rundir} ({', '.join(methods)}); "
                "expected one of them."
            )
        built = build_report(store, rundir, baseline=baseline)
    return ComparisonResult(
        rundir=rundir,
        report_path=built["report"],
        summary=built["rows"],
        n_planned=built["n_planned"],
        n_finished=built["n_runs"],
    )
