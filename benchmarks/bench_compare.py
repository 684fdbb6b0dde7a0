"""Experiment bench speed: normlab's training loop and sweep against a bare PyTorch loop and Keras ``fit``.

Two measurements on MNIST (the IDX files in ``../shared/data/mnist`` beside the repository by default):

1. **Per-epoch cost of the training loops.** (a) The torch engine: The same model, data, batch size and thread count trained by
   ``normlab.experiments.train.train_run`` (which also records train loss/accuracy, gradient-norm mean and
   max, and checks every step for NaN/inf/explosion) and by a bare hand-written loop (shuffle, forward,
   cross-entropy, backward, Adam step; validation accuracy at the end of the epoch). Median epoch time of
   ``--epochs`` epochs after one warm-up epoch; target: normlab within 15 % of the bare loop. (b) The
   Keras engine against a bare ``model.fit`` of the same Keras model (``--keras-models``), best and
   median; target: within 10 %.
2. **A sweep.** ``--methods`` × ``--seeds`` runs of the 784-128-10 MLP for ``--sweep-epochs`` epochs:
   ``normlab.compare`` (worker processes, one per core, report included) against the same models
   trained with Keras ``fit`` one after another (PyTorch backend, ``--keras-threads``, default all
   cores; on a small shared machine one thread can be faster). Target: ≥ 1.5× faster.

Run ``python benchmarks/bench_compare.py`` (``--limit N`` for a quicker run on N training images,
``--models mlp,cnn``, ``--no-keras``, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("NORMLAB_PROGRESS", "0")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def load(spec: str, limit: int | None):
    import numpy as np

    import normlab.data

    ds = normlab.data.open(spec, limit=limit)
    x, y = ds.arrays("train")
    xv, yv = ds.arrays("test")
    return (
        np.ascontiguousarray(x),
        np.asarray(y, np.int64),
        np.ascontiguousarray(xv),
        np.asarray(yv, np.int64),
    )


def bare_epoch(model, opt, x, y, xv, yv, bs, rng) -> float:
    """One epoch of the loop people write by hand; returns its wall seconds."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    model.train()
    perm = torch.from_numpy(rng.permutation(x.shape[0]))
    for i in range(0, x.shape[0], bs):
        idx = perm[i : i + bs]
        out = model(x[idx])
        loss = F.cross_entropy(out, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, xv.shape[0], 1024):
            correct += int((model(xv[i : i + 1024]).argmax(1) == yv[i : i + 1024]).sum())
    return time.perf_counter() - t0


def loop_overhead(model_name: str, arrays, epochs: int, bs: int, threads: int) -> dict:
    import numpy as np
    import torch

    from normlab.experiments.models import build_model, parse_model, to_model_input
    from normlab.experiments.train import TrainSettings, make_optimizer, train_run

    torch.set_num_threads(threads)
    x, y, xv, yv = arrays
    data = tuple(
        torch.from_numpy(a)
        for a in (
            to_model_input(x.astype(np.float32) / 255),
            y,
            to_model_input(xv.astype(np.float32) / 255),
            yv,
        )
    )
    shape = x.shape[1:]

    torch.manual_seed(0)
    bare_model = build_model(parse_model(model_name), shape, 10)
    opt = make_optimizer("adam", bare_model.parameters())
    torch.manual_seed(0)
    our_model = build_model(parse_model(model_name), shape, 10)
    rng = np.random.default_rng(0)
    bare, ours = [], []
    # alternate the two loops epoch by epoch, so that a change in machine load hits both alike
    for k in range(epochs + 1):
        b = bare_epoch(bare_model, opt, *data, bs, rng)
        o = train_run(our_model, data, TrainSettings(epochs=1, batch_size=bs), order_seed=k).epochs[
            0
        ]["seconds"]
        if k:  # the first epoch of each warms up
            bare.append(b)
            ours.append(o)
    b, o = statistics.median(bare), statistics.median(ours)
    return {"model": model_name, "n_train": len(x), "batch_size": bs, "threads": threads,
            "bare_s_per_epoch": b, "normlab_s_per_epoch": o, "overhead": o / b - 1}  # fmt: skip


def keras_engine_overhead(model_name: str, arrays, epochs: int, bs: int, threads: int) -> dict:
    """Per-epoch wall time: the Keras engine (``train_keras_run``) against a bare ``model.fit``.

    The same Keras model (``build_keras_model``, /255 input, softmax + categorical_crossentropy) and
    epoch by epoch alternately: ``model.fit(x, y, epochs=1, validation_data=...)`` on one copy and the
    engine's one-epoch run (its own batch order, validation, probe-batch gradients) on the other. Both
    timings are whole calls, ``fit``'s setup included. Returns the best and the median of each.
    """
    import keras
    import numpy as np
    import torch

    from normlab.experiments.keras_models import build_keras_model
    from normlab.experiments.keras_train import train_keras_run
    from normlab.experiments.models import parse_model
    from normlab.experiments.train import TrainSettings

    torch.set_num_threads(threads)
    x, y, xv, yv = arrays
    x, xv = (x.astype(np.float32) / 255), (xv.astype(np.float32) / 255)
    onehot, onehot_v = np.eye(10, dtype=np.float32)[y], np.eye(10, dtype=np.float32)[yv]

    def model():
        keras.utils.set_random_seed(0)
        return build_keras_model(parse_model(model_name), x.shape[1:], 10, batchnorm_input=False,
                                 batchnorm_all=False, loss="keras-probs", optimizer="adam", lr=1e-3)  # fmt: skip

    bare_model, our_model = model(), model()
    settings = TrainSettings(epochs=1, batch_size=bs, loss="keras-probs")
    bare, ours = [], []
    for k in range(epochs + 1):  # alternate, so that a change in machine load hits both alike
        t0 = time.perf_counter()
        bare_model.fit(x, onehot, batch_size=bs, epochs=1, validation_data=(xv, onehot_v), verbose=0)
        b = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_keras_run(our_model, (x, y, xv, yv), settings, order_seed=k, n_classes=10)
        o = time.perf_counter() - t0
        if k:  # the first epoch of each warms up
            bare.append(b)
            ours.append(o)
    return {"model": model_name, "n_train": len(x), "batch_size": bs, "threads": threads,
            "bare_fit_best_s": min(bare), "engine_best_s": min(ours),
            "bare_fit_median_s": statistics.median(bare), "engine_median_s": statistics.median(ours),
            "overhead_best": min(ours) / min(bare) - 1,
            "overhead_median": statistics.median(ours) / statistics.median(bare) - 1}  # fmt: skip


def keras_sweep(
    arrays, methods: list[str], seeds: int, epochs: int, bs: int, threads: int
) -> float:
    import keras
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    x, y, xv, yv = arrays
    x = x.reshape(len(x), -1).astype(np.float32)
    xv = xv.reshape(len(xv), -1).astype(np.float32)
    t0 = time.perf_counter()
    for method in methods:
        if method == "none":
            a, av = x, xv
        elif method == "max":
            a, av = x / x.max(), xv / x.max()
        else:  # standardize, per channel (one channel): the training mean and std
            a, av = (x - x.mean()) / x.std(), (xv - x.mean()) / x.std()
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = keras.Sequential([
                keras.Input((a.shape[1],)),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ])  # fmt: skip
            model.compile(
                optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
            )
            model.fit(a, y, batch_size=bs, epochs=epochs, validation_data=(av, yv), verbose=0)
    return time.perf_counter() - t0


def normlab_sweep(
    spec: str, limit: int | None, methods: list[str], seeds: int, epochs: int, bs: int
) -> dict:
    from normlab.experiments import compare

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = compare(spec, limit=limit, methods=methods, model="mlp", seeds=seeds, epochs=epochs, batch_size=bs,
                    out=Path(tmp) / "run", progress=False)  # fmt: skip
        total = time.perf_counter() - t0
        return {"seconds": total, "summary": r.table()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", default=f"mnist:{DATA}", help="dataset spec (default: the shared MNIST files)"
    )
    p.add_argument("--limit", type=int, default=None, help="at most N training (and N test) images")
    p.add_argument("--models", default="mlp,cnn", help="models for the per-epoch comparison")
    p.add_argument(
        "--cnn-limit", type=int, default=6000, help="training images for the cnn (default 6000)"
    )
    p.add_argument(
        "--epochs", type=int, default=3, help="timed epochs per loop (after one warm-up)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads for the per-epoch comparison"
    )
    p.add_argument("--methods", default="none,max,standardize")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--sweep-epochs", type=int, default=1)
    p.add_argument("--no-keras", action="store_true")
    p.add_argument("--keras-models", default="mlp,cnn",
                   help="models for the Keras engine against bare model.fit (default mlp,cnn)")  # fmt: skip
    p.add_argument("--no-sweep", action="store_true", help="only the per-epoch comparisons")
    p.add_argument("--no-torch-loop", action="store_true", help="skip the torch loop comparison")
    p.add_argument("--keras-threads", type=int, default=os.cpu_count() or 1,
                   help="torch threads under Keras fit (default: all cores)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    report: dict = {"cores": os.cpu_count(), "python": sys.version.split()[0],
                    "load_average_start": os.getloadavg()[0], "settings": vars(args)}  # fmt: skip
    import torch

    report["torch"] = torch.__version__
    arrays = load(args.data, args.limit)
    torch_line = ("bare {bare_s_per_epoch:.3f} s/epoch, normlab {normlab_s_per_epoch:.3f} s/epoch "
                  "({overhead:+.1%})")  # fmt: skip
    keras_line = ("bare model.fit {bare_fit_best_s:.3f} / {bare_fit_median_s:.3f} s/epoch (best / median), "
                  "Keras engine {engine_best_s:.3f} / {engine_median_s:.3f} ({overhead_best:+.1%} / "
                  "{overhead_median:+.1%})")  # fmt: skip
    for key, names, measure, line in (
        ("loop", [] if args.no_torch_loop else args.models.split(","), loop_overhead, torch_line),
        ("keras_engine", [] if args.no_keras else args.keras_models.split(","), keras_engine_overhead, keras_line),
    ):  # fmt: skip
        report[key] = []
        for name in names:
            data = arrays
            if name not in ("mlp", "logreg") and args.cnn_limit and len(arrays[0]) > args.cnn_limit:
                data = load(args.data, args.cnn_limit)
            row = measure(name, data, args.epochs, args.batch_size, args.threads)
            report[key].append(row)
            if not args.json:
                print(f"{name:6s} n={row['n_train']:>6} bs={row['batch_size']} threads={row['threads']}: "
                      + line.format(**row), flush=True)  # fmt: skip
    if args.no_sweep:
        return _finish(report, args.json)
    methods = args.methods.split(",")
    n_runs = len(methods) * args.seeds
    sweep = normlab_sweep(
        args.data, args.limit, methods, args.seeds, args.sweep_epochs, args.batch_size
    )
    report["sweep"] = {"runs": n_runs, "epochs": args.sweep_epochs, "normlab_s": sweep["seconds"]}
    if not args.json:
        print(f"sweep of {n_runs} MLP runs × {args.sweep_epochs} epoch(s): normlab compare {sweep['seconds']:.1f} s "
              "(workers: one per core, report included)", flush=True)  # fmt: skip
    if not args.no_keras:
        k = keras_sweep(
            arrays, methods, args.seeds, args.sweep_epochs, args.batch_size, args.keras_threads
        )
        report["sweep"]["keras_s"] = k
        report["sweep"]["speedup"] = k / sweep["seconds"]
        if not args.json:
            print(f"  Keras fit one after another ({args.keras_threads} thread(s)): {k:.1f} s -> normlab is "
                  f"{k / sweep['seconds']:.2f}× faster")  # fmt: skip
    return _finish(report, args.json)


def _finish(report: dict, as_json: bool) -> int:
    report["load_average_end"] = os.getloadavg()[0]
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"load average (1 min): {report['load_average_start']:.2f} at the start, "
              f"{report['load_average_end']:.2f} at the end")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
