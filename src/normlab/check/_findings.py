"""What ``normlab.check`` returns: findings with a stable code, and a report that orders and prints them."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CODES", "FAIL_ON", "SEVERITIES", "Finding", "Report"]

#: Severities, most serious first. ``error``: the model will train on wrong inputs; ``warning``: likely a
#: mistake, or one that costs accuracy; ``info``: a choice worth knowing about.
SEVERITIES = ("error", "warning", "info")

#: ``--fail-on`` levels: the exit status is 1 when a finding at this level or above exists.
FAIL_ON = ("error", "warning", "never")

#: Every code a finding can have, with one line on what it means. Codes are stable: scripts may match them.
CODES: dict[str, str] = {
    "nan-or-inf": "NaN or infinite values, with counts and positions",
    "pixels-not-scaled": "image values far from the order-1 range networks train well in (e.g. 0..255)",
    "features-not-scaled": "table features with magnitudes far above the order-1 range",
    "scale-disparity": "features (or channels) whose spreads differ by orders of magnitude",
    "constant-feature": "zero-variance features, and what each framework does with them at test time",
    "wrong-axis": "normalization along an axis that does not keep each sample's values comparable",
    "stats-from-test-split": "statistics computed on the test split (or on train + test)",
    "train-test-mismatch": "the test set normalized differently from the training set",
    "uint8-wraparound": "normalized data kept in an unsigned integer dtype, or values that wrapped around",
    "double-scaling": "data scaled twice: divided by 255 twice, or standardized twice",
    "std-as-variance": "a variance passed where a std is expected, or the other way round",
    "averaged-std": "a std that averages per-image or per-batch stds instead of the pooled std",
    "model-input": "the normalization layers at the model's input, which the other checks compose with the data",
    "input-scale-mismatch": "data on another scale than the normalizer was fitted on ([0, 1] floats into 0..255 statistics)",
    "stats-outside-data": "a centre or scale far outside the data's range (0..255 statistics on [0, 1] data)",
    "stats-from-other-data": "statistics far from the data's own (another dataset's constants), with the right ones",
    "test-values-explode": "normalized test values far beyond the training range (std + epsilon on constant features)",
    "expects-mismatch": "what the network receives differs from what the (pretrained) model was trained on",
}

_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _jsonable(value: Any) -> Any:
    """Numbers and arrays as plain JSON values (NaN and inf become None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Finding:
    """One diagnosed problem.

    Attributes
    ----------
    code : str
        Stable kebab-case identifier, one of :data:`CODES` (e.g. ``"wrong-axis"``).
    severity : {"error", "warning", "info"}
    subject : str
        Which input it is about: ``"train"``, ``"normalized"``, ``"test"``, ``"test_normalized"`` or
        ``"stats"``.
    message : str
        What is wrong, with the numbers behind it.
    hint : str
        The fix, as code.
    numbers : dict
        The numbers in the message, for scripts and tests (plain Python values and lists).
    """

    code: str
    severity: str
    subject: str
    message: str
    hint: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"Finding(code={self.code!r}) is not a known code; expected one of {', '.join(CODES)}.")
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding(severity={self.severity!r}) must be one of {', '.join(SEVERITIES)}.")
        if self.message[:1].islower():  # messages are sentences
            object.__setattr__(self, "message", self.message[0].upper() + self.message[1:])

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
            "hint": self.hint,
            "numbers": _jsonable(self.numbers),
        }

    def to_text(self, width: int = 100) -> str:
        """The finding as a terminal paragraph: a header line, the message, then the fix indented."""
        lines = [f"{self.severity}[{self.code}] ({self.subject})"]
        for para in self.message.split("\n"):
            lines += textwrap.wrap(para, width=width, initial_indent="  ", subsequent_indent="  ") or [""]
        if self.hint:
            lines.append("  fix:")
            lines += ["    " + line for line in self.hint.split("\n")]
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{self.severity}[{self.code}] {self.message}"


class Report:
    """The findings of one ``normlab.check`` run: errors first, then warnings, then info.

    A linter's result: iterate over it, look findings up by code, print it (``to_text``), hand it to a
    machine (``to_json``) or gate a pipeline on it (``exit_code``).

    Examples
    --------
    >>> r = Report([Finding("double-scaling", "warning", "normalized", "divided twice", "x = x_raw / 255"),
    ...             Finding("nan-or-inf", "error", "train", "3 NaN", "np.nan_to_num(x)")])
    >>> [f.code for f in r], r.exit_code("error"), r.exit_code("warning")
    (['nan-or-inf', 'double-scaling'], 1, 1)
    >>> "nan-or-inf" in r, len(r.by_code("wrong-axis"))
    (True, 0)
    """

    def __init__(self, findings: list[Finding] | tuple[Finding, ...] = (), *,
                 inputs: dict[str, str] | None = None, checks: tuple[str, ...] = ()) -> None:
        order = sorted(range(len(findings)), key=lambda i: (_RANK[findings[i].severity], i))
        self.findings: tuple[Finding, ...] = tuple(findings[i] for i in order)
        self.inputs: dict[str, str] = dict(inputs or {})
        self.checks: tuple[str, ...] = tuple(checks)

    # ---- looking things up ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, i: int) -> Finding:
        return self.findings[i]

    def __contains__(self, code: object) -> bool:
        return any(f.code == code for f in self.findings)

    def by_code(self, code: str) -> list[Finding]:
        """The findings with this code (an empty list when there are none)."""
        if code not in CODES:
            raise ValueError(f"Report.by_code({code!r}): unknown code; expected one of {', '.join(CODES)}.")
        return [f for f in self.findings if f.code == code]

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    # ---- gating ---------------------------------------------------------------------------------

    def exit_code(self, fail_on: str = "error") -> int:
        """1 when a finding at ``fail_on`` severity or worse exists, else 0 (``"never"``: always 0)."""
        if fail_on not in FAIL_ON:
            raise ValueError(f"exit_code(fail_on={fail_on!r}) must be one of {', '.join(FAIL_ON)}.")
        if fail_on == "never":
            return 0
        return int(any(_RANK[f.severity] <= _RANK[fail_on] for f in self.findings))

    # ---- output ---------------------------------------------------------------------------------

    def summary(self) -> str:
        n = {s: self.count(s) for s in SEVERITIES}
        plural = lambda k, word: f"{k} {word}{'' if k == 1 else 's'}"  # noqa: E731
        return f"{plural(n['error'], 'error')}, {plural(n['warning'], 'warning')}, {n['info']} info"

    def to_text(self, width: int = 100) -> str:
        """A readable report: what was checked, each finding (errors first), and a summary line."""
        lines = ["normlab check"]
        lines += [f"  {role}: {what}" for role, what in self.inputs.items()]
        lines.append("")
        for f in self.findings:
            lines += [f.to_text(width), ""]
        if not self.findings:
            lines += ["no problems found", ""]
        lines.append(f"{self.summary()} ({len(self.checks)} checks run)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": {s: self.count(s) for s in SEVERITIES},
            "inputs": dict(self.inputs),
            "checks": list(self.checks),
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        codes = ", ".join(dict.fromkeys(self.codes)) or "no findings"
        return f"Report({self.summary()}: {codes})"
