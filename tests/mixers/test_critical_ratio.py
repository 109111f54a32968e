"""Critical mixture ratio: the crossing and the power law on known values, and a whole search on tiny
proxies of real text."""

from __future__ import annotations

import numpy as np
import pytest

from bench.mixing_textdata import cached_text_shards
from curate.errors import ConfigError
from mixers.strategies.critical_ratio import CriticalRatioSearch, crossing, find_critical_ratio, power_law
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment

TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)


def test_crossing_is_interpolated_between_grid_points_or_named_as_a_bound():
    assert crossing([0.1, 0.3, 0.5], [0.0, 0.005, 0.025], 0.01) == {"cmr": 0.35, "bound": "inside"}
    assert crossing([0.1, 0.3], [0.02, 0.03], 0.01) == {"cmr": None, "bound": "below 0.1"}
    assert crossing([0.1, 0.3], [0.0, 0.01], 0.01) == {"cmr": None, "bound": "at least 0.3"}


def test_power_law_recovers_a_known_curve():
    tokens = [1_000, 10_000, 100_000]
    fit = power_law(tokens, [0.5 * t**-0.2 for t in tokens])
    assert fit is not None and fit["a"] == pytest.approx(0.5) and fit["b"] == pytest.approx(-0.2)
    assert power_law([1_000], [0.3]) is None


def test_bad_settings_are_one_line():
    with pytest.raises(ConfigError, match="tolerance"):
        CriticalRatioSearch("code", (10,), tolerance=1.5)
    with pytest.raises(ConfigError, match="ratios"):
        CriticalRatioSearch("code", (10,), ratios=(0.0, 0.5))


def test_a_search_reports_every_budget_with_paired_seeds():
    shards = cached_text_shards(max_docs={"wiki": 30, "news": 60, "code": 20}, max_chars=3000)
    env = ProxyEnvironment.open(shards, TINY)
    search = CriticalRatioSearch("code", (8, 32), ratios=(0.2, 0.5, 0.8), base_steps=40, seeds=(0, 1))
    report = find_critical_ratio(env, search)
    assert set(report["general_mix"]) == {"news", "wiki"}  # the new domain is not part of the general mix
    assert len(report["base"]["general_bpb"]) == 2
    for row in report["budgets"]:
        assert row["tokens"] == row["steps"] * TINY.tokens_per_step
        assert [run["ratio"] for run in row["runs"]] == [0.2, 0.5, 0.8]
        assert all(len(run["general_rise"]) == 2 for run in row["runs"])
        assert all(run["versus_tolerance"]["pairs"] == 2 for run in row["runs"])  # paired by seed
        domain = [np.mean(run["domain_bpb"]) for run in row["runs"]]
        assert domain[0] > domain[-1]  # more of the domain, lower its loss
        if row["bound"] == "inside":
            assert 0.2 <= row["cmr"] <= 0.8
    with pytest.raises(ConfigError, match="not a training domain"):
        find_critical_ratio(env, CriticalRatioSearch("maths", (8,)))
