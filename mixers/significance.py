"""Is A better than B, or is the difference seed noise? Paired comparisons for every report that ranks
mixtures, corpora or strategies.

Why paired: the runs being compared share their seeds (the same proxy initialisation and data order per
seed), so the per-seed difference removes most of the run-to-run noise that two independent means carry.
The test is the paired t-test on those differences (two-sided), the usual choice for a handful of seeds;
with fewer than 2 pairs, or differences all equal, no test is possible and the verdict says so. Lower is
better for every score these reports compare (bits per byte, losses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

ALPHA = 0.05


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample standard deviation over sqrt(n); 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def paired_comparison(
    a: Sequence[float], b: Sequence[float], names: tuple[str, str] = ("A", "B"), alpha: float = ALPHA
) -> dict[str, Any]:
    """A vs B over the same seeds (value i of each from seed i): both means +- SE, the mean difference
    A - B +- SE, the paired t-test's p-value, and a verdict in words ("A beats B" or "no difference")."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired comparison needs the same seeds on both sides (got {len(a)} and {len(b)})")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean_a, se_a = mean_and_se(a)
    mean_b, se_b = mean_and_se(b)
    mean_diff, se_diff = mean_and_se(diffs)
    p_value = _paired_p_value(diffs)
    return {
        names[0]: {"mean": mean_a, "se": se_a},
        names[1]: {"mean": mean_b, "se": se_b},
        "difference": {"mean": mean_diff, "se": se_diff},
        "pairs": len(diffs),
        "p_value": p_value,
        "test": "paired t-test, two-sided",
        "verdict": verdict(names, mean_diff, p_value, len(diffs), alpha),
    }


def verdict(names: tuple[str, str], mean_diff: float, p_value: float | None, pairs: int, alpha: float) -> str:
    if p_value is None:
        return f"no test possible ({pairs} seed pair(s), or identical differences)"
    if p_value >= alpha:
        return f"no difference (p={p_value:.3g} over {pairs} paired seeds)"
    better, worse = names if mean_diff < 0 else names[::-1]
    return f"{better} beats {worse} (p={p_value:.3g} over {pairs} paired seeds)"


def _paired_p_value(diffs: Sequence[float]) -> float | None:
    """Two-sided p of the paired t-test; None when it is undefined (one pair, or zero variance)."""
    from scipy import stats

    mean, se = mean_and_se(diffs)
    if len(diffs) < 2 or se == 0.0:
        return None
    return float(2 * stats.t.sf(abs(mean / se), df=len(diffs) - 1))


def format_comparison(comparison: dict[str, Any], names: tuple[str, str], digits: int = 4) -> str:
    """One line: `A 3.5610 +- 0.0077 vs B 3.5667 +- 0.0050: no difference (p=0.41 over 3 paired seeds)`."""
    a, b = (comparison[name] for name in names)
    return (
        f"{names[0]} {a['mean']:.{digits}f} +- {a['se']:.{digits}f} vs {names[1]} {b['mean']:.{digits}f} "
        f"+- {b['se']:.{digits}f}: {comparison['verdict']}"
    )
