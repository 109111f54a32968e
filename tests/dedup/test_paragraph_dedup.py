"""Paragraph-level (CCNet-style) dedup in `curate run`, on real text: lines seen in many documents are
stripped from all of them, unique lines stay as written, documents left with nothing become
`boilerplate_only` rejects, the accounting holds, the local and Ray executors agree, a re-run after a
partial dedup phase is byte-identical, and a persistent index counts earlier runs' documents.

Documents are the head and the tail of real Project Gutenberg books from ../shared/data (title page,
licence header and licence footer: real boilerplate, with wrapping and wording that vary by edition),
and real web documents; the tests skip when the folder is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.minhash import web_documents
from curate.config import PipelineConfig, parse_config, resolve_paths
from curate.dedup.apply import APPLIED_DIR
from curate.dedup.boilerplate import DECISIONS, index_folder
from curate.dedup.paragraphs import strip_documents, units
from curate.dedup.phase import STATE
from curate.dedup.settings import ParagraphConfig
from curate.dedup.shingles import normalize_words
from curate.errors import ConfigError
from curate.jsonl_files import write_jsonl
from curate.run import RUN_RECORD, run_pipeline
from curate.stages.normalize import NormalizeParams, normalize_text
from curate.storage import write_atomic
from tests.core.helpers import read_parts
from tests.dedup.test_dedup_crash import outcome, snapshot

MIN_CHARS = 10  # the default
LINES = {"unit": "line", "min_chars_left": 20}  # a footer's last line ("works.") is no text to keep
LICENCE_LINE = "this ebook is for the use of anyone anywhere at no cost and with"  # normalised


# ------------------------------------------------------------------------------------------------
# A slow, obvious reference of what a unit is and when two units are the same


def reference_form(line: str, ascii_doc: bool) -> str:
    """Lower case, accents stripped (NFKD, marks dropped), digits to 0, words joined by one space."""
    if not ascii_doc:
        line = unicodedata.normalize("NFKD", line)
        line = "".join(c for c in line if unicodedata.category(c) != "Mn")
        line = "".join("0" if unicodedata.category(c) == "Nd" else c for c in line)
    line = re.sub("[1-9]", "0", line)
    return " ".join(normalize_words(line))


def reference_units(text: str, unit: str) -> list[tuple[int, int, str]]:
    """(first line, last line, normalised form) of every unit that holds a word."""
    ascii_doc = text.isascii()
    forms = [reference_form(line, ascii_doc) for line in text.split("\n")]
    found: list[tuple[int, int, str]] = []
    for k, form in enumerate(forms):
        if not form:
            continue
        if unit == "paragraph" and found and found[-1][1] == k - 1:
            first, _, before = found[-1]
            found[-1] = (first, k, f"{before} {form}")
        else:
            found.append((k, k, form))
    return found


def boilerplate_forms(texts: list[str], unit: str, min_chars: int = MIN_CHARS) -> set[str]:
    """Forms of at least `min_chars` characters that are in two documents or more."""
    docs = Counter(form for text in texts for form in {f for _, _, f in reference_units(text, unit)})
    return {form for form, n in docs.items() if n >= 2 and len(form) >= min_chars}


# ------------------------------------------------------------------------------------------------
# Real documents


@pytest.fixture(scope="module")
def books(shared: Path) -> list[str]:
    """Head (title page, licence header, first pages) and tail (licence footer) of 30 Gutenberg books."""
    paths = sorted((shared / "domains" / "books").glob("*.txt"))[:30]
    docs = []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        docs.append(text[:3000] + "\n\n" + text[-2500:])
    return docs


@pytest.fixture(scope="module")
def web_texts(shared: Path) -> list[str]:
    return list(web_documents(shared / "web"))


def pipeline_text(texts: list[str]) -> list[str]:
    """The texts as the dedup phase sees them: after the `normalize` stage."""
    return normalize_text(pa.array(texts, pa.large_string()), NormalizeParams()).to_pylist()


def write_shards(folder: Path, docs: list[dict[str, Any]], shards: int = 3) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(shards):
        write_jsonl(folder / f"s{n}.jsonl.gz", docs[n::shards])
    return str(folder / "*.jsonl.gz")


def config_for(inputs: str, out: Path, paragraphs: dict[str, Any], **dedup: Any) -> PipelineConfig:
    raw = {
        "inputs": [{"path": inputs, "name": "web"}],
        "stages": [{"normalize": {}}, {"tag": {}}],
        "dedup": {"paragraphs": {"enabled": True, **paragraphs}, **dedup},
        "batch_docs": 8,
    }
    return resolve_paths(parse_config(raw), out.parent, str(out))


def run(inputs: str, out: Path, paragraphs: dict[str, Any], executor: str = "local", **dedup: Any) -> dict:
    return run_pipeline(config_for(inputs, out, paragraphs, **dedup), executor, 1, progress=False)  # type: ignore[arg-type]


def survivors(docs: list[dict[str, Any]], out: Path) -> dict[str, str]:
    """Pipeline text of every document not removed as a duplicate: the documents that are counted."""
    rejects = read_parts(out / "rejects")
    duplicates = {
        r["id"] for r in rejects.to_pylist() if r["reject_reason"] in ("exact_duplicate", "near_duplicate")
    }
    texts = pipeline_text([d["text"] for d in docs])
    return {d["id"]: t for d, t in zip(docs, texts, strict=True) if d["id"] not in duplicates}


# ------------------------------------------------------------------------------------------------
# Units and their hashes


@pytest.mark.parametrize("unit", ["line", "paragraph"])
def test_unit_hashes_are_equal_exactly_when_the_normalised_units_are(
    unit: str, books: list[str], web_texts: list[str]
) -> None:
    """Real web documents and book pages, plus variants of their lines in upper case, with accents,
    other digits and other punctuation; hash equality must follow the reference normalisation."""
    texts = books + web_texts
    variants = []
    for text in texts[:40]:
        lines = [line for line in text.split("\n") if len(line) > 20][:6]
        variants.append("\n".join(line.upper() for line in lines))
        variants.append("\n".join(re.sub(r"[.,;:]", " - ", line).replace("e", "é") for line in lines))
        variants.append("\n".join(re.sub(r"\d", "7", line) + " 1999!" for line in lines))
    texts += variants
    found = units(texts, unit)
    forms: list[str] = []
    for i, text in enumerate(texts):
        expected = reference_units(text, unit)
        mine = np.flatnonzero(found.doc == i)
        assert [(f, last) for f, last, _ in expected] == list(
            zip(found.first_line[mine].tolist(), found.last_line[mine].tolist(), strict=True)
        ), i
        assert [len(form) for _, _, form in expected] == found.norm_chars[mine].tolist()
        forms += [form for _, _, form in expected]
    by_form: dict[str, set[int]] = {}
    by_hash: dict[int, set[str]] = {}
    for form, h in zip(forms, found.hash.tolist(), strict=True):
        by_form.setdefault(form, set()).add(h)
        by_hash.setdefault(h, set()).add(form)
    assert all(len(h) == 1 for h in by_form.values())
    assert all(len(f) == 1 for f in by_hash.values())
    assert len(by_hash) < len(forms)  # the variants really did meet their originals


def test_stripping_closes_the_gap_and_is_a_fixed_point(books: list[str]) -> None:
    text = pipeline_text(books[:1])[0]
    found = units([text], "paragraph")
    paragraphs = text.split("\n\n")
    gone = np.sort(found.hash[[0, 2, len(found.hash) - 1]])  # the first, the third and the last
    stripped = strip_documents([text], [gone], "paragraph")[0]
    assert "\n\n\n" not in stripped and stripped == stripped.strip()
    kept = [p for n, p in enumerate(paragraphs) if n not in (0, 2, len(paragraphs) - 1)]
    assert stripped.split("\n\n") == kept  # every other paragraph as written, separated as before
    assert strip_documents([stripped], [gone], "paragraph") == [stripped]


# ------------------------------------------------------------------------------------------------
# In `curate run`


@pytest.fixture(scope="module")
def corpus(books: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    """The 30 book documents, and the last ~1,500 characters (licence footer only) of 4 of them."""
    docs = [{"id": f"book{n:02d}", "text": text} for n, text in enumerate(books)]
    tails = [books[n * 7][-1500:] for n in range(4)]
    docs += [{"id": f"footer{n}", "text": tail[tail.index("\n") + 1 :]} for n, tail in enumerate(tails)]
    return write_shards(tmp_path_factory.mktemp("books"), docs), docs


@pytest.fixture(scope="module")
def line_run(corpus: tuple[str, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    inputs, _ = corpus
    out = tmp_path_factory.mktemp("lines") / "out"
    return out, run(inputs, out, LINES)


def test_boilerplate_lines_are_stripped_from_every_document_and_unique_lines_stay(
    corpus: tuple[str, list[dict[str, Any]]], line_run: tuple[Path, dict]
) -> None:
    _, docs = corpus
    out, manifest = line_run
    kept = {r["id"]: r for r in read_parts(out / "corpus").to_pylist()}
    original = survivors(docs, out)
    assert set(kept) <= set(original) and len(original) >= 30
    boilerplate = boilerplate_forms(list(original.values()), "line")
    assert LICENCE_LINE in boilerplate
    assert len(boilerplate) > 100

    stripped_docs = with_licence_line = 0
    for doc_id, row in kept.items():
        lines = original[doc_id].split("\n")
        removed = [a for a, _, form in reference_units(original[doc_id], "line") if form in boilerplate]
        expected = [line for k, line in enumerate(lines) if k not in removed and line.strip()]
        after = [line for line in row["text"].split("\n") if line.strip()]
        assert after == expected, doc_id  # every other line as written, in order
        assert row["dup_paragraphs_removed"] == len(removed)
        assert row["dup_chars_removed"] == sum(len(lines[a]) for a in removed)
        assert row["n_chars"] == len(row["text"]) and row["n_lines"] == row["text"].count("\n") + 1
        assert LICENCE_LINE not in [f for _, _, f in reference_units(row["text"], "line")]
        stripped_docs += bool(removed)
        with_licence_line += LICENCE_LINE in [f for _, _, f in reference_units(original[doc_id], "line")]
    assert with_licence_line >= 10
    assert stripped_docs == len([r for r in kept.values() if r["dup_paragraphs_removed"]]) >= 25
    assert manifest["dedup"]["paragraph_docs"] == stripped_docs
    assert manifest["dedup"]["paragraphs_removed"] == sum(r["dup_paragraphs_removed"] for r in kept.values())
    assert manifest["dedup"]["paragraph_chars_removed"] == sum(r["dup_chars_removed"] for r in kept.values())


def test_documents_left_empty_are_boilerplate_only_rejects_and_accounting_holds(
    line_run: tuple[Path, dict],
) -> None:
    out, manifest = line_run
    totals = manifest["totals"]
    assert totals["read"] == totals["kept"] + totals["rejected"] + totals["duplicates"]
    rejects = read_parts(out / "rejects").to_pylist()
    boilerplate_only = [r for r in rejects if r["reject_reason"] == "boilerplate_only"]
    assert boilerplate_only and all(r["id"].startswith("footer") for r in boilerplate_only)
    assert manifest["dedup"]["boilerplate_only"] == len(boilerplate_only) == totals["rejected"]
    for row in boilerplate_only:
        assert row["reject_stage"] == "dedup" and row["dup_paragraphs_removed"] > 0
        assert re.fullmatch(
            r"\d+ lines seen in >= 2 documents removed \(\d+ chars\), \d+ chars left", row["reject_detail"]
        )
        assert "Project Gutenberg" in row["text"]  # the reject keeps its text as it was
    funnel = {stage["stage"]: stage for stage in manifest["stages"]}["dedup"]
    assert funnel["dropped"].get("boilerplate_only") == len(boilerplate_only)
    assert funnel["out"] == totals["kept"] == read_parts(out / "corpus").num_rows


def test_paragraph_unit_strips_whole_paragraphs(
    corpus: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """Without document-level dedup (paragraphs alone), so every document is counted."""
    inputs, docs = corpus
    manifest = run(inputs, tmp_path / "out", {"unit": "paragraph", "min_chars": 40}, exact=False, near=False)
    assert manifest["totals"]["duplicates"] == 0 and not list((tmp_path / "out" / "_dedup").glob("*.parquet"))
    kept = {r["id"]: r for r in read_parts(tmp_path / "out" / "corpus").to_pylist()}
    original = survivors(docs, tmp_path / "out")
    boilerplate = boilerplate_forms(list(original.values()), "paragraph", min_chars=40)
    assert len(boilerplate) > 10 and manifest["dedup"]["paragraph_docs"] >= 25
    for doc_id, row in kept.items():
        before = [form for _, _, form in reference_units(original[doc_id], "paragraph")]
        after = [form for _, _, form in reference_units(row["text"], "paragraph")]
        assert after == [form for form in before if form not in boilerplate], doc_id
        assert row["dup_paragraphs_removed"] == len(before) - len(after)


def test_local_and_ray_give_the_same_output(
    corpus: tuple[str, list[dict[str, Any]]], line_run: tuple[Path, dict], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    inputs, _ = corpus
    local_out, local = line_run
    ray = run(inputs, tmp_path / "ray", LINES, executor="ray")
    assert ray["executor"] == "ray"
    assert ray["totals"] == local["totals"]
    assert ray["dedup"].pop("global_path_reason") == "paragraph dedup counts its units in DuckDB only"
    local_dedup = {k: v for k, v in local["dedup"].items() if k != "global_path_reason"}
    assert ray["dedup"] == local_dedup and ray["dedup"]["global_path"] == "duckdb"
    assert read_parts(tmp_path / "ray" / "corpus").equals(read_parts(local_out / "corpus"))
    assert read_parts(tmp_path / "ray" / "rejects").equals(read_parts(local_out / "rejects"))


def test_rerun_after_a_partial_dedup_phase_is_identical(
    corpus: tuple[str, list[dict[str, Any]]], line_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """Killed before any part was applied; then killed with one part's rejects written but the part not
    rewritten, every other part rewritten (stripped) but not marked, and the phase's result lost."""
    inputs, _ = corpus
    clean_out, clean = line_run
    config = config_for(inputs, tmp_path / "untouched", LINES)
    untouched = tmp_path / "untouched"
    write_atomic(untouched / RUN_RECORD, json.dumps({"config_hash": config.config_hash()}))
    (untouched / STATE / "members.parquet").mkdir(parents=True)  # the phase fails writing it
    with pytest.raises(OSError):
        run_pipeline(config, "local", 1, progress=False)
    shutil.rmtree(untouched / STATE / "members.parquet")
    parts = sorted(p.relative_to(untouched).as_posix() for p in (untouched / "corpus").rglob("*.parquet"))
    before = {p: (untouched / p).read_bytes() for p in parts}
    assert all(before[p] != (clean_out / p).read_bytes() for p in parts)  # every part gets stripped
    assert outcome(run(inputs, untouched, LINES)) == outcome(clean)
    assert snapshot(untouched) == snapshot(clean_out)

    out = tmp_path / "out"
    shutil.copytree(clean_out, out)
    for marker in (out / APPLIED_DIR).glob("*.done"):
        marker.unlink()
    for name in ("result.json", "members.parquet", DECISIONS):
        (out / STATE / name).unlink()
    (out / "manifest.json").unlink()
    (out / parts[0]).write_bytes(before[parts[0]])
    assert outcome(run(inputs, out, LINES)) == outcome(clean)
    assert snapshot(out) == snapshot(clean_out)


def test_an_index_counts_the_documents_of_earlier_runs(books: list[str], tmp_path: Path) -> None:
    """Batch 1: 12 book documents. Batch 2: one more book: alone it has no line seen twice, but its
    licence lines are in batch 1's documents, so they go."""
    index = tmp_path / "index"
    first_in = write_shards(tmp_path / "a", [{"id": f"a{n}", "text": t} for n, t in enumerate(books[:12])])
    second_in = write_shards(tmp_path / "b", [{"id": "b0", "text": books[20]}], shards=1)
    alone = run(second_in, tmp_path / "alone", {})
    assert alone["dedup"]["paragraphs_removed"] == 0
    first = run(first_in, tmp_path / "out-a", {}, index=str(index))
    assert first["dedup"]["paragraph_docs"] == 12
    second = run(second_in, tmp_path / "out-b", {}, index=str(index))
    assert second["dedup"]["index_version_before"] == 1 and second["dedup"]["index_version_after"] == 2
    assert second["dedup"]["paragraph_docs"] == 1 and second["dedup"]["paragraphs_removed"] > 20
    (row,) = read_parts(tmp_path / "out-b" / "corpus").to_pylist()
    assert "anyone anywhere at no cost" not in row["text"]
    counts = sorted((index_folder(index, ParagraphConfig(enabled=True))).glob("*.parquet"))
    assert len(counts) == 2 and pq.read_table(counts[0]).column_names == ["hash", "docs"]


def test_config_shorthand_errors_and_unchanged_hash_when_off() -> None:
    base = {"inputs": [{"path": "x.jsonl"}], "dedup": {}}
    off = parse_config(base)
    assert parse_config(
        {**base, "dedup": {"paragraphs": {"enabled": False, "unit": "paragraph"}}}
    ).config_hash() == (off.config_hash())
    assert "paragraphs" not in off.canonical_json()
    on = parse_config({**base, "dedup": {"paragraphs": True}})
    assert on.dedup is not None and on.dedup.paragraphs.enabled and on.config_hash() != off.config_hash()
    with pytest.raises(
        ConfigError, match=r"^config: dedup\.paragraphs\.min_docs: .*greater than or equal to 2"
    ):
        parse_config({**base, "dedup": {"paragraphs": {"min_docs": 1}}})
    with pytest.raises(ConfigError, match=r"dedup\.paragraphs\.unit"):
        parse_config({**base, "dedup": {"paragraphs": {"unit": "sentence"}}})
