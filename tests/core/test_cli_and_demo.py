"""The command line as a user meets it: --help everywhere, inspect, and the demo without ../shared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import REPO, run_cli


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the real CLI tree, so a new command cannot miss its help."""
    from api.main import app

    def walk(command: click.Command, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        subs = getattr(command, "commands", {})
        return [path] + [p for name, sub in sorted(subs.items()) for p in walk(sub, (*path, name))]

    return walk(typer.main.get_command(app), ())


@pytest.mark.parametrize("command", command_paths(), ids=lambda path: " ".join(path) or "curate")
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    """Help for every command; flags show no `<bool>` value placeholder (they take no value)."""
    from api.main import app

    result = CliRunner().invoke(app, [*command, "--help"], prog_name="curate", terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "<bool>" not in result.output


def test_demo_without_shared_data_then_inspect(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CURATE_SHARED_DATA": str(tmp_path / "no-shared-here"),
        "CURATE_KENLM": str(REPO / ".cache" / "kenlm"),  # lmplz is built once by `make`, not per test
    }
    out = tmp_path / "demo-out"
    demo = ("demo", "--out", str(out), "--workers", "2", "--proxy-tokens", "20000")  # the proxy: ~20 s
    result = run_cli(*demo, cwd=tmp_path, env=env)
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

    again = run_cli(*demo, cwd=tmp_path, env=env)
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
