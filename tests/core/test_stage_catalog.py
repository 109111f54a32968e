"""`curate stages [NAME]`: every stage listed from its code, and what it declares is what a run does:
each reject reason a real run writes is one its stage declares, and the README's table names every stage."""

from __future__ import annotations

import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import pyarrow.compute as pc
import pytest

from curate.stages.registry import ENTRY_POINT_GROUP, get_stage
from curate.textsources import shared_data_dir
from tests.conftest import REPO, run_cli
from tests.core.helpers import read_parts, write_config

SHARED = shared_data_dir()
QUESTION_ANSWER = ["question", "answer"]


def installed_stages() -> set[str]:
    """The stages of the installed packages (a test may register more in its own process)."""
    return {point.name for point in entry_points(group=ENTRY_POINT_GROUP)}


def test_every_stage_is_listed_with_its_params_columns_and_drops() -> None:
    result = run_cli("stages", "--json")
    assert result.returncode == 0, result.stderr
    listed = {stage["name"]: stage for stage in json.loads(result.stdout)}
    assert set(listed) == installed_stages()
    for name, stage in listed.items():
        assert "error" not in stage, stage
        assert stage["summary"], name
        params = {p["name"]: p for p in stage["params"]}
        assert params["domains"]["default"] is None, "every stage can be scoped to domains"
    assert {p["name"]: p["default"] for p in listed["langid"]["params"]}["min_score"] == 0.65
    assert [c["name"] for c in listed["langid"]["columns"]] == ["lang", "lang_score"]
    assert set(listed["langid"]["drops"]) == {"lang:low_score", "lang:not_kept", "lang:empty"}
    assert "heuristics:empty" in listed["heuristics"]["drops"]
    assert "gopher_quality.min_words" in {p["name"] for p in listed["heuristics"]["params"]}

    one = run_cli("stages", "langid")
    assert one.returncode == 0 and "lang:low_score" in one.stdout and "min_score" in one.stdout
    unknown = run_cli("stages", "dedup")
    assert unknown.returncode == 2 and "unknown stage 'dedup'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_the_readme_table_names_every_stage() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = {match for match in re.findall(r"^\| `([a-z_]+)` \|", readme, re.MULTILINE)}
    assert installed_stages() <= table


def declared(stage: str, reason: str) -> bool:
    """`reason` is one of the stage's declared codes, where `<...>` in a code stands for any name."""
    for code in get_stage(stage).drop_reasons():
        prefix = code.split("<")[0]
        if code == reason or ("<" in code and reason.startswith(prefix) and len(reason) > len(prefix)):
            return True
    return False


@pytest.mark.skipif(SHARED is None, reason="../shared/data (real web shards) is absent")
def test_every_reject_reason_of_a_real_run_is_declared(tmp_path: Path) -> None:
    assert SHARED is not None
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("blogspot.com\n")
    gsm8k = SHARED / "domains" / "gsm8k_test.jsonl"
    config = {
        "inputs": [{"path": str(SHARED / "web" / "*.jsonl"), "name": "web"}],
        "stages": [
            {"url_filter": {"lists": {"blocked": {"domains": str(blocklist)}}}},
            {"normalize": {}},
            {"langid": {"langs": ["en"]}},
            {"heuristics": {"mode": "drop"}},
            {"decontaminate": {"sets": [{"name": "gsm8k", "path": str(gsm8k), "fields": QUESTION_ANSWER}]}},
        ],
    }
    out = tmp_path / "out"
    result = run_cli("run", str(write_config(tmp_path, config)), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rejects = read_parts(out / "rejects")
    stages, reasons = rejects.column("reject_stage").to_pylist(), rejects.column("reject_reason").to_pylist()
    pairs = set(zip(stages, reasons, strict=True))
    pairs = {(stage, reason) for stage, reason in pairs if stage != "read"}  # the reader's own reasons
    assert {stage for stage, _ in pairs} >= {"url_filter", "langid", "heuristics"}, pairs
    assert all(declared(stage, reason) for stage, reason in pairs), [p for p in pairs if not declared(*p)]
    assert pc.sum(pc.equal(rejects.column("reject_stage"), "url_filter")).as_py() > 0
