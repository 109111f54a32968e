"""The paired comparison every ranking report uses: the p-value is scipy's paired t-test's, and the verdict
says "no difference" when the seeds do not separate the two sides."""

from __future__ import annotations

import pytest
from scipy import stats

from mixers.significance import format_comparison, paired_comparison


def test_p_value_is_the_paired_t_test() -> None:
    a = [3.561, 3.548, 3.574, 3.559]
    b = [3.567, 3.560, 3.575, 3.566]
    result = paired_comparison(a, b, ("agent", "uniform"))
    assert result["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert result["difference"]["mean"] == pytest.approx(sum(a) / 4 - sum(b) / 4)
    assert result["pairs"] == 4


def test_a_consistent_gain_beats_and_seed_noise_does_not() -> None:
    base = [3.50, 3.62, 3.55, 3.58, 3.53]
    better = [v - 0.02 + d for v, d in zip(base, [0.001, -0.001, 0.0005, 0.0, -0.0005], strict=True)]
    clear = paired_comparison(better, base, ("filtered", "unfiltered"))
    assert clear["verdict"].startswith("filtered beats unfiltered") and clear["p_value"] < 0.001
    worse = paired_comparison(base, better, ("unfiltered", "filtered"))
    assert worse["verdict"].startswith("filtered beats unfiltered")

    noisy = [v + d for v, d in zip(base, [0.03, -0.04, 0.02, -0.03, 0.01], strict=True)]
    unclear = paired_comparison(noisy, base, ("regmix", "natural"))
    assert unclear["verdict"].startswith("no difference") and unclear["p_value"] > 0.05
    assert "+-" in format_comparison(unclear, ("regmix", "natural"))


def test_one_pair_or_identical_differences_cannot_be_tested() -> None:
    assert paired_comparison([1.0], [2.0])["verdict"].startswith("no test possible")
    assert paired_comparison([1.0, 2.0], [1.5, 2.5])["p_value"] is None
    with pytest.raises(ValueError, match="same seeds"):
        paired_comparison([1.0, 2.0], [1.0])
