"""Diagnostics: find the normalization mistakes that silently cost accuracy.

``normlab.check(train, normalized=..., test=..., stats=...)`` returns a :class:`Report` of
:class:`Finding` objects, each with a stable kebab-case code (see :data:`CODES`), a severity, a message
with the numbers behind it and a fix as code. ``normlab check`` is the same from the command line.

NumPy only: importing this package imports no framework; datasets given as specs are opened through
``normlab.data`` when needed.
"""

from __future__ import annotations

from normlab.check._api import check as check
from normlab.check._findings import CODES as CODES
from normlab.check._findings import SEVERITIES as SEVERITIES
from normlab.check._findings import Finding as Finding
from normlab.check._findings import Report as Report

__all__ = ["CODES", "SEVERITIES", "Finding", "Report", "check"]


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
