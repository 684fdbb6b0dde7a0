"""The corpus of recipes from public code: every mistake is caught, no correct recipe is flagged, and the
README's table is the one measured here."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from tests.check.wild.cases import CASES, LATE_FROM

import normlab.check as check

README = Path(__file__).resolve().parents[3] / "README.md"
SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
#: Samples per image split: enough for exact statistics to differ the way the full sets do, and fast.
N_IMAGES = 2000


def _idx(path: Path, n: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        fh.read(16)
        return np.frombuffer(fh.read(n * 784), dtype=np.uint8).reshape(n, 28, 28, 1)


class WildData:
    """Real data for the cases: MNIST and Fashion-MNIST (2,000 train and test images each), the CIFAR-10
    JPEG subset (1,000; 700 + 300 as train and test), scikit-learn's bundled tables split 70/30."""

    def __init__(self) -> None:
        if not SHARED_DATA.is_dir():
            pytest.skip(f"real datasets not found at {SHARED_DATA}")
        datasets = pytest.importorskip("sklearn.datasets")
        from sklearn.model_selection import train_test_split

        import normlab.data

        self.mnist = _idx(SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz", N_IMAGES)
        self.mnist_test = _idx(SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz", N_IMAGES)
        self.fashion = _idx(SHARED_DATA / "fashion-mnist" / "train-images-idx3-ubyte.gz", N_IMAGES)
        self.fashion_test = _idx(SHARED_DATA / "fashion-mnist" / "t10k-images-idx3-ubyte.gz", N_IMAGES)
        self.cifar, _ = normlab.data.open(f"images:{SHARED_DATA / 'cifar10-jpg-subset' / 'test'}").arrays()
        self.cifar_train, self.cifar_test = self.cifar[::10 // 7][:700], self.cifar[1::3][:300]
        split = lambda x: tuple(train_test_split(x, test_size=0.3, random_state=0))  # noqa: E731
        self.cancer = split(datasets.load_breast_cancer().data)
        self.wine = split(datasets.load_wine().data)
        self.digits = split(datasets.load_digits().data)


def verdict(case, report) -> bool:
    """True when normlab got it right: a mistake caught by one of its codes at warning or error, or a
    correct recipe without any warning or error."""
    if case.kind == "mistake":
        return any(f.code in case.expect and f.severity in ("error", "warning") for f in report)
    return report.count("error") == 0 and report.count("warning") == 0


@pytest.fixture(scope="module")
def outcomes():
    data = WildData()
    return [(c, check(**c.build(data))) for c in CASES]


def table(outcomes) -> str:
    """The README's table: all cases, and those added after the checks were written."""
    first_late = [c.name for c, _ in outcomes].index(LATE_FROM)
    pct = lambda k, n: f"{100 * k / n:.0f}%"  # noqa: E731
    lines = ["| recipes from public code | cases | normlab check | rate |", "|---|---|---|---|"]
    for label, part in (("", outcomes), (" added after the checks", outcomes[first_late:])):
        mistakes = [verdict(c, r) for c, r in part if c.kind == "mistake"]
        correct = [verdict(c, r) for c, r in part if c.kind == "correct"]
        caught, flagged = sum(mistakes), len(correct) - sum(correct)
        lines += [f"| mistakes{label} | {len(mistakes)} | {caught} caught | {pct(caught, len(mistakes))} caught |",
                  f"| correct recipes{label} | {len(correct)} | {flagged} flagged | "
                  f"{pct(flagged, len(correct))} false alarms |"]
    return "\n".join(lines)


def test_the_corpus_has_25_mistakes_and_15_correct_recipes_with_sources():
    kinds = [c.kind for c in CASES]
    assert kinds.count("mistake") >= 25 and kinds.count("correct") >= 15
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.source and (c.expect or c.kind == "correct") for c in CASES)


def test_every_mistake_is_caught_and_no_correct_recipe_is_flagged(outcomes):
    wrong = [f"{c.kind} {c.name} ({c.source}): {r!r}" for c, r in outcomes if not verdict(c, r)]
    assert not wrong, "\n".join(wrong)


def test_the_readme_table_is_the_measured_one(outcomes):
    expected = table(outcomes)
    assert expected in README.read_text(encoding="utf-8"), "README's corpus table should read:\n" + expected
