"""Write one section of ``benchmarks/README.md``, leaving the others as they are.

Each benchmark script owns the section whose heading it names; rerunning the script replaces that section
(or appends it the first time). The file is written atomically, so an interrupted run never leaves it
half-written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

README = Path(__file__).with_name("README.md")
_HEAD = (
    "# Benchmarks\n\nEach section is written by the script named in its title; rerun it to refresh the "
    "figures.\n"
)


def replace_section(heading: str, section: str, readme: Path = README) -> None:
    """Replace the ``## ...`` section that starts with ``heading`` by ``section`` (appended if absent)."""
    text = readme.read_text() if readme.exists() else _HEAD
    start = text.find(heading)
    if start >= 0:
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + section.rstrip() + "\n" + (text[nxt:] if nxt >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    fd, tmp = tempfile.mkstemp(dir=readme.parent, prefix=".README.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text.rstrip() + "\n")
        os.replace(tmp, readme)
    except BaseException:
        os.unlink(tmp)
        raise
