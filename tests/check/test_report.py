"""The result types: findings have stable codes; a report orders them errors first and gates a pipeline."""

from __future__ import annotations

import json

import pytest

from normlab.check import CODES, Finding, Report


def _report() -> Report:
    return Report(
        [
            Finding("wrong-axis", "info", "normalized", "per pixel", "norm = ..."),
            Finding("scale-disparity", "warning", "train", "wide spread", "norm = ...", {"ratio": 2.5e5}),
            Finding("nan-or-inf", "error", "train", "3 NaN", "x = np.nan_to_num(x)", {"nan": 3}),
        ],
        inputs={"train": "array (10, 2) float64"},
        checks=("nan-or-inf", "scale-disparity", "wrong-axis"),
    )


def test_findings_are_ordered_errors_first_then_warnings_then_info():
    assert [f.severity for f in _report()] == ["error", "warning", "info"]


@pytest.mark.parametrize(("fail_on", "expected"), [("error", 1), ("warning", 1), ("never", 0)])
def test_exit_code_follows_fail_on(fail_on, expected):
    assert _report().exit_code(fail_on) == expected


def test_exit_code_is_zero_when_only_info_and_warnings_below_the_bar():
    r = Report([Finding("wrong-axis", "info", "normalized", "m", "h")])
    assert (r.exit_code("error"), r.exit_code("warning")) == (0, 0)
    r = Report([Finding("scale-disparity", "warning", "train", "m", "h")])
    assert (r.exit_code("error"), r.exit_code("warning")) == (0, 1)


def test_json_round_trips_with_summary_and_numbers():
    doc = json.loads(_report().to_json())
    assert doc["summary"] == {"error": 1, "warning": 1, "info": 1}
    assert [f["code"] for f in doc["findings"]] == ["nan-or-inf", "scale-disparity", "wrong-axis"]
    assert doc["findings"][1]["numbers"] == {"ratio": 250000.0}
    assert doc["inputs"] == {"train": "array (10, 2) float64"}


def test_text_puts_each_finding_under_a_code_header_with_its_fix():
    text = _report().to_text()
    assert text.splitlines()[:2] == ["normlab check", "  train: array (10, 2) float64"]
    assert "error[nan-or-inf] (train)\n  3 NaN\n  fix:\n    x = np.nan_to_num(x)" in text
    assert text.index("error[nan-or-inf]") < text.index("warning[scale-disparity]") < text.index("info[wrong-axis]")
    assert text.endswith("1 error, 1 warning, 1 info (3 checks run)")


def test_lookup_by_code_and_membership():
    r = _report()
    assert "nan-or-inf" in r and "double-scaling" not in r
    assert r.by_code("scale-disparity")[0].numbers["ratio"] == 2.5e5
    assert r.codes == ["nan-or-inf", "scale-disparity", "wrong-axis"]
    with pytest.raises(ValueError, match="unknown code; expected one of"):
        r.by_code("no-such-check")


def test_unknown_codes_and_severities_are_refused():
    with pytest.raises(ValueError, match="is not a known code"):
        Finding("made-up", "error", "train", "m", "h")
    with pytest.raises(ValueError, match="must be one of error, warning, info"):
        Finding("nan-or-inf", "fatal", "train", "m", "h")
    with pytest.raises(ValueError, match="must be one of error, warning, never"):
        _report().exit_code("info")


def test_every_code_is_kebab_case():
    assert all(code == code.lower() and " " not in code and "_" not in code for code in CODES)
    assert len(CODES) == 18
