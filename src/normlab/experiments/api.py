"""``normlab.compare`` and ``normlab.report``: the experiment bench's two library entry points."""

from __future__ import annotations

import hashlib
import json
import math
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from normlab._progress import Progress
from normlab.experiments._common import CompareError, available_cores
from normlab.experiments.methods import FittedMethod, parse_methods
from normlab.experiments.models import ModelSpec, build_model, parse_model
from normlab.experiments.presets import resolve_preset
from normlab.experiments.report import build_report, format_table
from normlab.experiments.runner import default_workers, execute_tasks, threads_per_worker
from normlab.experiments.store import DB_NAME, open_store
from normlab.experiments.train import OPTIMIZERS, RunResult, TrainSettings

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

    def table(self) -> str:
        """The summary as a plain-text table."""
        return format_table(self.summary)

    def __repr__(self) -> str:
        return (
            f"ComparisonResult(rundir={str(self.rundir)!r}, runs={self.n_finished}/{self.n_planned}, "
            f"ran={len(self.ran)}, diverged={self.n_diverged})"
        )


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _load_data(
    data: Any, *, validation_split: float | None, limit: int | None, options: dict[str, Any]
) -> dict:
    """Open the data and return the training and validation splits plus what identifies them."""
    import normlab.data

    if isinstance(data, str) or hasattr(data, "__fspath__"):
        spec = str(data)
        opts = dict(options)
        if limit is not None:
            opts["limit"] = limit
        ds = normlab.data.open(spec, validation_split=validation_split, **opts)
        if validation_split is None and "test" not in ds.splits and "validation" not in ds.splits:
            validation_split = 0.2
            ds = normlab.data.open(spec, validation_split=validation_split, **opts)
    elif hasattr(data, "arrays") and hasattr(data, "splits"):
        if limit is not None or validation_split is not None or options:
            raise CompareError(
                "limit, validation_split and dataset options apply to a dataset spec; expected them on "
                "normlab.data.open(...) when you pass an opened dataset."
            )
        ds, spec = data, getattr(data, "name", "dataset")
    else:
        raise CompareError(
            f"data={type(data).__name__} is not a dataset; expected a spec such as 'digits' or "
            "'mnist:DIR', or a dataset from normlab.data.open() / normlab.data.from_arrays()."
        )
    # a spec's name loses its folders (moving the files changes nothing); a dataset object's is kept
    name = (
        _short_name(ds.name)
        if isinstance(data, str) or hasattr(data, "__fspath__")
        else str(ds.name)
    )
    val_split = (
        "validation" if "validation" in ds.splits else "test" if "test" in ds.splits else None
    )
    if val_split is None:
        raise CompareError(
            f"{ds.name} has no validation or test split (splits: {', '.join(ds.splits)}); expected one to "
            "measure validation metrics. Pass validation_split=0.2 (CLI: --validation-split 0.2)."
        )
    x_train, y_train = ds.arrays("train")
    x_val, y_val = ds.arrays(val_split)
    if y_train is None or y_val is None:
        raise CompareError(
            f"{ds.name} has no labels; expected a labelled classification dataset (for tables, name the "
            "label column with target=..., CLI --target COLUMN)."
        )
    y_train = np.asarray(y_train, dtype=np.int64)
    y_val = np.asarray(y_val, dtype=np.int64)
    n_classes = (
        getattr(ds, "n_classes", None) or int(max(y_train.max(initial=0), y_val.max(initial=0))) + 1
    )
    if len(x_train) < 2 or len(x_val) < 1:
        raise CompareError(
            f"{ds.name}: {len(x_train)} training and {len(x_val)} validation samples; expected at least 2 and 1. "
            "Use a larger --limit."
        )
    x_train, x_val = np.ascontiguousarray(x_train), np.ascontiguousarray(x_val)
    digest = hashlib.blake2b(digest_size=12)
    for a in (x_train, y_train, x_val, y_val):
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    if val_split == "validation":
        how = (
            f"last {ds.validation_split:g} of train"
            if not getattr(ds, "shuffle_split", False)
            else (f"random {ds.validation_split:g} of train")
        )
    else:
        how = "the dataset's test split"
    return {
        "spec": spec,
        "name": name,
        "arrays": (x_train, y_train, x_val, y_val),
        "identity": {
            "name": name,
            "fingerprint": digest.hexdigest(),
            "n_train": len(x_train),
            "n_val": len(x_val),
            "validation": how,
            "sample_shape": list(x_train.shape[1:]),
            "dtype": x_train.dtype.name,
            "n_classes": int(n_classes),
        },
    }


def _short_name(name: str) -> str:
    """A dataset's name without its folders, so that moving the files changes nothing.

    >>> _short_name("mnist:/data/mnist"), _short_name("csv:/home/u/train.csv"), _short_name("digits")
    ('mnist', 'csv:train.csv', 'digits')
    >>> _short_name("mnist:mnist"), _short_name("/data/x_train.npy")
    ('mnist', 'x_train.npy')
    """
    kind, sep, path = str(name).partition(":")
    if not sep or not path:
        return Path(str(name)).name or str(name)
    base = Path(path.rstrip("/\\")).name
    return kind if base == kind else f"{kind}:{base}"


def _seed_pairs(
    seeds: int | None, init_seeds: int | None, order_seeds: int | None, base: int
) -> dict[str, Any]:
    for name, v in (("seeds", seeds), ("init_seeds", init_seeds), ("order_seeds", order_seeds)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise CompareError(f"{name}={v!r} is not a positive count; expected e.g. {name}=5.")
    if init_seeds is None and order_seeds is None:
        n = int(seeds or 1)
        ks = list(range(base, base + n))
        return {"design": "paired", "init": ks, "order": ks, "pairs": [[k, k] for k in ks]}
    init = list(range(base, base + int(init_seeds or 1)))
    order = list(range(base, base + int(order_seeds or 1)))
    return {
        "design": "factorial",
        "init": init,
        "order": order,
        "pairs": [[i, o] for i in init for o in order],
    }


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CompareError(
            f"device={device!r} but PyTorch sees no CUDA GPU (torch {torch.__version__}); expected a machine "
            "with a GPU and a CUDA build of torch. Use device='auto' or 'cpu'."
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise CompareError(f"device={device!r} is not supported; expected 'auto', 'cpu' or 'cuda'.")
    return device


def _check_models(
    models: list[ModelSpec],
    methods: list[Any],
    sample_shape: tuple[int, ...],
    n_classes: int,
    x_probe: np.ndarray,
) -> None:
    """Build every (model, BatchNorm variant) once and run two samples through it: fail before the sweep."""
    import torch

    from normlab.experiments.models import to_model_input

    probe = torch.from_numpy(to_model_input(np.asarray(x_probe[:2], dtype=np.float32)))
    variants = {(m.batchnorm_input, m.batchnorm_all) for m in methods}
    for spec in models:
        for bn_in, bn_all in sorted(variants):
            model = build_model(
                spec, sample_shape, n_classes, batchnorm_input=bn_in, batchnorm_all=bn_all
            )
            model.train()
            try:
                with torch.no_grad():
                    out = model(probe)
            except Exception as e:
                raise CompareError(
                    f"model {spec.name} failed on a batch of shape {tuple(probe.shape)}: {type(e).__name__}: {e}"
                ) from e
            if tuple(out.shape) != (probe.shape[0], n_classes):
                raise CompareError(
                    f"model {spec.name} returned shape {tuple(out.shape)} for a batch of {probe.shape[0]}; "
                    f"expected ({probe.shape[0]}, {n_classes}) class logits (no softmax: the loss applies it)."
                )


def _default_out(identity: dict[str, Any], config_hash: str) -> Path:
    name = identity["data"]["name"].split(":")[0]
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "data"
    models = "-".join(identity["models"])
    models = "".join(c if c.isalnum() or c in "-_" else "-" for c in models)[:40]
    return Path("runs") / f"{safe}-{models}-{config_hash[:8]}"


def _versions() -> dict[str, str]:
    import torch

    import normlab

    return {
        "normlab": getattr(normlab, "__version__", "?"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _write_cache(
    rundir: Path,
    arrays: tuple[np.ndarray, ...],
    fitted: dict[str, FittedMethod],
    methods: list[str],
) -> tuple[Path, dict[str, list[str]]]:
    """Preprocess every split with every method once, in the models' layout, for the workers to load.

    The paths are absolute: a worker may run in another folder (``dask worker`` started elsewhere).
    """
    from normlab.experiments.models import to_model_input

    cache = rundir.absolute() / ".cache"
    cache.mkdir(exist_ok=True)

    def save(name: str, a: np.ndarray) -> str:
        path = cache / f"{name}.npy"
        tmp = cache / f"{name}.tmp.npy"
        np.save(tmp, a)
        tmp.replace(path)
        return str(path)

    y_train = save("y_train", np.asarray(arrays[1], dtype=np.int64))
    y_val = save("y_val", np.asarray(arrays[3], dtype=np.int64))
    files = {}
    for i, name in enumerate(methods):
        x_train = save(f"m{i}_x_train", to_model_input(fitted[name].transform(arrays[0])))
        x_val = save(f"m{i}_x_val", to_model_input(fitted[name].transform(arrays[2])))
        files[name] = [x_train, y_train, x_val, y_val]
    return cache, files


# --------------------------------------------------------------------------------------------------
# compare / report
# --------------------------------------------------------------------------------------------------


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
        Comma-separated or a list: ``none``, ``scale``, ``max``, ``center``, ``standardize``,
        ``minmax-sample``, ``l2-axis1``, ``robust``, ``batchnorm-input``, ``batchnorm-all`` and
        combinations such as ``"standardize+batchnorm-all"``. See :data:`normlab.experiments.METHODS`.
    model : str or list of str
        ``logreg``, ``mlp``, ``lenet``, ``cnn``, ``lstm``, ``gru`` or ``path/to/file.py:build`` where
        ``build(input_shape, n_classes)`` returns a ``torch.nn.Module``; several are compared side by side.
    preset : {"mnist-cnn", "rows-lstm", "tabular-logreg"}, optional
        Start from a preset's settings; explicit arguments override them.
    seeds : int
        Replicates per method (paired: replicate *k* uses init seed and order seed ``seed + k``).
    init_seeds, order_seeds : int
        Vary the two kinds of randomness separately: every combination of ``init_seeds`` weight
        initializations and ``order_seeds`` batch orders (full factorial).
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
    workers : int, optional
        Worker processes (default: one per CPU core; up to 4 sharing a GPU). ``1`` trains in this
        process.
    threads : int, optional
        PyTorch threads per worker (default ``cores // workers``, at least 1). Numbers are bit-identical
        for the same configuration and the same threads per run; other thread counts change them at
        rounding level only (floating-point sums run in another order).
    scheduler : str or distributed.Client, optional
        Run the sweep on a Dask cluster instead of local worker processes: a scheduler address
        (``"tcp://host:8786"``), ``"local"``, or a Client (see :func:`normlab.adapters.dask.connect`). This
        process still commits every run, so resuming works the same.
    out : path, optional
        The run folder. Default: ``runs/<data>-<model>-<hash>``, named after the configuration, so the
        same call always resumes the same folder. A folder holding another configuration is refused.
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
    given_seeds = seeds
    values = resolve_preset(
        preset,
        {
            "data": data,
            "methods": methods,
            "model": model,
            "seeds": seeds,
            "optimizer": optimizer,
            "batch_size": batch_size,
            "epochs": epochs,
            "validation_split": validation_split,
            "lr": lr,
        },
    )
    if (init_seeds is not None or order_seeds is not None) and given_seeds is not None:
        raise CompareError(
            "seeds= together with init_seeds=/order_seeds=; expected one design: seeds=N (paired replicates) "
            "or init_seeds=I and/or order_seeds=J (every combination)."
        )
    method_specs = parse_methods(values["methods"])
    names = [m.name for m in method_specs]
    baseline = baseline or names[0]
    if baseline not in names:
        raise CompareError(
            f"baseline {baseline!r} is not among the methods ({', '.join(names)}); expected one of them."
        )
    model_names = (
        values["model"].split(",") if isinstance(values["model"], str) else list(values["model"])
    )
    model_specs = [parse_model(m) for m in model_names if m.strip()]
    if not model_specs:
        raise CompareError("no model given; expected e.g. model='mlp'.")
    if len({m.name for m in model_specs}) != len(model_specs):
        raise CompareError(f"model list {model_names} names a model twice; expected each once.")
    opt = str(values["optimizer"])
    if opt not in OPTIMIZERS:
        raise CompareError(f"unknown optimizer {opt!r}; expected one of {', '.join(OPTIMIZERS)}.")
    for name in ("batch_size", "epochs"):
        v = values[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise CompareError(f"{name}={v!r} is not a positive integer; expected e.g. {name}=32.")
    if values.get("lr") is not None and not (
        float(values["lr"]) > 0 and math.isfinite(float(values["lr"]))
    ):
        raise CompareError(
            f"lr={values['lr']!r} is not a positive learning rate; expected e.g. 0.001."
        )
    settings = TrainSettings(
        optimizer=opt,
        lr=values.get("lr"),
        batch_size=int(values["batch_size"]),
        epochs=int(values["epochs"]),
    )
    seed_info = _seed_pairs(
        values["seeds"] if init_seeds is None and order_seeds is None else None,
        init_seeds,
        order_seeds,
        int(seed),
    )
    dev = _resolve_device(device)

    loaded = _load_data(
        values["data"],
        validation_split=values.get("validation_split"),
        limit=limit,
        options=dict(data_options or {}),
    )
    arrays = loaded["arrays"]
    ident = loaded["identity"]
    sample_shape = tuple(ident["sample_shape"])
    fitted: dict[str, FittedMethod] = {m.name: m.fit(arrays[0]) for m in method_specs}
    _check_models(model_specs, method_specs, sample_shape, ident["n_classes"], arrays[0])

    identity = {
        "data": ident,
        "models": [m.name for m in model_specs],
        "model_fingerprints": [m.fingerprint for m in model_specs],
        "methods": names,
        "seeds": seed_info,
        "optimizer": opt,
        "lr": settings.learning_rate,
        "batch_size": settings.batch_size,
        "epochs": settings.epochs,
        "explode_factor": settings.explode_factor,
    }
    config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    rundir = Path(out) if out is not None else _default_out(identity, config_hash)
    cores = available_cores()
    pairs = seed_info["pairs"]
    all_tasks = [
        {
            "key": f"{ms.name}|{m.name}|init={i}|order={o}",
            "model": ms.name,
            "method": m.name,
            "init_seed": i,
            "order_seed": o,
        }
        for i, o in pairs
        for ms in model_specs
        for m in method_specs
    ]

    store = open_store(rundir, identity, config_hash)
    try:
        done = store.finished_keys()
        todo = [t for t in all_tasks if t["key"] not in done]
        n_workers = workers if workers is not None else default_workers(len(todo), dev, cores)
        if (
            isinstance(n_workers, bool)
            or not isinstance(n_workers, (int, np.integer))
            or n_workers < 1
        ):
            raise CompareError(
                f"workers={workers!r} is not a positive integer; expected e.g. workers=2."
            )
        n_workers = max(1, min(int(n_workers), max(1, len(todo))))
        threads_given = threads
        if threads is None:
            threads = threads_per_worker(cores, n_workers)
        elif isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise CompareError(
                f"threads={threads!r} is not a positive integer; expected e.g. threads=1."
            )
        run_settings = {
            "baseline": baseline,
            "device": dev,
            "workers": n_workers,
            "threads": threads,
            "scheduler": None if scheduler is None else str(scheduler),
            "data_spec": loaded["spec"],
            "preset": preset,
            "versions": _versions(),
            "config_hash": config_hash,
            "platform": platform.platform(),
        }
        store.set_meta("settings", json.dumps(run_settings, sort_keys=True))
        for spec in method_specs:
            layers = [
                text
                for flag, text in (
                    (spec.batchnorm_input, "BatchNorm (no affine) as the first layer"),
                    (spec.batchnorm_all, "BatchNorm after every hidden layer"),
                )
                if flag
            ]
            what = fitted[spec.name].describe() or "raw input"
            store.save_method(spec.name, "; ".join([what, *layers]), fitted[spec.name].notes)
        store.begin_session(len(todo))
        ran: list[str] = []
        if todo:
            needed = [m for m in names if any(t["method"] == m for t in todo)]
            cache, files = _write_cache(rundir, arrays, fitted, needed)
            specs = {m.name: m for m in model_specs}
            flags = {m.name: (m.batchnorm_input, m.batchnorm_all) for m in method_specs}
            for t in todo:
                t.update(
                    model_spec=specs[t["model"]],
                    files=files[t["method"]],
                    sample_shape=list(sample_shape),
                    n_classes=ident["n_classes"],
                    batchnorm_input=flags[t["method"]][0],
                    batchnorm_all=flags[t["method"]][1],
                )
            bar = Progress(
                total=len(todo) * settings.epochs, desc="compare", unit="epochs", show=progress
            )
            counted: dict[str, int] = {}
            finished = [0]

            def on_epoch(key: str, epoch: int) -> None:
                counted[key] = counted.get(key, 0) + 1
                bar.update(1, postfix=f"runs {finished[0]}/{len(todo)}")

            def on_result(task: dict[str, Any], result: RunResult) -> None:
                store.add_run(task["key"], task, result)
                ran.append(task["key"])
                finished[0] += 1
                bar.update(
                    settings.epochs - counted.get(task["key"], 0),
                    postfix=f"runs {finished[0]}/{len(todo)}",
                )

            with bar:
                if scheduler is None:
                    execute_tasks(
                        todo,
                        settings,
                        device=dev,
                        workers=n_workers,
                        threads=threads,
                        on_result=on_result,
                        on_epoch=on_epoch,
                    )
                else:
                    from normlab.adapters.dask import connect, execute_tasks_on_cluster

                    with connect(scheduler) as client:
                        execute_tasks_on_cluster(
                            todo,
                            settings,
                            client=client,
                            on_result=on_result,
                            on_epoch=on_epoch,
                            device=dev,
                            threads=threads_given,  # None: what each Dask worker is configured for
                        )
            shutil.rmtree(cache, ignore_errors=True)
        built = build_report(store, rundir, baseline=baseline, write=write_report)
    finally:
        store.close()
    return ComparisonResult(
        rundir=rundir,
        report_path=built["report"],
        summary=built["rows"],
        ran=ran,
        n_skipped=len(all_tasks) - len(todo),
        n_planned=len(all_tasks),
        n_finished=built["n_runs"],
    )


def report(rundir: str | Path, *, baseline: str | None = None) -> ComparisonResult:
    """Rebuild report.html, curves.png, final.png, summary.csv, epochs.csv and config.json of ``rundir``.

    Works on a finished or partly finished sweep; ``baseline`` picks another reference method.
    """
    rundir = Path(rundir)
    if not (rundir / DB_NAME).is_file():
        raise CompareError(
            f"{rundir} is not a comparison run folder (no {DB_NAME}); expected the --out folder of a "
            "`normlab compare` run."
        )
    store = open_store(rundir)
    try:
        methods = store.config()["methods"]
        if baseline is not None and baseline not in methods:
            raise CompareError(
                f"baseline {baseline!r} is not among the methods of {rundir} ({', '.join(methods)}); "
                "expected one of them."
            )
        built = build_report(store, rundir, baseline=baseline)
    finally:
        store.close()
    return ComparisonResult(
        rundir=rundir,
        report_path=built["report"],
        summary=built["rows"],
        n_planned=built["n_planned"],
        n_finished=built["n_runs"],
    )
