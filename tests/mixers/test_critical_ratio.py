"""Critical mixture ratio: the crossing and the power law on known values, and a whole search on tiny
proxies of real text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.mixing_textdata import cached_text_shards
from curate.errors import ConfigError
from mixers.spec import load_spec
from mixers.strategies.critical_ratio import CriticalRatioSearch, crossing, power_law
from mixers.strategies.environment import ProxyConfig
from tests.conftest import run_cli

TINY = ProxyConfig(d_model=32, n_layers=2, n_heads=2, seq_len=32, batch_size=8, eval_tokens=1024)
PROXY = {"d_model": 32, "n_layers": 2, "n_heads": 2, "seq_len": 32, "batch_size": 8, "eval_tokens": 1024}


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


def search_config(tmp_path: Path, section: dict, **extra) -> Path:
    config = {
        "tokens": str(cached_text_shards(max_docs={"wiki": 30, "news": 60, "code": 20}, max_chars=3000)),
        "proxy": PROXY,
        "objective": {"critical_ratio": section},
        "mixture": {"corpora": ["corpus/"], "budget": 1_000_000, "tokenizer": {"chars_per_token": 4.0}},
        **extra,
    }
    path = tmp_path / "cmr.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_mixsearch_finds_the_ratio_at_each_budget_and_writes_its_mixture(tmp_path: Path):
    section = {"domain": "code", "budgets": [8, 32], "ratios": [0.2, 0.5, 0.8], "base_steps": 40}
    result = run_cli("mixsearch", str(search_config(tmp_path, section)))
    assert result.returncode == 0, result.stderr
    assert "critical mixture ratio of code" in result.stdout
    report = json.loads((tmp_path / "mix.search.json").read_text())["critical_ratio"]
    assert set(report["general_mix"]) == {"news", "wiki"}  # the new domain is not part of the general mix
    assert len(report["base"]["general_bpb"]) == 2  # two paired seeds by default
    for row in report["budgets"]:
        assert row["tokens"] == row["steps"] * TINY.tokens_per_step
        assert [run["ratio"] for run in row["runs"]] == [0.2, 0.5, 0.8]
        assert all(len(run["general_rise"]) == 2 for run in row["runs"])
        assert all(run["versus_tolerance"]["pairs"] == 2 for run in row["runs"])  # paired by seed
        domain = [np.mean(run["domain_bpb"]) for run in row["runs"]]
        assert domain[0] > domain[-1]  # more of the domain, lower its loss
    last = report["budgets"][-1]
    share = last["cmr"] if last["bound"] == "inside" else 0.8
    spec = load_spec(tmp_path / "mix.yaml")
    assert spec.domains["code"].weight == pytest.approx(share, abs=1e-5)


def test_mixsearch_critical_ratio_errors_are_one_line(tmp_path: Path):
    cases = [
        ({"domain": "maths", "budgets": [8]}, {}, "not a training domain"),
        ({"domain": "code", "budgets": [8]}, {"strategy": "regmix"}, "drop strategy"),
        ({"domain": "code"}, {}, "budgets"),
    ]
    for section, extra, message in cases:
        result = run_cli("mixsearch", str(search_config(tmp_path, section, **extra)))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
