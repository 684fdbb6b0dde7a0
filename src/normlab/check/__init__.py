"""Diagnostics: find the normalization mistakes that silently cost accuracy.

``normlab.check(train, normalized=..., test=..., stats=...)`` returns a :class:`Report` of
:class:`Finding` objects, each with a stable kebab-case code (see :data:`CODES`), a severity, a message
with the numbers behind it and a fix as code. ``normlab check`` is the same from the command line.

NumPy only: importing this package imports no framework; datasets given as specs are opened through
``normlab.data`` when needed.

Modules, in the order a run uses them:

- ``_api``: :func:`check` and the ``_CHECKS`` table (codes, what each check needs, the check).
- ``_context``: the :class:`Context` every check reads, with the inputs aligned to one per-sample shape
  (its axis rules come from :mod:`normlab.core.axes`); ``_data`` opens each input as a ``Data`` array and
  caches its exact statistics; ``_given`` reads the statistics the user normalizes with as a ``Given``.
- ``_explain``: how the normalized data follows from the raw data (which axes, which statistics);
  ``_shared``: summaries several checks share (that explanation, what the model is fed).
- The checks: ``_values`` (NaN/inf, magnitude, spread, constants, double scaling), ``_axis`` (wrong axis,
  wrap-around), ``_leakage`` (test-split statistics, train/test mismatch), ``_statistics`` (std given as
  variance, averaged stds), ``_network`` (the model's input layers, statistics on another scale or from
  other data, exploding test values), ``_expects`` (what a pretrained model was trained on).
- ``_model``: :class:`ModelInput`, the affine maps a model applies to its own input (read by
  :mod:`normlab.adapters.models`), composed with the data so that every check judges what the network sees.
- ``_findings``: :class:`Finding`, :class:`Report` and the stable :data:`CODES`.

Numbers in messages are written by :mod:`normlab._format`.
"""

from __future__ import annotations

from normlab.check._api import check as check
from normlab.check._findings import CODES as CODES
from normlab.check._findings import SEVERITIES as SEVERITIES
from normlab.check._findings import Finding as Finding
from normlab.check._findings import Report as Report
from normlab.check._model import InputStep as InputStep
from normlab.check._model import ModelInput as ModelInput

__all__ = ["CODES", "SEVERITIES", "Finding", "InputStep", "ModelInput", "Report", "check"]


# ``normlab.check`` is both this package and the function: ``import normlab.check`` makes the package the
# attribute ``normlab.check``, so the package itself is callable and forwards to :func:`check`.
def _callable_package() -> None:
    import inspect
    import sys
    import types

    class _CheckPackage(types.ModuleType):
        def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return check(*args, **kwargs)

    module = sys.modules[__name__]
    module.__class__ = _CheckPackage
    module.__signature__ = inspect.signature(check)  # type: ignore[attr-defined]


_callable_package()
del _callable_package
