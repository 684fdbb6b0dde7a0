"""Does BatchNormalization as the first layer "keep mean/std with the model"? Its moving averages, measured.

The ``input-bn`` preset's ``batchnorm-input`` runs (Keras ``mlp``, raw MNIST pixels,
``BatchNormalization(center=False, scale=False)`` first, Adam, batch 32), trained here by the Keras engine's
own code (``build_keras_model`` + ``train_keras_run``, the same seeds and batch order as ``normlab compare``),
then :func:`normlab.experiments.bn_stats.moving_stats_error` against the exact statistics of the training
split (``normlab.stats``) after every epoch, and at the end the accuracy on the test split with the moving
averages and with the exact statistics in their place.

Two layouts of the layer:

* ``channel``: the preset's model. Keras' ``BatchNormalization(axis=-1)`` on ``(28, 28, 1)`` images keeps
  one mean and one variance, for the one channel, compared with ``normlab.stats(x, per="channel")``.
* ``pixel``: ``Flatten`` then the same layer: one mean/variance per pixel (784), compared with
  ``per="feature"``; pixels that are 0 in every training image (std 0) are left out.

Beside each measured error the script prints what the update rule alone predicts. Keras updates
``moving = m * moving + (1 - m) * batch`` (``m = 0.99``) from ``moving_mean = 0``, ``moving_variance = 1``, so
after ``T`` steps the starting values still weigh ``m**T`` (a window of about ``1 / (1 - m) = 100`` batches)
and each batch's variance is the biased one of its ``B`` values per statistic (32 samples per pixel; 32 × 784
values for the one channel). If every batch had the training split's statistics, ``moving_mean = (1 - m**T)
* mean`` and ``moving_variance = m**T + (1 - m**T) * var * (B - 1) / B * N / (N - 1)``: the "predicted"
columns. The "debiased" columns divide the start out (``moving_mean / (1 -
m**T)``, ``(moving_variance - m**T) / (1 - m**T)``, as Adam does for its moments): what is left is the
batch-to-batch noise of the last ~100 batches.

Run ``python benchmarks/bn_moving_stats.py`` (``--limit 2000 --epochs 5 --seeds 5`` by default, the
README's size; ``--json`` for the raw numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("NORMLAB_PROGRESS", "0")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def _pixel_model(keras, shape, n_classes: int, lr: float):
    """The ``mlp`` with the input BatchNorm after ``Flatten``: one statistic per pixel."""
    L = keras.layers
    model = keras.Sequential([keras.Input(shape), L.Flatten(), L.BatchNormalization(center=False, scale=False),
                              L.Dense(128, activation="relu"), L.Dense(n_classes, activation="softmax")])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    return model


def _predicted(mean, std, steps: int, momentum: float, batch: int, n: int):
    """The errors the update rule gives when every batch has the split's own mean and variance.

    ``batch`` and ``n``: values per statistic in a batch and in the split.
    """
    import numpy as np

    keep = momentum**steps
    var_batch = std**2 * (batch - 1) / batch * n / (n - 1)
    pred_mean = (1 - keep) * mean
    pred_std = np.sqrt(keep + (1 - keep) * var_batch)
    ok = std > 0
    shift = np.abs(pred_mean - mean)[ok] / std[ok]
    rel = np.abs(pred_std - std)[ok] / std[ok]
    return float(np.median(shift)), float(np.median(rel))


def _debiased(layer, mean, std, steps: int):
    import numpy as np

    keep = layer.momentum**steps
    mm = np.asarray(layer.moving_mean.numpy(), np.float64) / (1 - keep)
    mv = (np.asarray(layer.moving_variance.numpy(), np.float64) - keep) / (1 - keep)
    ok = std > 0
    shift = np.abs(mm - mean)[ok] / std[ok]
    rel = np.abs(np.sqrt(np.maximum(mv, 0)) - std)[ok] / std[ok]
    return float(np.median(shift)), float(np.median(rel))


def measure(data: str, limit: int, epochs: int, seeds: int, batch_size: int, layouts: list[str]) -> list[dict]:
    import keras
    import numpy as np

    import normlab
    from normlab.experiments.bn_stats import first_batchnorm, moving_stats_error
    from normlab.experiments.keras_models import build_keras_model
    from normlab.experiments.keras_train import train_keras_run
    from normlab.experiments.methods import parse_methods
    from normlab.experiments.models import parse_model
    from normlab.experiments.splits import load_data
    from normlab.experiments.train import TrainSettings

    sweep_data = load_data(data, validation_split=None, limit=limit, options={})
    x_raw, y, xv_raw, yv = sweep_data.arrays
    method = parse_methods("batchnorm-input")[0].fit(x_raw)  # raw pixels, as the sweep feeds them
    x, xv = method.transform(x_raw), method.transform(xv_raw)
    n, n_classes = len(x), sweep_data.n_classes
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, loss="keras-probs")
    steps_per_epoch = len([i for i in range(0, n, batch_size) if not (i == n - 1 and i > 0)])
    exact = {
        "channel": normlab.stats(x_raw, per="channel", quantiles=()),
        "pixel": normlab.stats(x_raw.reshape(n, -1), per="feature", quantiles=()),
    }
    rows = []
    for layout in layouts:
        mean, std = (np.asarray(exact[layout].mean, np.float64), np.asarray(exact[layout].std, np.float64))
        per_sample = x[0].size // mean.size  # values of one statistic in one sample
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            if layout == "channel":
                model = build_keras_model(parse_model("mlp"), x.shape[1:], n_classes, batchnorm_input=True,
                                          batchnorm_all=False, loss="keras-probs", optimizer="adam",
                                          lr=settings.learning_rate)  # fmt: skip
            else:
                model = _pixel_model(keras, x.shape[1:], n_classes, settings.learning_rate)
            layer = first_batchnorm(model)

            def after_epoch(epoch: int, record: dict, model=model, layer=layer, seed=seed, layout=layout,
                            mean=mean, std=std, per_sample=per_sample) -> None:  # fmt: skip
                steps = epoch * steps_per_epoch
                e = moving_stats_error(model, mean, std)
                pred = _predicted(mean, std, steps, layer.momentum, batch_size * per_sample, n * per_sample)
                deb = _debiased(layer, mean, std, steps)
                rows.append({"layout": layout, "seed": seed, "epoch": epoch, "steps": steps,
                             "window_weight_of_start": layer.momentum**steps,
                             "mean_shift_median": e.mean_shift_median, "mean_shift_max": e.mean_shift_max,
                             "std_rel_median": e.std_rel_median, "std_rel_max": e.std_rel_max,
                             "n_stats": e.n_stats, "n_constant": e.n_constant,
                             "pred_mean_shift": pred[0], "pred_std_rel": pred[1],
                             "debiased_mean_shift_median": deb[0], "debiased_std_rel_median": deb[1],
                             "val_acc_recorded": record["val_acc"]})  # fmt: skip

            train_keras_run(model, (x, y, xv, yv), settings, seed, n_classes, on_epoch=after_epoch)
            final = moving_stats_error(model, mean, std, xv, yv)
            rows[-1].update(acc_moving=final.acc_moving, acc_exact=final.acc_exact, acc_delta=final.acc_delta)
    return rows


def _table(rows: list[dict]) -> str:
    def med(key, sel):
        return statistics.median(r[key] for r in sel)

    out = ["layout   epoch  steps  m^T     mean shift (std units)        std rel. error",
           "                              median   max    pred   debiased  median   max    pred   debiased"]  # fmt: skip
    for layout in dict.fromkeys(r["layout"] for r in rows):
        for epoch in sorted({r["epoch"] for r in rows if r["layout"] == layout}):
            sel = [r for r in rows if r["layout"] == layout and r["epoch"] == epoch]
            out.append(
                f"{layout:8s} {epoch:5d} {sel[0]['steps']:6d}  {sel[0]['window_weight_of_start']:.4f}  "
                f"{med('mean_shift_median', sel):.4f}  {max(r['mean_shift_max'] for r in sel):.4f}  "
                f"{med('pred_mean_shift', sel):.4f}  {med('debiased_mean_shift_median', sel):.4f}    "
                f"{med('std_rel_median', sel):.4f}  {max(r['std_rel_max'] for r in sel):.4f}  "
                f"{med('pred_std_rel', sel):.4f}  {med('debiased_std_rel_median', sel):.4f}"
            )
    out.append("")
    out.append("layout   seeds  stats (constant)  test acc, moving averages  exact statistics  Δ (exact − moving)")
    for layout in dict.fromkeys(r["layout"] for r in rows):
        last = [r for r in rows if r["layout"] == layout and "acc_delta" in r]
        mv = [r["acc_moving"] for r in last]
        ex = [r["acc_exact"] for r in last]
        d = [r["acc_delta"] for r in last]
        out.append(
            f"{layout:8s} {len(last):5d}  {last[0]['n_stats']:5d} ({last[0]['n_constant']:3d})     "
            f"{statistics.mean(mv):.4f} ± {statistics.stdev(mv) if len(mv) > 1 else 0:.4f}         "
            f"{statistics.mean(ex):.4f} ± {statistics.stdev(ex) if len(ex) > 1 else 0:.4f}  "
            f"mean {statistics.mean(d):+.4f}, min {min(d):+.4f}, max {max(d):+.4f}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=f"mnist:{DATA}", help="a dataset spec (default: the shared MNIST)")
    p.add_argument("--limit", type=int, default=2000, help="at most N training (and N test) images")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the sweep's default on 2 cores)")
    p.add_argument("--layouts", default="channel,pixel", help="channel (the preset's model), pixel, or both")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows = measure(args.data, args.limit, args.epochs, args.seeds, args.batch_size, args.layouts.split(","))
    print(json.dumps(rows, indent=1) if args.json else _table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
