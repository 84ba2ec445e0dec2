"""Paired comparisons of two inits over shared seeds: difference, 95% interval, verdicts, wording."""
import numpy as np
import pytest
from scipy import stats as sps

from hcmoco.results.stats import all_verdict, cell, paired
from hcmoco.results.summary import (Comparison, ablation_statements, comparisons, count_line, finetune_statements,
                                    versatility_statements)

# two inits on four seeds: the seed moves both a lot, the difference little
A = {0: 0.50, 1: 0.60, 2: 0.70, 3: 0.55}
B = {0: 0.48, 1: 0.57, 2: 0.69, 3: 0.52}


def hand_ci(a, b):
    """Mean difference in points and its 95% interval, computed directly with scipy."""
    d = np.array([a[s] - b[s] for s in sorted(a)]) * 100
    half = sps.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def test_paired_difference_and_interval_match_a_hand_computation():
    p = paired(A, B)
    mean, low, high = hand_ci(A, B)
    assert p.seeds == (0, 1, 2, 3) and p.diffs == pytest.approx([2.0, 3.0, 1.0, 3.0])
    assert p.mean == pytest.approx(mean) == pytest.approx(2.25)
    assert p.ci == pytest.approx((low, high))
    # the same interval as scipy's paired t-test gives
    test = sps.ttest_rel([A[s] * 100 for s in sorted(A)], [B[s] * 100 for s in sorted(B)])
    ci = test.confidence_interval(0.95)
    assert p.ci == pytest.approx((ci.low, ci.high))
    assert test.pvalue < 0.05 and p.verdict == "confirmed"


def test_pairing_finds_what_the_unpaired_spread_hides():
    a, b = cell(A.values()), cell(B.values())
    assert abs(a.mean - b.mean) < a.std + b.std  # the seed spreads overlap ...
    assert sps.ttest_ind(list(A.values()), list(B.values())).pvalue > 0.5  # ... and unpaired, nothing shows
    assert paired(A, B).ci[0] > 0  # paired, the interval excludes 0


def test_verdicts_follow_the_interval():
    assert paired(B, A).verdict == "refuted" and paired(B, A).ci[1] < 0
    mixed = paired({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.49, 1: 0.62, 2: 0.69})  # +1, -2, +1 points
    assert mixed.ci[0] < 0 < mixed.ci[1] and mixed.verdict == "inconclusive"


def test_one_seed_has_no_interval_and_is_inconclusive():
    p = paired({0: 0.5}, {0: 0.4})
    assert p.n == 1 and p.mean == pytest.approx(10.0) and p.ci is None and p.verdict == "inconclusive"


def test_a_seed_run_by_one_init_only_is_left_out():
    p = paired({0: 0.5, 1: 0.6, 2: 0.9}, {0: 0.4, 1: 0.5, 3: 0.0})
    assert p.seeds == (0, 1) and p.diffs == pytest.approx([10.0, 10.0])
    assert paired({0: 0.5}, {1: 0.4}).n == 0


@pytest.mark.parametrize("verdicts, expected", [
    (["confirmed"] * 4, "confirmed"),
    (["confirmed", "refuted", "confirmed", "confirmed"], "refuted"),
    (["inconclusive", "refuted", "confirmed", "inconclusive"], "refuted"),
    (["confirmed", "inconclusive", "confirmed", "confirmed"], "inconclusive"),
    ([], "inconclusive"),
])
def test_the_ordering_holds_only_if_every_comparison_does(verdicts, expected):
    assert all_verdict(verdicts) == expected


def test_statement_line_and_count_line():
    a = {0: 0.050, 1: 0.056, 2: 0.060}
    b = {0: 0.048, 1: 0.049, 2: 0.054}
    mean, low, high = hand_ci(a, b)
    c = Comparison("finetune", "parsing", 0.1, "miou", "RGB human parsing, 10% labels, mIoU", "hcmoco", "sample",
                   paired(a, b))
    assert c.line() == (f"- RGB human parsing, 10% labels, mIoU: HCMoCo vs sample-level (CMC) {mean:+.1f} points "
                        f"[95% CI {low:+.1f}, {high:+.1f}], 3 paired seeds: {c.result.verdict}.")
    one = Comparison("finetune", "parsing", 0.1, "miou", "RGB human parsing, 1% labels, mIoU", "hcmoco", "scratch",
                     paired({0: 0.3}, {0: 0.1}))
    assert one.line() == ("- RGB human parsing, 1% labels, mIoU: HCMoCo vs scratch (random init) +20.0 points, "
                          "1 paired seed (no interval): inconclusive.")
    assert count_line("HCMoCo > sample-level (CMC)", ["confirmed"] * 2 + ["inconclusive"] * 6) == \
        "HCMoCo > sample-level (CMC): confirmed in 2, refuted in 0, inconclusive in 6 of 8 settings."
    assert c.row()["ci_low"] == round(low, 4) and one.row()["ci_low"] == "n/a"


def records(task, fraction, values, metric="miou"):
    """Fine-tuning records from {init: {seed: value}}."""
    return [{"task": task, "init": init, "fraction": fraction, "seed": s, "metric": metric, "value": v}
            for init, by_seed in values.items() for s, v in by_seed.items()]


def test_finetune_statements_pair_each_baseline_with_hcmoco():
    recs = records("parsing", 0.1, {"hcmoco": A, "sample": B, "scratch": {0: 0.2, 1: 0.3, 2: 0.25, 3: 0.2}})
    lines = finetune_statements(recs)
    mean, low, high = hand_ci(A, B)
    assert lines[1] == (f"- RGB human parsing, 10% labels, mIoU: HCMoCo vs sample-level (CMC) {mean:+.1f} points "
                        f"[95% CI {low:+.1f}, {high:+.1f}], 4 paired seeds: confirmed.")
    assert lines[0].startswith("- RGB human parsing, 10% labels, mIoU: HCMoCo vs scratch (random init) +")
    assert lines[-2:] == ["HCMoCo > scratch (random init): confirmed in 1, refuted in 0, inconclusive in 0 of 1 settings.",
                          "HCMoCo > sample-level (CMC): confirmed in 1, refuted in 0, inconclusive in 0 of 1 settings."]


def ablation_records(nodense, fraction=0.1):
    """Full HCMoCo 2 points over w/o sparse, w/o sparse 2 points over sample; w/o dense as given."""
    base = {0: 0.50, 1: 0.60, 2: 0.70}
    shift = lambda points, wobble: {s: v + points / 100 + wobble * (s % 2) for s, v in base.items()}  # noqa: E731
    return records("pose3d", fraction, {"hcmoco": shift(4, 0.003), "hcmoco_nosparse": shift(2, 0.001), "sample": base,
                                        "hcmoco_nodense": nodense}, metric="map_10cm")


def test_ablation_verdict_per_setting_names_the_deciding_comparison():
    confirmed = ablation_statements(ablation_records({0: 0.52, 1: 0.621, 2: 0.72}))
    assert confirmed[0].startswith("- 3D pose estimation from depth, 10% labels, mAP@10cm: confirmed "
                                   "(4 of 4 comparisons confirmed); decided by ")
    assert confirmed[-1] == ("Full HCMoCo ≥ each single-loss ablation ≥ sample-level: confirmed in 1, refuted in 0, "
                             "inconclusive in 0 of 1 settings.")
    refuted = ablation_statements(ablation_records({0: 0.60, 1: 0.70, 2: 0.80}))  # w/o dense beats full HCMoCo
    assert "mAP@10cm: refuted (3 of 4 comparisons confirmed); decided by HCMoCo vs HCMoCo w/o dense -" in refuted[0]
    unclear = ablation_statements(ablation_records({0: 0.55, 1: 0.58, 2: 0.73}))  # noisy against both neighbours
    assert "mAP@10cm: inconclusive (2 of 4 comparisons confirmed); decided by " in unclear[0]
    assert "refuted in 0, inconclusive in 1 of 1" in unclear[-1]


def test_versatility_settings_are_paired_over_seeds():
    recs = [{"experiment": "crossmodal", "init": init, "seed": s, "setting": "rgb->depth", "value": v}
            for init, values in (("hcmoco", A), ("scratch", B)) for s, v in values.items()]
    lines = versatility_statements(recs)
    mean, low, high = hand_ci(A, B)
    assert lines[0] == (f"- labels on RGB, tested on depth (mIoU): HCMoCo vs scratch (random init) {mean:+.1f} "
                        f"points [95% CI {low:+.1f}, {high:+.1f}], 4 paired seeds: confirmed.")
    rows = [c.row() for c in comparisons([], recs)]
    assert rows == [{"section": "versatility", "task_or_experiment": "crossmodal", "fraction_or_setting": "rgb->depth",
                     "metric": "miou", "a": "hcmoco", "b": "scratch", "n": 4, "mean_diff": 2.25,
                     "ci_low": round(low, 4), "ci_high": round(high, 4),
                     "verdict": "confirmed"}]
