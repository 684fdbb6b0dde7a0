"""Defaults and named presets of ``normlab compare``.

Each preset reproduces a known outcome; explicit arguments override its values. The data paths are the
user's: nothing is downloaded, so the MNIST presets need ``--data mnist:DIR``. ``PRESETS`` is the registry
that ``normlab compare --help`` and ``--list`` are generated from: a preset is one entry.
"""

from __future__ import annotations

from typing import Any

from normlab.experiments._common import CompareError

__all__ = ["DEFAULTS", "PRESETS", "design", "resolve_preset"]

#: What ``normlab compare`` with no arguments runs: scikit-learn's digits, 25 runs of 10 epochs (the
#: same epochs as ``TrainSettings``' default), well under two minutes on two cores.
DEFAULTS: dict[str, Any] = {
    "data": "digits",
    "methods": "none,max,standardize,l2-axis1,batchnorm-all",
    "model": "mlp",
    "seeds": 5,
    "optimizer": "adam",
    "batch_size": 32,
    "epochs": 10,
    "engine": "torch",
}

_MNIST = "mnist:DIR (the folder with train-images-idx3-ubyte.gz and the other three IDX files)"

#: One entry per claim of the Keras posts and notebooks this bench answers (the README's verdict table).
PRESETS: dict[str, dict[str, Any]] = {
    "mnist-cnn": {
        "help": "the notebook: raw pixels vs /max vs BatchNorm after every layer, its CNN on MNIST, Adam, "
        "batch 64; run with --engine keras and --engine torch (needs --data mnist:DIR)",
        "needs_data": _MNIST,
        "methods": "none,max,batchnorm-all",
        "model": "cnn",
        "seeds": 5,
        "epochs": 5,
        "batch_size": 64,
    },
    "mnist-lenet": {
        "help": "the LeNet Q&A: /255 vs none, LeNet in Keras, Adam, batch 128, 4 epochs, validation_split 0.2 "
        "(needs --data mnist:DIR; --epochs 12 asks whether the gap closes)",
        "needs_data": _MNIST,
        "methods": "scale,none",
        "model": "lenet",
        "engine": "keras",
        "seeds": 5,
        "epochs": 4,
        "batch_size": 128,
        "validation_split": 0.2,
    },
    "rows-lstm": {
        "help": "the LSTM post: /255 vs centering vs standardizing, 5 inits × 5 batch orders, LSTM over image "
        "rows and a dense model beside it (the spread test compares them; needs --data mnist:DIR)",
        "needs_data": _MNIST,
        "methods": "scale,center,standardize",
        "model": "lstm,mlp",
        "engine": "keras",
        "init_seeds": 5,
        "order_seeds": 5,
        "epochs": 5,
        "batch_size": 128,
    },
    "input-bn": {
        "help": "the Keras Q&A on keeping mean/std with the model: fitted statistics (what an adapted "
        "Normalization layer holds) vs BatchNormalization(center=False, scale=False) as the first layer",
        "needs_data": _MNIST,
        "methods": "standardize,batchnorm-input",
        "model": "mlp",
        "engine": "keras",
        "seeds": 5,
        "epochs": 5,
        "batch_size": 32,
    },
    "tabular-logreg": {
        "help": "raw features vs standardized, logistic regression on breast-cancer (bundled, offline)",
        "data": "breast-cancer",
        "methods": "none,standardize",
        "model": "logreg",
        "seeds": 10,
        "epochs": 30,
        "batch_size": 32,
        "validation_split": 0.25,
    },
}


def design(preset: dict[str, Any]) -> str:
    """A preset's seeds and epochs in words, e.g. ``5 seeds × 5 epochs`` or ``5 × 5 seeds × 5 epochs``."""
    if "init_seeds" in preset:
        seeds = f"{preset['init_seeds']} inits × {preset.get('order_seeds', 1)} orders"
    else:
        seeds = f"{preset['seeds']} seeds"
    return f"{seeds} × {preset['epochs']} epochs"


def resolve_preset(preset: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """Merge ``DEFAULTS``, the preset and the arguments the user gave (``None`` = not given)."""
    values = dict(DEFAULTS)
    if preset is not None:
        if preset not in PRESETS:
            raise CompareError(
                f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}. Run `normlab compare --list` "
                "to see what each runs."
            )
        p = PRESETS[preset]
        if "needs_data" in p and given.get("data") is None:
            raise CompareError(
                f"preset {preset!r} needs data that normlab does not download; expected --data {p['needs_data']}. "
                f"For example: normlab compare --preset {preset} --data mnist:path/to/mnist --limit 5000"
            )
        values.update({k: v for k, v in p.items() if k not in ("help", "needs_data")})
    values.update({k: v for k, v in given.items() if v is not None})
    return values
