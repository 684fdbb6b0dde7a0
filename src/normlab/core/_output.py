"""scikit-learn's ``set_output``: transform results as pandas (or polars) DataFrames when asked.

``est.set_output(transform="pandas")`` on one normalizer, or ``sklearn.set_config(transform_output=
"pandas")`` for all of them (read only when scikit-learn is already imported: normlab never imports it),
makes ``transform``/``fit_transform`` return a DataFrame with the feature names and the input's index.
N-D outputs (images) stay arrays: a DataFrame has two axes.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from normlab.errors import ParameterError

__all__ = ["CONTAINERS", "output_container", "wrap_output"]

CONTAINERS = ("default", "pandas", "polars")


def check_container(transform: Any, who: str) -> str:
    if transform not in CONTAINERS:
        raise ParameterError(
            f"{who}.set_output(transform={transform!r}) is not a choice; expected one of {', '.join(CONTAINERS)}."
        )
    return transform


def output_container(est: Any) -> str:
    """The container ``est`` returns: its own ``set_output`` choice, else scikit-learn's global setting."""
    own = getattr(est, "_sklearn_output_config", {}).get("transform")
    if own is not None and own != "default":
        return own
    sklearn = sys.modules.get("sklearn")
    if own is None and sklearn is not None and hasattr(sklearn, "get_config"):
        return str(sklearn.get_config().get("transform_output", "default"))
    return "default"


def wrap_output(est: Any, out: np.ndarray, X: Any) -> Any:
    """``out`` in the container ``est`` is configured for (a 2-D result only)."""
    container = output_container(est)
    if container == "default" or out.ndim != 2:
        return out
    columns = [str(c) for c in est.get_feature_names_out()]
    if container == "pandas":
        import pandas as pd

        index = getattr(X, "index", None) if hasattr(X, "columns") else None
        return pd.DataFrame(out, columns=columns, index=index)
    import polars as pl

    return pl.DataFrame(out, schema=columns)
