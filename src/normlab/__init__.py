"""normlab: input normalization for deep learning that you fit once, carry inside the model, check, and
compare with evidence.

>>> import numpy as np, normlab
>>> x = np.random.default_rng(0).integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
>>> norm = normlab.Standardize(per="channel").fit(x)
>>> norm.mean_.shape
(3,)

The core (this module) imports NumPy only; framework bridges load when first used:
``normlab.torch``, ``normlab.keras``, ``normlab.data``, ``normlab.check``, ``normlab.compare``.
"""

from __future__ import annotations

import importlib
from typing import Any

import normlab.adapters  # noqa: F401  (NumPy only: fills core's hooks: exporters, Dask, model readers)
from normlab._version import __version__ as __version__
from normlab.core._load import from_hf as from_hf
from normlab.core._load import from_timm as from_timm
from normlab.core._load import load as load
from normlab.core.normalizers import Center as Center
from normlab.core.normalizers import Identity as Identity
from normlab.core.normalizers import LpNormalize as LpNormalize
from normlab.core.normalizers import MinMax as MinMax
from normlab.core.normalizers import Robust as Robust
from normlab.core.normalizers import Scale as Scale
from normlab.core.normalizers import Standardize as Standardize
from normlab.core.summary import DatasetStats as DatasetStats
from normlab.core.summary import stats as stats
from normlab.errors import (
    DataError as DataError,
)
from normlab.errors import (
    DatasetError as DatasetError,
)
from normlab.errors import (
    LayoutError as LayoutError,
)
from normlab.errors import (
    NormlabError as NormlabError,
)
from normlab.errors import (
    NotFittedError as NotFittedError,
)
from normlab.errors import (
    PersistError as PersistError,
)

# Submodules and functions that pull in optional dependencies: loaded on first attribute access.
_LAZY = {
    "data": ("normlab.data", None),
    "check": ("normlab.check", None),  # the package is callable: normlab.check(x_train, ...)
    "compare": ("normlab.experiments", "compare"),
    "report": ("normlab.experiments", "report"),
    "torch": ("normlab.torch", None),
    "keras": ("normlab.keras", None),
    "from_sklearn": ("normlab.adapters.convert", "from_sklearn"),
    "from_keras": ("normlab.adapters.convert", "from_keras"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'normlab' has no attribute {name!r}")


__all__ = [
    "Center",
    "DataError",
    "DatasetError",
    "DatasetStats",
    "Identity",
    "LayoutError",
    "LpNormalize",
    "MinMax",
    "NormlabError",
    "NotFittedError",
    "PersistError",
    "Robust",
    "Scale",
    "Standardize",
    "__version__",
    "check",
    "compare",
    "from_hf",
    "from_keras",
    "from_sklearn",
    "from_timm",
    "load",
    "report",
    "stats",
]
