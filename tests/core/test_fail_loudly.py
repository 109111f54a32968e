"""No silent success: a run whose input reads as nothing fails, a fallback warns, a user error is one
line, and a run redirected to a log says how far it is. Every case runs the real `curate` command on the
real web shards (or files derived from them here, in tmp_path)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import REPO, run_cli
from tests.core.helpers import write_config
from tests.core.test_bad_input import without_file_permission_bypass

C4 = "c4-sample.01.json.gz"
C4_RECORDS = 10


def first_record_keys(path: Path) -> list[str]:
    with gzip.open(path, "rb") as handle:
        return list(orjson.loads(handle.readline()))


def config_file(folder: Path, *inputs: dict, stages: list | None = None) -> Path:
    return write_config(folder, {"inputs": list(inputs), "stages": stages or []})


def run(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("run", str(config), "--out", str(out), *extra)


def wide_terminal() -> dict[str, str]:
    """Rich wraps to 80 columns without a terminal; wide enough that a warning stays on one line."""
    return {**os.environ, "COLUMNS": "400"}


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The stderr of a run that failed on a user error: exit 2, one `error:` line, no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_a_field_map_that_matches_nothing_fails_naming_the_input_its_keys_and_the_fix(
    tmp_path: Path, web: Path
) -> None:
    config = config_file(tmp_path, {"path": str(web / C4), "name": "c4", "fields": {"text": "body"}})
    error = one_error_line(run(config, tmp_path / "out"))
    keys = first_record_keys(web / C4)
    assert error.startswith(f"error: inputs[0] (c4/{C4}): no document in its first {C4_RECORDS} records")
    assert "line 1: no text field (looked for body" in error
    assert f"the first record has keys {', '.join(keys)}" in error
    assert "set `fields: {text: KEY}` on this input" in error and "`allow_unreadable: true`" in error
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_the_corrected_config_reuses_the_refused_runs_output(tmp_path: Path, web: Path) -> None:
    """A refused run finished no shard, so the fixed config takes its folder over; a finished one does not."""
    out = tmp_path / "out"
    wrong = config_file(tmp_path, {"path": str(web / C4), "name": "c4", "fields": {"text": "body"}})
    one_error_line(run(wrong, out))
    fixed = write_config(tmp_path, {"inputs": [{"path": str(web / C4), "name": "c4"}]}, "fixed.yaml")
    done = run(fixed, out)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "manifest.json").read_text())["totals"]["kept"] == C4_RECORDS
    other = write_config(tmp_path, {"inputs": [{"path": str(web / C4), "name": "c4"}], "seed": 1}, "o.yaml")
    assert "holds a run of a different config" in one_error_line(run(other, out))


def test_a_wrong_format_fails_and_says_what_the_file_looks_like(tmp_path: Path, web: Path) -> None:
    shard = tmp_path / "c4.jsonl"
    shard.write_bytes(gzip.decompress((web / C4).read_bytes()))
    config = config_file(tmp_path, {"path": str(shard), "name": "c4", "format": "warc"})
    error = one_error_line(run(config, tmp_path / "out"))
    assert error.startswith("error: inputs[0] (c4/c4.jsonl): no document in its first record read as warc")
    assert f"the first record has keys {', '.join(first_record_keys(web / C4))}" in error
    assert "set `format: jsonl` on this input" in error


def test_the_bad_input_is_named_among_good_ones_with_workers(tmp_path: Path, web: Path) -> None:
    """With a pool of workers the refusal comes back from a worker process, still as one line."""
    good = {"path": str(web / "c4-sample.0*.json.gz"), "name": "good"}
    bad = {"path": str(web / C4), "name": "bad", "fields": {"text": "content"}}
    error = one_error_line(run(config_file(tmp_path, good, bad), tmp_path / "out", "--workers", "2"))
    assert error.startswith(f"error: inputs[1] (bad/{C4}): no document in its first")


def test_the_refusal_comes_back_from_ray_actors_as_one_line(tmp_path: Path, web: Path) -> None:
    pytest.importorskip("ray")
    config = config_file(tmp_path, {"path": str(web / C4), "name": "c4", "fields": {"text": "body"}})
    error = one_error_line(run(config, tmp_path / "out", "--executor", "ray"))
    assert error.startswith(f"error: inputs[0] (c4/{C4}): no document in its first {C4_RECORDS} records")


def test_allow_unreadable_accepts_the_input_and_the_manifest_shows_it(tmp_path: Path, web: Path) -> None:
    good = {"path": str(web / "c4-sample.02.json.gz"), "name": "good"}
    bad = {"path": str(web / C4), "name": "bad", "fields": {"text": "body"}, "allow_unreadable": True}
    done = run(config_file(tmp_path, good, bad), tmp_path / "out")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    inputs = {entry["source"]: entry for entry in manifest["inputs"]}
    assert inputs[f"bad/{C4}"]["kept"] == 0 and inputs[f"bad/{C4}"]["rejected"] == C4_RECORDS
    assert inputs["good/c4-sample.02.json.gz"]["kept"] > 0
    assert manifest["config"]["inputs"][1]["allow_unreadable"] is True


def test_a_few_bad_lines_among_good_ones_still_pass(tmp_path: Path, web: Path) -> None:
    """Even when the bad lines come first: the first batch holds documents, so the input is readable."""
    lines = gzip.decompress((web / C4).read_bytes()).splitlines()
    bad = [b'{"text": "cut short', orjson.dumps({"body": "no text key"}), b"[1, 2]"]
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join(bad + lines) + b"\n")
    done = run(config_file(tmp_path, {"path": str(tmp_path / "mixed.jsonl")}), tmp_path / "out")
    assert done.returncode == 0, done.stderr
    totals = json.loads((tmp_path / "out" / "manifest.json").read_text())["totals"]
    assert (totals["read"], totals["kept"], totals["rejected"]) == (C4_RECORDS + 3, C4_RECORDS, 3)


def test_a_fallback_warns_at_the_start_and_stays_in_the_manifest_and_inspect(
    tmp_path: Path, web: Path
) -> None:
    toxicity = {"toxicity": {"fallback": "wordlist", "models_dir": str(tmp_path / "no-models")}}
    config = config_file(tmp_path, {"path": str(web / C4)}, stages=[{"normalize": {}}, toxicity])
    done = run(config, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    first_line = done.stderr.splitlines()[0]
    assert first_line.startswith("warning: toxicity: no model 'toxicity' in ")
    assert "word list alone" in first_line and "curate models train-toxicity" in first_line
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["warnings"] == [first_line.removeprefix("warning: ")]

    shown = run_cli("inspect", str(tmp_path / "out"), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["warnings"] == manifest["warnings"]
    text = run_cli("inspect", str(tmp_path / "out"), env=wide_terminal())
    assert first_line in text.stdout


def test_an_ordinary_run_has_no_warnings(tmp_path: Path, web: Path) -> None:
    done = run(config_file(tmp_path, {"path": str(web / C4)}), tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "warning:" not in done.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["warnings"] == []


def test_an_output_under_a_regular_file_is_one_line_before_any_work(tmp_path: Path, web: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = config_file(tmp_path, {"path": str(web / C4)})
    error = one_error_line(run(config, blocker / "out"))
    assert error == (
        f"error: output folder {blocker / 'out'} cannot be created or written (Not a directory); "
        "choose one you can write to (--out DIR)"
    )
    error = one_error_line(run(config, blocker))
    assert error == f"error: output folder {blocker} is a file; choose a new or empty folder (--out DIR)"
    assert blocker.read_text() == "not a folder"


def test_a_read_only_output_folder_is_one_line(tmp_path: Path, web: Path) -> None:
    """Really read-only: as root the permission bypass is dropped (as for an unreadable input)."""
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    config = config_file(tmp_path, {"path": str(web / C4)})
    command = [*without_file_permission_bypass(), sys.executable, "-m", "api.main", "run", str(config)]
    done = subprocess.run(
        [*command, "--out", str(parent / "out")], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    error = one_error_line(done)
    assert error.startswith(f"error: output folder {parent / 'out'} cannot be created or written (Permission")
    assert not (parent / "out").exists()


def test_other_user_errors_of_run_are_one_line(tmp_path: Path, web: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    one_error_line(run(folder, tmp_path / "out"))  # a config path that is a folder
    error = one_error_line(run(config_file(tmp_path, {"path": str(web)}), tmp_path / "out"))
    assert error == f"error: inputs[0].path: {web} matches no file; check the path or glob"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    index = blocker / "index"  # before, a traceback at the very end of the run, when the index is extended
    config = write_config(tmp_path, {"inputs": [{"path": str(web / C4)}], "dedup": {"index": str(index)}})
    error = one_error_line(run(config, tmp_path / "out"))
    assert error.startswith(f"error: dedup index {index} cannot be created or written (Not a directory)")
    assert not (tmp_path / "out").exists(), "refused before any work"


def test_a_redirected_run_prints_progress_lines_and_cpu_seconds_reach_the_manifest_and_inspect(
    tmp_path: Path, web: Path
) -> None:
    config = config_file(
        tmp_path, {"path": str(web / "c4-sample.0*.json.gz"), "name": "c4"}, stages=[{"normalize": {}}]
    )
    done = run(config, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("progress: ")]
    assert progress[0] == "progress: shards 0/3, 0 documents read, 0s elapsed"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    read = manifest["totals"]["read"]
    assert progress[-1].startswith(f"progress: shards 3/3, {read:,} documents read, ")

    seconds = manifest["stage_cpu_seconds"]
    assert set(seconds) == {"read", "normalize"}
    assert seconds["read"] > 0 and seconds["normalize"] >= 0
    assert all("cpu_seconds" not in entry for entry in manifest["stages"]), "the funnel stays deterministic"
    shown = json.loads(run_cli("inspect", str(tmp_path / "out"), "--json").stdout)
    assert {row["stage"]: row["cpu_seconds"] for row in shown["funnel"]} == seconds
    text = run_cli("inspect", str(tmp_path / "out"), env=wide_terminal()).stdout
    assert "cpu s" in text and f"{seconds['read']:,.2f}" in text
