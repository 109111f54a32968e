"""`extractor:` on a WARC input: its config checks, the quality of both extractors on real pages against
hand-checked main text (rules in bench/extract.py, the text itself derived at run time), and a real run of
each through `curate run` reading the same records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from resiliparse.parse.html import HTMLTree

from bench.extract import PAGE_RULES, page_f1, ruled_page
from curate.config import expand_input, parse_config
from curate.errors import ConfigError
from curate.readers.batches import ShardSource, read_batches
from curate.readers.fields import FieldMap
from curate.readers.warc import DEFAULT_EXTRACTOR, EXTRACTORS, extract_main_text
from tests.conftest import run_cli
from tests.core.helpers import read_parts, write_config

# Mean bag-of-words F1 over the ten pages measured on 2026-12-03 (BENCHMARKS.md), less a margin of 0.05 so a
# library update that moves a few words passes and one that loses the main text of a page fails.
F1_FLOOR = {"resiliparse": 0.6385 - 0.05, "trafilatura": 0.5716 - 0.05}


def test_a_bad_extractor_is_one_line_naming_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"inputs": [{"path": "x.warc.gz", "extractor": "readability"}]})
    message = str(caught.value)
    assert "\n" not in message
    assert "inputs.0.extractor" in message and "'resiliparse' or 'trafilatura'" in message


def test_extractor_on_a_non_warc_input_names_the_fix(web: Path) -> None:
    with pytest.raises(ConfigError, match=r"inputs\.0: `extractor:` applies only to WARC inputs.*remove"):
        parse_config({"inputs": [{"path": "x.jsonl", "format": "jsonl", "extractor": "trafilatura"}]})
    inferred = parse_config(
        {"inputs": [{"path": str(web / "whirlwind.warc.wet.gz"), "extractor": "resiliparse"}]}
    )
    with pytest.raises(ConfigError, match=r"inputs\[0\]: .*whirlwind\.warc\.wet\.gz reads as wet; remove"):
        expand_input(inferred.inputs[0], 0)


def test_unset_extractor_leaves_the_config_hash_of_older_configs() -> None:
    unset = parse_config({"inputs": [{"path": "x.warc.gz"}]})
    chosen = parse_config({"inputs": [{"path": "x.warc.gz", "extractor": "trafilatura"}]})
    assert "extractor" not in unset.canonical_json()
    assert unset.config_hash() != chosen.config_hash()


def test_each_rule_gives_main_text_without_the_pages_boilerplate(web: Path) -> None:
    """The rules still find their elements, and leave out what they were written to leave out."""
    pages = {name: ruled_page(web / "html" / name) for name in PAGE_RULES}
    texts = {name: reference for name, (_, reference) in pages.items()}
    assert all(texts.values())
    for name in (n for n in texts if n.startswith("wikipedia_")):
        title = HTMLTree.parse(pages[name][0]).title.removesuffix(" - Wikipedia")
        assert texts[name].startswith(title + "\n"), name  # the article's own heading comes first
        assert "[edit]" not in texts[name] and "Retrieved" not in texts[name], name  # edit links, citations
    assert "2066682" not in texts["cc_page5.html"]  # the visitor counter


def test_both_extractors_pass_their_floor_and_the_default_scores_best(web: Path) -> None:
    means = {}
    for extractor in EXTRACTORS:
        scores = page_f1(web / "html", extractor)
        means[extractor] = sum(scores.values()) / len(scores)
        assert means[extractor] > F1_FLOOR[extractor], (extractor, scores)
    # the default also extracts ~10x more MB/s per core (`curate bench extract`), so no trade-off to weigh
    assert max(means, key=means.__getitem__) == DEFAULT_EXTRACTOR, means


def test_a_missing_trafilatura_fails_loudly_not_as_rejects(
    web: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the package the config names the fix, and a reader asked for it anyway raises rather than
    turning every page into an `unreadable` reject."""
    monkeypatch.setitem(sys.modules, "trafilatura", None)  # how Python marks a module as not importable
    with pytest.raises(ConfigError, match="needs the trafilatura package.*pip install trafilatura"):
        parse_config({"inputs": [{"path": "x.warc.gz", "extractor": "trafilatura"}]})
    shard = ShardSource(web / "whirlwind.warc.gz", "w", "warc", FieldMap(), extractor="trafilatura")
    with pytest.raises(ImportError):
        list(read_batches(shard, 100, 1 << 20))


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_a_page_without_text_is_an_empty_string_not_none(extractor: str) -> None:
    assert extract_main_text("<html><body><script>var x = 1;</script></body></html>", extractor) == ""


def test_both_extractors_read_the_same_records_through_curate_run(web: Path, tmp_path: Path) -> None:
    outputs = {}
    for extractor in EXTRACTORS:
        source = {"path": str(web / "dolma_sample-000*.warc.gz"), "name": "web", "extractor": extractor}
        config = write_config(tmp_path, {"inputs": [source], "stages": ["normalize"]}, f"{extractor}.yaml")
        out = tmp_path / extractor
        workers = "2" if extractor == "trafilatura" else "1"  # 2: trafilatura is imported in worker processes
        result = run_cli("run", str(config), "--out", str(out), "--workers", workers)
        assert result.returncode == 0, result.stderr
        outputs[extractor] = out
    totals, ids, texts = {}, {}, {}
    for extractor, out in outputs.items():
        manifest = json.loads((out / "manifest.json").read_text())
        totals[extractor] = manifest["totals"]
        assert totals[extractor]["read"] == sum(f["records_parsed"] for f in manifest["inputs"])
        assert all(f["clean_end"] and f["input_bytes_read"] == f["size"] for f in manifest["inputs"])
        corpus, rejects = read_parts(out / "corpus"), read_parts(out / "rejects")
        assert corpus.num_rows == totals[extractor]["kept"] > 0
        assert rejects.num_rows == totals[extractor]["rejected"]
        ids[extractor] = set(corpus.column("id").to_pylist()) | _ids(rejects)
        texts[extractor] = dict(
            zip(corpus.column("id").to_pylist(), corpus.column("text").to_pylist(), strict=True)
        )
    resiliparse, trafilatura = (totals[name] for name in EXTRACTORS)
    assert resiliparse["read"] == trafilatura["read"] == resiliparse["kept"] + resiliparse["rejected"]
    assert ids["resiliparse"] == ids["trafilatura"] and len(ids["resiliparse"]) == resiliparse["read"]
    shared_ids = texts["resiliparse"].keys() & texts["trafilatura"].keys()
    assert any(
        texts["resiliparse"][i] != texts["trafilatura"][i] for i in shared_ids
    )  # really two extractors


def _ids(table: pa.Table) -> set[str]:
    """Ids of a table read back; no parts written (no rejects) reads as a table without columns."""
    return set(table.column("id").to_pylist()) if table.num_rows else set()
