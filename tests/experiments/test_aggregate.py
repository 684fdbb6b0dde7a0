"""The paired statistics on inputs whose answers are known independently (hand formulas, enumeration)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from normlab.experiments.aggregate import (
    bootstrap_ci,
    holm,
    paired_tests,
    probability_of_improvement,
    summarize,
    summarize_curves,
)


def test_paired_t_test_matches_the_textbook_formula():
    baseline = np.array([0.88, 0.90, 0.91, 0.90, 0.89])
    d = np.array([0.02, 0.02, 0.04, 0.01, 0.04])
    r = paired_tests(baseline + d, baseline)
    # mean 0.026, sample sd sqrt(720e-6 / 4), t = mean / (sd / sqrt(5)) = 4.3333...
    t = 0.026 / (math.sqrt(720e-6 / 4) / math.sqrt(5))
    assert r["n_pairs"] == 5
    assert r["diff_mean"] == pytest.approx(0.026)
    assert r["t_stat"] == pytest.approx(t, rel=1e-9)
    assert t == pytest.approx(13 / 3)
    assert r["t_p"] == pytest.approx(2 * stats.t.sf(t, df=4), rel=1e-9)


def test_wilcoxon_p_value_equals_exact_enumeration():
    baseline = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    d = np.array([0.01, 0.02, 0.03, 0.05, -0.04])  # ranks 1 2 3 5 positive, 4 negative
    r = paired_tests(baseline + d, baseline)
    w_minus = 4
    # every sign pattern is equally likely under H0: count rank-sum subsets at least as extreme
    subsets = [s for k in range(6) for s in itertools.combinations(range(1, 6), k)]
    as_extreme = sum(1 for s in subsets if sum(s) <= w_minus)
    assert as_extreme == 7
    assert r["wilcoxon_stat"] == w_minus
    assert r["wilcoxon_p"] == pytest.approx(2 * as_extreme / 32)


def test_paired_tests_degenerate_cases_give_the_limits():
    same = paired_tests([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (same["t_stat"], same["t_p"], same["wilcoxon_p"]) == (0.0, 1.0, 1.0)
    shifted = paired_tests([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert shifted["t_stat"] == math.inf and shifted["t_p"] == 0.0
    assert math.isnan(paired_tests([0.5], [0.4])["t_p"])
    with pytest.raises(ValueError, match="same length"):
        paired_tests([1.0, 2.0], [1.0])


def test_holm_adjusts_step_down_and_keeps_nan_out_of_the_family():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([math.nan, 0.02, 0.04])
    assert math.isnan(adjusted[0])
    assert adjusted[1:] == pytest.approx([0.04, 0.04])
    assert holm([0.6, 0.9]) == [1.0, 1.0]  # capped at 1, and never below an earlier step


def test_probability_of_improvement_counts_all_pairs_with_half_ties():
    assert probability_of_improvement([0.9, 0.8], [0.8, 0.7]) == 0.875
    assert probability_of_improvement([1.0], [2.0]) == 0.0
    # for a loss, lower is better
    assert probability_of_improvement([0.1, 0.2], [0.3, 0.2], higher_is_better=False) == 0.875


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible():
    v = [0.91, 0.93, 0.92, 0.95, 0.90]
    lo, hi = bootstrap_ci(v)
    assert lo < np.mean(v) < hi
    assert min(v) <= lo and hi <= max(v)
    assert bootstrap_ci(v) == (lo, hi)
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def _runs_and_epochs(final: dict[tuple[str, int], float], diverged: set[tuple[str, int]]):
    runs, epochs = [], []
    for (method, k), acc in final.items():
        status = "diverged" if (method, k) in diverged else "done"
        runs.append(
            {"model": "mlp", "method": method, "init_seed": k, "order_seed": k, "status": status}
        )
        for epoch, a in ((1, acc - 0.1), (2, acc)):
            epochs.append(
                {
                    "model": "mlp",
                    "method": method,
                    "init_seed": k,
                    "order_seed": k,
                    "epoch": epoch,
                    "status": status,
                    "train_loss": 1.0 / epoch,
                    "train_acc": a,
                    "val_loss": 2.0 - a,
                    "val_acc": a,
                    "seconds": 0.5,
                    "grad_norm_mean": 1.0,
                    "grad_norm_max": 2.0,
                }
            )
    return runs, epochs


def test_summarize_pairs_runs_by_seed_and_leaves_diverged_runs_out():
    final = {
        ("none", 0): 0.80,
        ("none", 1): 0.82,
        ("none", 2): 0.81,
        ("max", 0): 0.85,
        ("max", 1): 0.86,
        ("max", 2): 0.84,
        ("center", 0): 0.70,
        ("center", 1): 0.95,
        ("center", 2): 0.83,
    }
    runs, epochs = _runs_and_epochs(final, diverged={("center", 2)})
    rows = summarize(
        runs, epochs, baseline="none", methods=["none", "max", "center"], models=["mlp"]
    )
    by = {r["method"]: r for r in rows}
    assert by["max"]["n_runs"] == 3 and by["max"]["n_diverged"] == 0
    assert by["max"]["final_val_acc_mean"] == pytest.approx(0.85)
    assert by["max"]["final_val_acc_std"] == pytest.approx(0.01)
    assert by["max"]["best_val_acc_mean"] == pytest.approx(0.85)
    assert by["max"]["final_val_loss_mean"] == pytest.approx(2.0 - 0.85)
    ref = paired_tests([0.85, 0.86, 0.84], [0.80, 0.82, 0.81])
    assert by["max"]["t_p"] == pytest.approx(ref["t_p"])
    assert by["max"]["p_improvement"] == 1.0
    # center: one diverged run, so two pairs, and the mean is over the two finished runs
    assert by["center"]["n_diverged"] == 1 and by["center"]["n_pairs"] == 2
    assert by["center"]["final_val_acc_mean"] == pytest.approx(0.825)
    assert by["center"]["t_p"] == pytest.approx(paired_tests([0.70, 0.95], [0.80, 0.82])["t_p"])
    # Holm over the two compared methods
    assert by["max"]["t_p_holm"] == pytest.approx(holm([by["max"]["t_p"], by["center"]["t_p"]])[0])
    assert math.isnan(by["none"]["t_p"]) and by["none"]["baseline"] == "none"


def test_curves_average_each_epoch_over_finished_runs():
    final = {("none", 0): 0.80, ("none", 1): 0.90, ("max", 0): 0.5}
    runs, epochs = _runs_and_epochs(final, diverged={("max", 0)})
    curves = summarize_curves(runs, epochs)
    assert ("mlp", "max") not in curves
    c = curves[("mlp", "none")]
    assert c["epoch"].tolist() == [1, 2]
    assert c["val_acc_mean"] == pytest.approx([0.75, 0.85])
    assert c["val_acc_std"] == pytest.approx([np.std([0.7, 0.8], ddof=1)] * 2)
