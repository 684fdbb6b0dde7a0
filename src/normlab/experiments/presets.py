"""Defaults and named presets of ``normlab compare``.

Each preset reproduces a known outcome; explicit arguments override its values. The data paths are the
user's: nothing is downloaded, so the MNIST presets need ``--data mnist:DIR``. ``PRESETS`` is the registry
that ``normlab compare --help`` and ``--list`` are generated from: a preset is one entry.
"""

from __future__ import annotations

from typing import Any

from normlab.experiments._common import CompareError

__all__ = ["DEFAULTS", "PRESETS", "resolve_preset"]

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
}

PRESETS: dict[str, dict[str, Any]] = {
    "mnist-cnn": {
        "help": "raw pixels vs /max vs BatchNorm after every layer, cnn on MNIST (needs --data mnist:DIR)",
        "needs_data": "mnist:DIR (the folder with train-images-idx3-ubyte.gz and the other three IDX files)",
        "methods": "none,max,batchnorm-all",
        "model": "cnn",
        "seeds": 5,
        "epochs": 5,
        "batch_size": 128,
    },
    "rows-lstm": {
        "help": "raw vs /255 vs centering vs standardizing, LSTM and GRU over MNIST image rows (needs --data)",
        "needs_data": "mnist:DIR (the folder with the four MNIST IDX files)",
        "methods": "none,scale,center,standardize",
        "model": "lstm,gru",
        "seeds": 5,
        "epochs": 5,
        "batch_size": 128,
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
