"""scikit-learn's bundled datasets (``digits``, ``breast-cancer``, ``wine``): offline, in memory.

``breast-cancer`` is the real-world case of features on wildly different scales: its 30 columns range
from about 0.001 (``mean fractal dimension``) to several thousand (``worst area``).
"""

from __future__ import annotations

import numpy as np

from normlab.data._base import ArraySource, LoadedDataset
from normlab.errors import DatasetError

__all__ = ["load_builtin"]

_LOADERS = {"digits": "load_digits", "breast-cancer": "load_breast_cancer", "wine": "load_wine"}


def _sklearn_datasets():  # type: ignore[no-untyped-def]
    try:
        import sklearn.datasets
    except ImportError:
        raise DatasetError(
            "the bundled datasets digits, breast-cancer and wine come with scikit-learn, which is not "
            "installed; expected it for these specs. Install it with: pip install 'normlab[datasets]'"
        ) from None
    return sklearn.datasets


def load_builtin(kind: str, path: None, name: str, **options: object) -> LoadedDataset:
    """Open one of scikit-learn's bundled datasets: one split ``"train"``, features ``(n, f)`` float64.

    ``kind`` is the dataset (``"digits"``, ``"breast-cancer"`` or ``"wine"``); there is no ``path``, and
    ``name`` is the kind.
    """
    bunch = getattr(_sklearn_datasets(), _LOADERS[kind])()
    x = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    classes = tuple(str(c) for c in bunch.target_names)
    features = tuple(
        str(f) for f in getattr(bunch, "feature_names", [f"x{i}" for i in range(x.shape[1])])
    )
    return LoadedDataset(
        kind=kind,
        name=name,
        sources={"train": ArraySource(x, y, copy=True)},
        sample_shape=x.shape[1:],
        dtype=x.dtype,
        layout="(n, f)",
        n_classes=len(classes),
        class_names=classes,
        feature_names=features,
        **options,  # type: ignore[arg-type]
    )
