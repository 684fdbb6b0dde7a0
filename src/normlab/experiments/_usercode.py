"""Errors raised by the user's own model code, told as one message plus the user's own lines.

A user's ``build()`` that raises or does not take ``(input_shape, n_classes)``, or a ``forward`` that fails
in the middle of training (in this process, a worker process or on a cluster), is the user's to fix: the
message names the run or the step, the error, and then only the frames of the user's file, not the
normlab, PyTorch and multiprocessing frames around them. An error that passes through no frame of the
user's file keeps its whole traceback, since then it is normlab's to fix.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from normlab.errors import NormlabError
from normlab.experiments._common import CompareError

__all__ = ["error_trace", "user_code", "user_frames"]


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def user_frames(exc: BaseException, path: str | None, tb: TracebackType | None = None) -> str:
    """The frames of ``exc``'s traceback (or of ``tb``) that lie in the file ``path``, formatted as Python does.

    ``""`` when there are none, or ``path`` is ``None`` (a built-in model).
    """
    if path is None:
        return ""
    frames = [f for f in traceback.extract_tb(tb or exc.__traceback__) if _same_file(f.filename, path)]
    return "".join(traceback.format_list(frames)).rstrip()


def error_trace(exc: BaseException, path: str | None) -> str:
    """What to show below an error's message: the user's frames when there are any, else the traceback."""
    mine = user_frames(exc, path)
    return mine or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


@contextmanager
def user_code(spec: Any, doing: str) -> Iterator[None]:
    """Turn an exception raised by the user's model file inside the block into one :class:`CompareError`.

    ``spec`` is the model's ``ModelSpec`` (``path`` is ``None`` for a built-in model, whose errors pass
    through unchanged); ``doing`` says what was called, e.g. ``"build((1, 8, 8), 10)"``. A ``TypeError``
    raised by the call itself, before any line of the user's file ran, is a wrong signature.
    """
    try:
        yield
    except NormlabError:
        raise
    except Exception as e:
        path = getattr(spec, "path", None)
        if path is None:
            raise
        frames = user_frames(e, path)
        function = getattr(spec, "function", "build")
        if isinstance(e, TypeError) and not frames:
            raise CompareError(
                f"--model {spec.name}: {doing} failed with TypeError: {e}; expected {function}(input_shape, "
                "n_classes) returning a torch.nn.Module (add batchnorm=False for the batchnorm-all method). "
                f"Change the signature of {function}() in {path}."
            ) from None
        raise CompareError(
            f"--model {spec.name}: {doing} raised {type(e).__name__}: {e}; expected your model code to run. "
            f"Fix {path} (your code's lines below) and run the same command again.\n{frames}".rstrip()
        ) from None
