"""The experiment bench: does a normalization help, on my data and my model, and by how much?

:func:`compare` trains a model under several normalization methods, each over several seeds (weight
initialization and batch order paired across methods), stores every finished run in SQLite so that an
interrupted sweep resumes, and writes a self-contained HTML report with learning curves, every run's final
accuracy, confidence intervals and paired tests against a baseline. :func:`report` rebuilds it.

:func:`compare` runs four steps, one module each:

- ``plan``: the whole configuration checked and frozen as a ``Sweep``, every run a ``Task`` (its identity:
  dataset, model, method, init seed, order seed, hyper-parameters); ``splits`` opens and fingerprints
  the data.
- ``store``: the SQLite result store of a run folder, which knows the finished runs.
- ``execute``: trains the missing runs in local worker processes (``runner``) or on a Dask cluster
  (``cluster``), one run by ``train`` on a model of ``models`` fed by a method of ``methods``.
- ``report``: aggregation (``aggregate``), figures (``plots``) and the HTML report.

Methods, models and presets are registries (``methods.STEPS``, ``models.ARCHITECTURES``,
``presets.PRESETS``): one entry adds one, and ``normlab compare --help`` and ``--list`` follow.

PyTorch is the training engine (``pip install 'normlab[experiments]'``); importing this package imports
neither torch nor matplotlib until a comparison runs.
"""

from __future__ import annotations

from normlab.experiments._common import CompareError as CompareError
from normlab.experiments.api import ComparisonResult as ComparisonResult
from normlab.experiments.api import compare as compare
from normlab.experiments.api import report as report
from normlab.experiments.methods import METHODS as METHODS
from normlab.experiments.models import MODELS as MODELS
from normlab.experiments.presets import DEFAULTS as DEFAULTS
from normlab.experiments.presets import PRESETS as PRESETS

__all__ = [
    "DEFAULTS",
    "METHODS",
    "MODELS",
    "PRESETS",
    "CompareError",
    "ComparisonResult",
    "compare",
    "report",
]
