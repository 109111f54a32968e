"""Incremental dedup with a persistent index: a later batch loses its copies of earlier batches'
documents, the index grows by one version per run (never twice for the same run), a failed segment
write leaves index.json as it was, and an index built with other sketch parameters is refused."""

from __future__ import annotations

import json
import re
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from curate.checksums import file_sha256
from curate.config import PipelineConfig, parse_config, resolve_paths
from curate.dedup.phase import run_id
from curate.errors import ConfigError
from curate.jsonl_files import write_jsonl
from curate.plan import build_plan
from curate.run import run_pipeline
from curate.textsources import book_passages
from tests.conftest import run_cli
from tests.core.helpers import read_parts, write_config


@pytest.fixture(scope="module")
def passages(shared: Path) -> list[str]:
    chosen = islice(book_passages(shared / "domains" / "books", 2500), 300)
    return [t for _, t in chosen if len(t.split()) >= 250 and "gutenberg" not in t.lower()][:45]


def config_for(inputs: str, out: Path, index: Path, **dedup: Any) -> PipelineConfig:
    raw = {
        "inputs": [{"path": inputs, "name": "web"}],
        "stages": [{"normalize": {}}, {"tag": {}}],
        "dedup": {"index": str(index), **dedup},
    }
    return resolve_paths(parse_config(raw), out.parent, str(out))


def run(inputs: str, out: Path, index: Path, **dedup: Any) -> dict[str, Any]:
    return run_pipeline(config_for(inputs, out, index, **dedup), "local", 1, progress=False)


def make_batches(folder: Path, passages: list[str]) -> tuple[str, str]:
    """Batch A: 20 passages. Batch B: verbatim copies of 5 of them, copies of 5 others without their
    last tenth, and 10 new passages, over two shards."""
    a, b = folder / "a", folder / "b"
    a.mkdir()
    b.mkdir()
    write_jsonl(a / "a.jsonl.gz", [{"id": f"a{n}", "text": t} for n, t in enumerate(passages[:20])])
    copies = [{"id": f"copy{n}", "text": passages[n]} for n in range(5)]
    edited = []
    for n in range(5, 10):
        words = passages[n].split()
        edited.append({"id": f"edit{n}", "text": " ".join(words[: int(len(words) * 0.9)])})
    new = [{"id": f"new{n}", "text": t} for n, t in enumerate(passages[20:30])]
    write_jsonl(b / "b1.jsonl.gz", copies + new[:5])
    write_jsonl(b / "b2.jsonl.gz", edited + new[5:])
    return str(a / "*.jsonl.gz"), str(b / "*.jsonl.gz")


def index_state(index: Path) -> dict[str, Any]:
    return json.loads((index / "index.json").read_text(encoding="utf-8"))


def test_a_later_batch_loses_its_copies_of_an_earlier_batch(
    tmp_path: Path, passages: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_a, batch_b = make_batches(tmp_path, passages)
    index = tmp_path / "index"
    monkeypatch.setattr("curate.dedup.phase.SEGMENT_BATCH_ROWS", 3)  # the segment streams in batches
    first = run(batch_a, tmp_path / "out-a", index)
    assert first["totals"]["duplicates"] == 0
    assert first["dedup"]["index_version_before"] == 0 and first["dedup"]["index_version_after"] == 1
    state = index_state(index)
    assert state["version"] == 1 and [s["documents"] for s in state["segments"]] == [20]
    streamed = pq.ParquetFile(index / "segments" / f"{state['segments'][0]['run']}.parquet")
    ids = streamed.read().column("id").to_pylist()
    assert streamed.num_row_groups >= 7 and ids == sorted(ids) and len(ids) == 20
    monkeypatch.undo()

    second = run(batch_b, tmp_path / "out-b", index)
    assert second["totals"]["read"] == 20 and second["totals"]["duplicates"] == 10
    assert second["dedup"]["index_version_before"] == 1 and second["dedup"]["index_version_after"] == 2
    rejects = {r["id"]: r for r in read_parts(tmp_path / "out-b" / "rejects").to_pylist()}
    for n in range(5):
        row = rejects[f"copy{n}"]
        assert (row["reject_reason"], row["dup_cluster"]) == ("exact_duplicate", f"a{n}")
        assert row["reject_detail"] == f"duplicate of a{n} (similarity 1)"
    for n in range(5, 10):
        row = rejects[f"edit{n}"]
        assert (row["reject_reason"], row["dup_cluster"]) == ("near_duplicate", f"a{n}")
        similarity = re.fullmatch(rf"duplicate of a{n} \(similarity (0\.\d+)\)", row["reject_detail"])
        assert similarity is not None and 0.75 <= float(similarity[1]) < 1, row["reject_detail"]
    kept = read_parts(tmp_path / "out-b" / "corpus")
    assert sorted(kept.column("id").to_pylist()) == sorted(f"new{n}" for n in range(10))
    state = index_state(index)
    assert state["version"] == 2 and [s["documents"] for s in state["segments"]] == [20, 10]
    segment = pq.read_table(index / "segments" / f"{state['segments'][1]['run']}.parquet")
    assert sorted(segment.column("id").to_pylist()) == sorted(f"new{n}" for n in range(10))

    # The same command again: nothing is redone, nothing is added to the index.
    raw = {
        "inputs": [{"path": batch_b, "name": "web"}],
        "stages": ["normalize", "tag"],
        "dedup": {"index": str(index)},
    }
    config = write_config(tmp_path, raw)
    again = run_cli("run", str(config), "--out", str(tmp_path / "out-b"))
    assert again.returncode == 0, again.stderr
    assert index_state(index) == state
    manifest = json.loads((tmp_path / "out-b" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["totals"] == second["totals"] and manifest["dedup"]["index_version_after"] == 2

    # The same batch into a new output is the same run: it is not deduplicated against itself.
    elsewhere = run(batch_b, tmp_path / "out-b2", index)
    assert elsewhere["totals"] == second["totals"]
    assert read_parts(tmp_path / "out-b2" / "corpus").equals(kept)
    assert index_state(index) == state


def test_a_failed_segment_write_leaves_index_json_unchanged(tmp_path: Path, passages: list[str]) -> None:
    batch_a, batch_b = make_batches(tmp_path, passages)
    index = tmp_path / "index"
    run(batch_a, tmp_path / "out-a", index)
    before = (index / "index.json").read_bytes()

    config = config_for(batch_b, tmp_path / "out-b", index)
    plan = build_plan(config)
    segment = index / "segments" / f"{run_id(plan, [file_sha256(t.source.path) for t in plan.tasks])}.parquet"
    segment.mkdir(parents=True)  # a directory where the segment goes: its final rename fails
    (segment / "occupied").write_text("x")
    with pytest.raises(OSError):
        run_pipeline(config, "local", 1, progress=False)
    assert (index / "index.json").read_bytes() == before

    (segment / "occupied").unlink()
    segment.rmdir()
    manifest = run_pipeline(config, "local", 1, progress=False)
    assert manifest["dedup"]["index_version_after"] == 2 and manifest["totals"]["duplicates"] == 10
    assert index_state(index)["version"] == 2 and segment.is_file()


def test_an_index_built_with_other_sketch_parameters_is_refused(tmp_path: Path, passages: list[str]) -> None:
    batch_a, batch_b = make_batches(tmp_path, passages)
    index = tmp_path / "index"
    run(batch_a, tmp_path / "out-a", index)
    before = (index / "index.json").read_bytes()
    with pytest.raises(ConfigError, match=r"other sketch parameters \(bands 28 vs 14\)"):
        run(batch_b, tmp_path / "out-b", index, bands=14)
    assert (index / "index.json").read_bytes() == before
