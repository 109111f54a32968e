"""`domains:` on any stage: web rules judge web documents only; the others pass untouched, in order."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from curate.jsonl_files import write_jsonl
from curate.stages.base import process_in_scope
from curate.textsources import shared_data_dir, stdlib_sources
from filters.heuristics import HeuristicRules, HeuristicsParams
from tests.conftest import run_cli
from tests.core.helpers import read_parts, write_config

SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data (real C4 web text) is absent")


def c4_texts() -> list[str]:
    assert SHARED is not None
    texts = []
    for path in sorted((SHARED / "web").glob("c4-sample.0*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            texts += [json.loads(line)["text"] for line in lines]
    return texts


def mixed_batch(web: list[str], code: list[str]) -> pa.Table:
    """Web and code rows interleaved, so a merge that loses the order shows."""
    texts, domains = [], []
    for i in range(max(len(web), len(code))):
        for domain, pool in (("web", web), ("code", code)):
            if i < len(pool):
                texts.append(pool[i])
                domains.append(domain)
    return pa.table(
        {
            "id": [str(i) for i in range(len(texts))],
            "text": pa.array(texts, pa.large_string()),
            "domain": pa.array(domains, pa.string()),
        }
    )


@needs_shared
def test_scoped_stage_judges_its_domains_only_and_keeps_order() -> None:
    code = [source for _, source in stdlib_sources(12)]
    batch = mixed_batch(c4_texts(), code)
    scoped = HeuristicRules(HeuristicsParams(mode="drop", domains=["web"]))
    scoped.setup()
    result = process_in_scope(scoped, batch)

    assert result.table.column("id").to_pylist() == batch.column("id").to_pylist()
    assert result.table.column("text").to_pylist() == batch.column("text").to_pylist()
    is_code = [d == "code" for d in batch.column("domain").to_pylist()]
    flags = result.table.column("rule_flags").to_pylist()
    reasons = result.drop_reason.to_pylist()
    assert all(flags[i] is None and reasons[i] is None for i in range(len(is_code)) if is_code[i])

    unscoped = HeuristicRules(HeuristicsParams(mode="drop"))
    unscoped.setup()
    web_only = unscoped.process(batch.filter(pa.array([not c for c in is_code])))
    assert [r for r, c in zip(reasons, is_code, strict=True) if not c] == web_only.drop_reason.to_pylist()
    assert any(reasons), "real C4 text has documents the rules drop"
    everything = unscoped.process(batch).drop_reason.to_pylist()
    code_drops = [reason for reason, c in zip(everything, is_code, strict=True) if c and reason]
    assert code_drops, "unscoped, the web rules drop some of the code: the scope is what keeps it"


@needs_shared
def test_scope_through_the_cli(tmp_path: Path) -> None:
    assert SHARED is not None
    code = tmp_path / "code.jsonl"
    write_jsonl(code, ({"id": f"stdlib/{name}", "text": text} for name, text in stdlib_sources(40)))
    config = {
        "inputs": [
            {"path": str(SHARED / "web" / "c4-sample.0*.json.gz"), "name": "c4", "domain": "web"},
            {"path": str(code), "name": "code", "domain": "code"},
        ],
        "stages": [{"normalize": {}}, {"heuristics": {"mode": "drop", "domains": ["web"]}}],
    }
    out = tmp_path / "out"
    result = run_cli("run", str(write_config(tmp_path, config)), "--out", str(out))
    assert result.returncode == 0, result.stderr

    kept = read_parts(out / "corpus")
    kept_code = kept.filter(pa.compute.equal(kept.column("domain"), "code"))
    assert kept_code.num_rows == 40
    assert kept_code.column("rule_flags").null_count == 40
    rejects = read_parts(out / "rejects")
    assert rejects.num_rows > 0 and set(rejects.column("domain").to_pylist()) == {"web"}

    bad = write_config(tmp_path, {**config, "stages": [{"heuristics": {"domains": ["Web!"]}}]}, "bad.yaml")
    refused = run_cli("run", str(bad), "--out", str(tmp_path / "bad"))
    assert refused.returncode == 2 and "domains" in refused.stderr and "Traceback" not in refused.stderr
