"""User errors are one line that names the thing and the fix, raised before any work, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.config import load_config
from curate.errors import ConfigError
from tests.conftest import run_cli
from tests.core.helpers import write_config


def config_error(tmp_path: Path, config: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, config))
    return str(caught.value)


@pytest.fixture
def shard(tmp_path: Path) -> str:
    (tmp_path / "a.jsonl").write_text('{"text": "hello world"}\n')
    return str(tmp_path / "a.jsonl")


def test_unknown_top_level_key(tmp_path: Path, shard: str) -> None:
    message = config_error(tmp_path, {"inputs": [{"path": shard}], "stagez": [], "output": "o"})
    assert message.endswith("stagez: unknown key; remove it or check its spelling")


def test_unknown_nested_stage_key_names_its_path(tmp_path: Path, shard: str) -> None:
    config = {
        "inputs": [{"path": shard}],
        "output": "o",
        "stages": [{"normalize": {}}, {"tag": {"domain": {"rules": [{"domain": "w", "sight": "x"}]}}}],
    }
    message = config_error(tmp_path, config)
    assert "stages.1" in message and "tag.domain.rules.0.sight: unknown key" in message


def test_wrong_type_says_what_was_expected(tmp_path: Path, shard: str) -> None:
    message = config_error(tmp_path, {"inputs": [{"path": shard}], "output": "o", "batch_docs": "many"})
    assert "batch_docs" in message and "integer" in message


def test_unknown_stage_lists_known_ones(tmp_path: Path, shard: str) -> None:
    message = config_error(tmp_path, {"inputs": [{"path": shard}], "output": "o", "stages": [{"nope": {}}]})
    assert "unknown stage 'nope'" in message and "normalize" in message and "tag" in message


def test_a_top_level_key_listed_as_a_stage_says_where_it_belongs(tmp_path: Path, shard: str) -> None:
    message = config_error(tmp_path, {"inputs": [{"path": shard}], "output": "o", "stages": [{"dedup": {}}]})
    assert "`dedup` is a top-level key of the config, not a stage; move it out of `stages:`" in message


def test_bad_regex_and_bad_domain_name(tmp_path: Path, shard: str) -> None:
    rules = [{"domain": "x", "url_regex": "(?<=lookbehind)"}]
    message = config_error(
        tmp_path,
        {"inputs": [{"path": shard}], "output": "o", "stages": [{"tag": {"domain": {"rules": rules}}}]},
    )
    assert "RE2" in message
    message = config_error(tmp_path, {"inputs": [{"path": shard, "domain": "../etc"}], "output": "o"})
    assert "inputs.0.domain" in message


def test_cli_errors_are_one_line_without_traceback(tmp_path: Path, shard: str) -> None:
    missing = run_cli("run", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    (tmp_path / "bad.yaml").write_text("inputs: [\n")
    broken = run_cli("run", str(tmp_path / "bad.yaml"))
    assert broken.returncode == 2 and "not valid YAML" in broken.stderr and "Traceback" not in broken.stderr
    no_match = write_config(tmp_path, {"inputs": [{"path": str(tmp_path / "missing/*.jsonl")}]}, "nm.yaml")
    result = run_cli("run", str(no_match), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "matches no file" in result.stderr
    assert not (tmp_path / "out").exists(), "no work starts before the config is valid"
    unreadable = write_config(tmp_path, {"inputs": [{"path": shard}]}, "noout.yaml")
    result = run_cli("run", str(unreadable))
    assert result.returncode == 2 and "--out DIR" in result.stderr


def test_version_and_executor_choices() -> None:
    import curate

    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"curate {curate.__version__}"
    bogus = run_cli("run", "any.yaml", "--executor", "bogus")
    assert bogus.returncode == 2 and "'bogus' is not one of 'local'," in bogus.stderr  # rich wraps the rest
    assert "Traceback" not in bogus.stderr
