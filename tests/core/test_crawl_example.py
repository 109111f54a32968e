"""The README's crawl pipeline, exactly as written there, run on real data laid out as it expects.

Every file the example names is made at run time in a temporary folder: links to the real WARC, C4 and
GSM8K files and to the LDNOOBW lists in ../shared/data, a Parquet of Gutenberg passages in the `books`
field layout, a blocklist naming two sites the C4 sample holds, and small models under the default names
in a models home of the test's own (`$CURATE_MODELS`). Nothing of ../shared/data enters the repository.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from curate.textsources import book_passages, shared_data_dir
from tests.conftest import run_cli
from tests.core.test_custom_stage import readme_block
from tests.core.tiny_models import train_tiny_toxicity

SHARED = shared_data_dir()
BLOCKED = "theadultbible.co.uk\nblogspot.com\n"  # sites of two pages of c4-sample.02
pytestmark = pytest.mark.skipif(SHARED is None, reason="../shared/data (real WARC, C4, books) is absent")


def lay_out(folder: Path) -> None:
    """The files and folders the README's example names, relative to its config file."""
    assert SHARED is not None
    web = SHARED / "web"
    for name, target in {
        "crawl/a.warc.gz": web / "dolma_sample-0000.warc.gz",
        "crawl/b.warc.gz": web / "dolma_sample-0001.warc.gz",
        "shards/c4-01.jsonl.gz": web / "c4-sample.01.json.gz",
        "shards/c4-02.jsonl.gz": web / "c4-sample.02.json.gz",
        "evals/gsm8k_test.jsonl": SHARED / "domains" / "gsm8k_test.jsonl",
        "badwords": SHARED / "badwords",
    }.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(target)
    (folder / "lists").mkdir()
    (folder / "lists" / "blocked-domains.txt").write_text(BLOCKED)
    passages = list(itertools.islice(book_passages(SHARED / "domains" / "books"), 40))
    (folder / "books").mkdir()
    table = pa.table({"doc_id": [key for key, _ in passages], "content": [text for _, text in passages]})
    pq.write_table(table, folder / "books" / "part-0.parquet")


def models_home(folder: Path) -> Path:
    """`toxicity` and `wiki-5gram`, the names the example's stages load by default, trained small."""
    from filters.commands import train_lm
    from filters.kenlm_build import KenLMBuildError, ensure_tools

    try:
        ensure_tools(install_packages=False, log=lambda _: None)
    except KenLMBuildError as error:
        pytest.skip(f"KenLM's lmplz cannot be built on this machine: {error}")
    assert SHARED is not None
    home = folder / "models"
    train_tiny_toxicity(SHARED, home, "toxicity")
    train_lm("wiki-5gram", books_mb=0, home=home)
    return home


def test_the_readme_crawl_pipeline_runs_as_written(tmp_path: Path) -> None:
    lay_out(tmp_path)
    config = tmp_path / "pipeline.yaml"
    config.write_text(readme_block("# pipeline.yaml"))
    env = {**os.environ, "CURATE_MODELS": str(models_home(tmp_path))}
    result = run_cli("run", str(config), "--workers", "2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr

    stages_in_config = [next(iter(stage)) for stage in yaml.safe_load(config.read_text())["stages"]]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    funnel = {stage["stage"]: stage for stage in manifest["stages"]}
    assert list(funnel) == ["read", *stages_in_config, "dedup"]
    assert funnel["url_filter"]["dropped"] == {"url_filter:blocked": 2}
    assert sum(funnel["heuristics"]["dropped"].values()) > 0, "the rules judge the web pages"
    assert funnel["pii"]["stats"], "the crawl holds contact details the pii stage replaces"
    totals = manifest["totals"]
    assert totals["read"] == totals["kept"] + totals["rejected"] + totals["duplicates"]
    assert {"books", "web"} <= set(manifest["domains"])
    inputs = {entry["source"].split("/")[-1] for entry in manifest["inputs"]}
    assert inputs >= {"a.warc.gz", "b.warc.gz", "c4-01.jsonl.gz", "c4-02.jsonl.gz", "part-0.parquet"}
    assert (tmp_path / "index").is_dir(), "the persistent dedup index the example names"
