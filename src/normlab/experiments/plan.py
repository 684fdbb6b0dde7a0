"""The plan of a comparison: the whole configuration as a frozen :class:`Sweep`, every run a :class:`Task`.

:func:`plan` is the first of the four steps of :func:`normlab.compare` (plan → store → execute → report).
It merges the defaults, the preset and the arguments, checks every one of them, opens the data, fits
every method's statistics on the training split, builds every model once on two samples (so that a
mistake fails before the sweep, not in its first run), and lists the runs. Nothing is changed afterwards.

A run's identity is (dataset, model, method, init seed, order seed, hyper-parameters): the dataset and
the hyper-parameters are the sweep's configuration, whose hash names the run folder's configuration
(``config_hash``); the rest is the :attr:`Task.key` of the run inside it. The same configuration gives the
same hash and keys, so an existing run folder resumes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normlab.experiments._common import (
    CompareError,
    available_cores,
    check_positive_int,
    check_positive_number,
)
from normlab.experiments.engines import get_engine
from normlab.experiments.keras_models import is_keras_model, keras_device
from normlab.experiments.losses import get_loss
from normlab.experiments.methods import FittedMethod, MethodSpec, parse_methods
from normlab.experiments.models import ModelSpec, model_input_shape, parse_model
from normlab.experiments.presets import DEFAULTS, resolve_preset
from normlab.experiments.splits import SweepData, load_data
from normlab.experiments.train import OPTIMIZERS, TrainSettings

__all__ = ["MAX_RUNS", "MAX_SEED", "MAX_SEEDS", "MAX_SIDE", "MAX_THREADS", "Sweep", "Task", "cache_folder", "plan",
           "prepared_files"]  # fmt: skip

#: Limits checked before anything is allocated: seeds per kind, runs per sweep, threads per worker, the
#: side of a resized image in pixels (the bench holds every split in memory), and local workers per core.
MAX_SEEDS = 10_000
MAX_SEED = 2**63 - 1
MAX_RUNS = 100_000
MAX_THREADS = 256
MAX_SIDE = 8192
WORKERS_PER_CORE = 4


def cache_folder(rundir: Path) -> Path:
    """Where the preprocessed splits are written for the workers (absolute: a worker may run elsewhere)."""
    return Path(rundir).absolute() / ".cache"


def prepared_files(cache: Path, index: int) -> tuple[str, str, str, str]:
    """Where the splits preprocessed by method number ``index`` are kept: ``(x_train, y_train, x_val, y_val)``."""
    return tuple(
        str(cache / f"{name}.npy")
        for name in (f"m{index}_x_train", "y_train", f"m{index}_x_val", "y_val")
    )  # type: ignore[return-value]


@dataclass(frozen=True)
class Task:
    """One run: a model trained on the splits of one method under one init seed and one order seed.

    ``key`` identifies the run inside its sweep; the other fields are what a worker needs to run it.
    Worker processes and Dask workers receive its plain-dict form (:meth:`to_dict`, pickled), which
    :meth:`from_dict` turns back.

    Attributes
    ----------
    model, method : str
        The model's and the method's names, as results call them.
    init_seed, order_seed : int
        The seed of the weight initialization and of the batch order.
    model_spec : ModelSpec
    sample_shape : tuple of int
        A sample's shape in the datasets' layout, e.g. ``(h, w, c)``.
    n_classes : int
    batchnorm_input, batchnorm_all : bool
        The layers the method adds to the model.
    files : tuple of str
        The preprocessed splits ``(x_train, y_train, x_val, y_val)`` as ``.npy`` files (absolute paths).
    engine : str
        Who trains it (:data:`normlab.experiments.engines.ENGINES`).
    """

    model: str
    method: str
    init_seed: int
    order_seed: int
    model_spec: ModelSpec
    sample_shape: tuple[int, ...]
    n_classes: int
    batchnorm_input: bool
    batchnorm_all: bool
    files: tuple[str, ...]
    engine: str = "torch"

    @property
    def key(self) -> str:
        """The run's key in the store, e.g. ``"mlp|standardize|init=0|order=0"``."""
        return f"{self.model}|{self.method}|init={self.init_seed}|order={self.order_seed}"

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form that crosses to worker processes (with ``key``)."""
        return {
            "key": self.key, "model": self.model, "method": self.method,
            "init_seed": self.init_seed, "order_seed": self.order_seed, "model_spec": self.model_spec,
            "files": list(self.files), "sample_shape": list(self.sample_shape),
            "n_classes": self.n_classes, "batchnorm_input": self.batchnorm_input,
            "batchnorm_all": self.batchnorm_all, "engine": self.engine,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, task: dict[str, Any]) -> Task:
        """The task of a plain-dict form (``key`` is derived, not read)."""
        return cls(
            model=task["model"], method=task["method"], init_seed=int(task["init_seed"]),
            order_seed=int(task["order_seed"]), model_spec=task["model_spec"],
            sample_shape=tuple(task["sample_shape"]), n_classes=int(task["n_classes"]),
            batchnorm_input=bool(task["batchnorm_input"]), batchnorm_all=bool(task["batchnorm_all"]),
            files=tuple(str(f) for f in task["files"]), engine=str(task.get("engine", "torch")),
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class Sweep:
    """The whole configuration of a comparison, checked, with its data, fitted methods and runs.

    Attributes
    ----------
    data : SweepData
        The training and validation splits and their identity.
    models, methods : tuple
        The parsed ``ModelSpec`` and ``MethodSpec`` values, in the order given.
    fitted : dict
        Method name → its :class:`FittedMethod` (statistics of the training split).
    settings : TrainSettings
        The hyper-parameters every run shares.
    baseline, device, preset : str
        The method the others are tested against, the torch device, the preset (or None).
    workers, threads : int or None
        As requested (None: chosen when the sweep runs, from the runs left to do).
    scheduler : str or distributed.Client or None
        A Dask cluster to run on instead of local worker processes.
    config : dict
        The run folder's configuration: data identity, models, methods, seeds, hyper-parameters.
    config_hash : str
        Its hash; a run folder holds one configuration.
    rundir : Path
        The run folder (``runs/<data>-<model>-<hash>`` unless given).
    tasks : tuple of Task
        Every run, seed pairs outermost, then models, then methods.
    """

    data: SweepData
    models: tuple[ModelSpec, ...]
    methods: tuple[MethodSpec, ...]
    fitted: dict[str, FittedMethod]
    settings: TrainSettings
    baseline: str
    device: str
    preset: str | None
    workers: int | None
    threads: int | None
    scheduler: Any
    config: dict[str, Any]
    config_hash: str
    rundir: Path
    tasks: tuple[Task, ...]

    @property
    def cache(self) -> Path:
        """The folder of :func:`prepared_files`, inside the run folder."""
        return cache_folder(self.rundir)

    def pending(self, finished: set[str]) -> list[Task]:
        """The tasks whose key is not among ``finished``, in plan order."""
        return [t for t in self.tasks if t.key not in finished]


def plan(
    data: Any = None, *, methods: Any = None, model: Any = None, preset: str | None = None,
    seeds: int | None = None, init_seeds: int | None = None, order_seeds: int | None = None,
    seed: int = 0, optimizer: str | None = None, lr: float | None = None,
    batch_size: int | None = None, epochs: int | None = None, validation_split: float | None = None,
    limit: int | None = None, baseline: str | None = None, device: str = "auto", loss: str | None = None,
    engine: str | None = None,
    workers: int | None = None, threads: int | None = None, scheduler: Any = None,
    out: str | Path | None = None, data_options: dict[str, Any] | None = None,
) -> Sweep:  # fmt: skip
    """Check the arguments of :func:`normlab.compare`, open the data, fit the methods and list the runs."""
    given = {"data": data, "methods": methods, "model": model, "seeds": seeds, "optimizer": optimizer,
             "batch_size": batch_size, "epochs": epochs, "validation_split": validation_split, "lr": lr,
             "loss": loss, "engine": engine, "init_seeds": init_seeds, "order_seeds": order_seeds}  # fmt: skip
    if seeds is not None:  # the user's design replaces a preset's
        given["init_seeds"] = given["order_seeds"] = None
    values = resolve_preset(preset, given)
    if seeds is None and init_seeds is None and order_seeds is None:
        init_seeds, order_seeds = values.get("init_seeds"), values.get("order_seeds")
    if (init_seeds is not None or order_seeds is not None) and seeds is not None:
        raise CompareError(
            "seeds= together with init_seeds=/order_seeds=; expected one design: seeds=N (paired replicates) "
            "or init_seeds=I and/or order_seeds=J (every combination)."
        )
    method_specs = tuple(parse_methods(values["methods"]))
    baseline = _baseline(baseline, method_specs)
    model_specs = _models(values["model"])
    settings = _settings(values)
    seed_info = seed_design(
        values["seeds"] if init_seeds is None and order_seeds is None else None,
        init_seeds, order_seeds, seed,
    )  # fmt: skip
    _check_resources(workers, threads, data_options, len(method_specs) * len(model_specs), seed_info)
    dev = _resolve_device(device)
    sweep_data = load_data(values["data"], validation_split=values.get("validation_split"),
                           limit=limit, options=dict(data_options or {}))  # fmt: skip
    fitted = {m.name: m.fit(sweep_data.arrays[0]) for m in method_specs}
    engines = _check_models(model_specs, method_specs, sweep_data, settings, str(values["engine"]), dev)
    config = {
        "data": sweep_data.identity,
        "models": [m.name for m in model_specs],
        "model_fingerprints": [m.fingerprint for m in model_specs],
        "methods": [m.name for m in method_specs],
        "seeds": seed_info,
        "optimizer": settings.optimizer,
        "lr": settings.learning_rate,
        "batch_size": settings.batch_size,
        "epochs": settings.epochs,
        "explode_factor": settings.explode_factor,
    }
    # only when not the defaults: the run folders written before these existed keep resuming
    if settings.loss != TrainSettings.loss:
        config["loss"] = settings.loss
    if set(engines.values()) != {"torch"}:
        config["engines"] = [engines[m.name] for m in model_specs]
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    rundir = Path(out) if out is not None else _default_out(config, config_hash)
    tasks = _tasks(seed_info["pairs"], model_specs, method_specs, sweep_data, cache_folder(rundir), engines)
    return Sweep(
        data=sweep_data, models=model_specs, methods=method_specs, fitted=fitted, settings=settings,
        baseline=baseline, device=dev, preset=preset, workers=workers, threads=threads,
        scheduler=scheduler, config=config, config_hash=config_hash, rundir=rundir, tasks=tasks,
    )  # fmt: skip


def _baseline(baseline: str | None, methods: tuple[MethodSpec, ...]) -> str:
    names = [m.name for m in methods]
    baseline = baseline or names[0]
    if baseline not in names:
        raise CompareError(
            f"baseline {baseline!r} is not among the methods ({', '.join(names)}); expected one of them."
        )
    return baseline


def _models(model: str | list[str]) -> tuple[ModelSpec, ...]:
    names = model.split(",") if isinstance(model, str) else list(model)
    specs = tuple(parse_model(m) for m in names if m.strip())
    if not specs:
        raise CompareError("no model given; expected e.g. model='mlp'.")
    if len({m.name for m in specs}) != len(specs):
        raise CompareError(f"model list {names} names a model twice; expected each once.")
    return specs


def _settings(values: dict[str, Any]) -> TrainSettings:
    """The checked hyper-parameters: optimizer, learning rate, batch size, epochs."""
    opt = str(values["optimizer"])
    if opt not in OPTIMIZERS:
        raise CompareError(f"unknown optimizer {opt!r}; expected one of {', '.join(OPTIMIZERS)}.")
    batch_size = check_positive_int("batch_size", values["batch_size"], 32)
    epochs = check_positive_int("epochs", values["epochs"], 32)
    if values.get("lr") is not None:
        check_positive_number("lr", values["lr"], "0.001", noun="learning rate")
    engine = get_engine(str(values.get("engine") or DEFAULTS["engine"]))
    values["engine"] = engine.name
    loss = get_loss(str(values.get("loss") or engine.default_loss)).name
    return TrainSettings(optimizer=opt, lr=values.get("lr"), batch_size=batch_size, epochs=epochs, loss=loss,
                         loss_given=values.get("loss") is not None)  # fmt: skip


def seed_design(
    seeds: int | None, init_seeds: int | None, order_seeds: int | None, base: int
) -> dict[str, Any]:
    """The seeds of the runs: paired (replicate *k* uses init and order seed ``base + k``) or factorial.

    >>> seed_design(2, None, None, 0)["pairs"], seed_design(None, 2, 2, 5)["pairs"]
    ([[0, 0], [1, 1]], [[5, 5], [5, 6], [6, 5], [6, 6]])
    """
    for name, v in (("seeds", seeds), ("init_seeds", init_seeds), ("order_seeds", order_seeds)):
        if v is not None:
            check_positive_int(name, v, 5, noun="count", maximum=MAX_SEEDS, why="seeds of one kind")
    if isinstance(base, bool) or not isinstance(base, (int, np.integer)) or base < 0:
        raise CompareError(f"seed={base!r} is not a non-negative integer; expected e.g. seed=0.")
    base = int(base)
    last = base + max(seeds or 1, init_seeds or 1, order_seeds or 1) - 1
    if last > MAX_SEED:
        raise CompareError(
            f"seed={base} makes seeds up to {last}, above {MAX_SEED} (2**63 - 1), the largest seed torch and "
            "NumPy accept; expected a smaller seed=, e.g. seed=0."
        )
    if (init_seeds or 1) * (order_seeds or 1) > MAX_RUNS:
        raise CompareError(
            f"init_seeds={init_seeds} × order_seeds={order_seeds} makes {init_seeds * order_seeds:,} seed "
            f"pairs, above the limit of {MAX_RUNS:,} runs per sweep; expected fewer seeds."
        )
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


def _check_resources(
    workers: Any, threads: Any, data_options: dict[str, Any] | None, per_pair: int, seeds: dict[str, Any]
) -> None:
    """Refuse, before any work, counts beyond what the machine can run: the limits in the message."""
    cores = available_cores()
    if workers is not None:
        check_positive_int("workers", workers, 2, maximum=max(8, WORKERS_PER_CORE * cores),
                           why=f"worker processes ({WORKERS_PER_CORE} per CPU core, at least 8, on this machine)")  # fmt: skip
    if threads is not None:
        check_positive_int("threads", threads, 1, maximum=MAX_THREADS, why="PyTorch threads per worker")
    n_runs = per_pair * len(seeds["pairs"])
    if n_runs > MAX_RUNS:
        raise CompareError(
            f"{len(seeds['pairs']):,} seed pairs × {per_pair} (model, method) combinations make {n_runs:,} runs, "
            f"above the limit of {MAX_RUNS:,} runs per sweep; expected fewer seeds, methods or models."
        )
    resize = (data_options or {}).get("resize")
    if resize is not None:
        sides = list(resize) if isinstance(resize, (list, tuple)) else [resize]
        for side in sides:
            check_positive_int("resize", side, 32, noun="size in pixels", maximum=MAX_SIDE,
                               why="pixels per side of an image the bench holds in memory")  # fmt: skip


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
    models: tuple[ModelSpec, ...], methods: tuple[MethodSpec, ...], data: SweepData,
    settings: TrainSettings, engine: str, device: str,
) -> dict[str, str]:  # fmt: skip
    """Each model's engine; every (model, BatchNorm variant) built once on two samples: fail before the sweep.

    Built-in models train with ``engine``; a user's builder with the engine of the model it returns.
    """
    probe = np.asarray(data.arrays[0][:2], dtype=np.float32)
    variants = {(m.batchnorm_input, m.batchnorm_all) for m in methods}
    engines = {}
    for spec in models:
        engines[spec.name] = engine if spec.builtin else _builder_engine(spec, data, device)
        check = get_engine(engines[spec.name]).check
        for bn_in, bn_all in sorted(variants):
            check(spec, data.sample_shape, data.n_classes, bn_in, bn_all, settings, probe, device)
    return engines


def _builder_engine(spec: ModelSpec, data: SweepData, device: str) -> str:
    """``"keras"`` when the user's builder returns a ``keras.Model``, else ``"torch"``.

    It is called with the torch layout's shape (channels-first images) and, if that fails or gives no
    torch module, with the data's own (channels-last, what a Keras model reads).
    """
    import torch

    builder = spec.load_builder()
    for shape in dict.fromkeys((model_input_shape(data.sample_shape), tuple(data.sample_shape))):
        try:
            with keras_device(device):  # a Keras model's weights go where the sweep trains
                model = builder(shape, data.n_classes)
        except Exception:
            continue
        if is_keras_model(model):  # first: on Keras' torch backend a keras.Model is a torch module too
            return "keras"
        if isinstance(model, torch.nn.Module):
            return "torch"
    return "torch"  # the torch engine's check reports what the builder does wrong


def _default_out(config: dict[str, Any], config_hash: str) -> Path:
    name = config["data"]["name"].split(":")[0]
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "data"
    models = "-".join(config["models"])
    models = "".join(c if c.isalnum() or c in "-_" else "-" for c in models)[:40]
    return Path("runs") / f"{safe}-{models}-{config_hash[:8]}"


def _tasks(
    pairs: list[list[int]],
    models: tuple[ModelSpec, ...],
    methods: tuple[MethodSpec, ...],
    data: SweepData,
    cache: Path,
    engines: dict[str, str],
) -> tuple[Task, ...]:
    return tuple(
        Task(
            model=ms.name,
            method=m.name,
            init_seed=i,
            order_seed=o,
            model_spec=ms,
            sample_shape=data.sample_shape,
            n_classes=data.n_classes,
            batchnorm_input=m.batchnorm_input,
            batchnorm_all=m.batchnorm_all,
            files=prepared_files(cache, index),
            engine=engines[ms.name],
        )
        for i, o in pairs
        for ms in models
        for index, m in enumerate(methods)
    )
