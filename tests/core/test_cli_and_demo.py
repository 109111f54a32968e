"""The command line as a user meets it: --help everywhere, inspect, and the demo without ../shared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

COMMANDS = [
    (),
    ("run",),
    ("inspect",),
    ("demo",),
    ("mix",),
    ("train",),
    ("eval",),
    ("score",),
    ("compare",),
    ("mixsearch",),
    ("serve",),
    ("jobs",),
    ("jobs", "submit"),
    ("schedules",),
    ("models",),
    ("models", "train-lm"),
    ("agent",),
    ("agent", "collect"),
    ("bench",),
    ("bench", "pipeline"),
    ("bench", "minhash"),
    ("bench", "rules"),
    ("bench", "filters"),
    ("bench", "dedup"),
    ("bench", "dedup-quality"),
    ("bench", "mix"),
    ("bench", "train"),
    ("bench", "mixing"),
    ("bench", "filtering"),
    ("bench", "api"),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_demo_without_shared_data_then_inspect(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CURATE_SHARED_DATA": str(tmp_path / "no-shared-here"),
        "CURATE_KENLM": str(REPO / ".cache" / "kenlm"),  # lmplz is built once by `make`, not per test
    }
    out = tmp_path / "demo-out"
    result = run_cli("demo", "--out", str(out), "--workers", "2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["domains"]) >= {"wiki", "news", "code"}
    stages = [stage["stage"] for stage in manifest["stages"]]
    assert stages == ["read", "normalize", "tag", "langid", "heuristics", "perplexity", "toxicity", "dedup"]
    toxicity = next(stage for stage in manifest["stages"] if stage["stage"] == "toxicity")
    assert toxicity["stats"].get("toxicity:wordlist_fallback", 0) > 0, "the manifest names the fallback"
    assert (tmp_path / ".cache" / "models" / "wiki-5gram").is_dir(), "the demo trains its own LM"
    totals = manifest["totals"]
    assert totals["read"] == totals["kept"] + totals["rejected"] + totals["duplicates"]

    again = run_cli("demo", "--out", str(out), "--workers", "2", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "manifest.json").read_text())["totals"] == manifest["totals"]
    assert "proxy score" in result.stdout and (tmp_path / "proxy" / "result.json").is_file()
    mixture = json.loads((tmp_path / "mix" / "manifest.json").read_text())
    assert set(mixture["domains"]) <= set(manifest["domains"])

    inspected = run_cli("inspect", str(out), "--json", cwd=tmp_path)
    assert inspected.returncode == 0, inspected.stderr
    report = json.loads(inspected.stdout)
    assert {row["domain"] for row in report["domains"]} == set(manifest["domains"])
    assert sum(row["docs"] for row in report["domains"]) == manifest["totals"]["kept"]
    assert len(report["samples"]) == 3


def test_inspect_of_a_non_output_is_one_line(tmp_path: Path) -> None:
    result = run_cli("inspect", str(tmp_path))
    assert result.returncode == 2 and "manifest.json" in result.stderr and "Traceback" not in result.stderr
