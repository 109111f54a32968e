"""Readers on real shards as found in the wild: Dolma and C4 JSONL, WARC, WET, plus zstd and Parquet."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from curate.readers.batches import ShardSource, read_batches
from curate.readers.fields import FieldMap
from curate.readers.formats import infer_format


def read_all(path: Path, fmt: str | None = None, fields: FieldMap | None = None) -> tuple[pa.Table, pa.Table]:
    shard = ShardSource(path, f"t/{path.name}", fmt or infer_format(path), fields or FieldMap())
    batches = list(read_batches(shard, max_docs=7, max_bytes=1 << 30))
    docs = pa.concat_tables([b.docs for b in batches])
    rejects = pa.concat_tables([b.rejects for b in batches])
    return docs, rejects


def test_dolma_jsonl_keeps_ids_dates_and_metadata(web: Path) -> None:
    docs, rejects = read_all(web / "dolma_cc_en_head-0091.jsonl")
    assert (docs.num_rows, rejects.num_rows) == (10, 0)
    first = docs.slice(0, 1).to_pylist()[0]
    assert first["id"].startswith("http")
    assert first["crawl_date"] is not None and first["crawl_date"].year == 2020
    assert '"bucket"' in first["meta"] and "text" not in first["meta"].split('"metadata"')[0]


def test_c4_gzip_has_no_ids_so_ids_are_stable_hashes(web: Path) -> None:
    first, _ = read_all(web / "c4-sample.01.json.gz")
    again, _ = read_all(web / "c4-sample.01.json.gz")
    assert first.num_rows == 10
    assert first.column("id").to_pylist() == again.column("id").to_pylist()
    assert len(set(first.column("id").to_pylist())) == 10
    assert all(url.startswith("http") for url in first.column("url").to_pylist())


def test_warc_extracts_main_text_from_html_responses(web: Path) -> None:
    docs, rejects = read_all(web / "dolma_sample-0000.warc.gz")
    assert docs.num_rows + rejects.num_rows == 22  # HTTP responses; the wget log resources are not pages
    texts = docs.column("text").to_pylist()
    assert all("<html" not in t.lower() and "<div" not in t.lower() for t in texts)
    assert any("Semantic Scholar" in t for t in texts)
    assert all(u.startswith(("https://", "http://")) for u in docs.column("url").to_pylist())


def test_wet_conversion_record_is_read(web: Path) -> None:
    docs, rejects = read_all(web / "whirlwind.warc.wet.gz")
    assert (docs.num_rows, rejects.num_rows) == (1, 0)
    assert "Escopete" in docs.column("text")[0].as_py()
    assert docs.column("url")[0].as_py() == "https://an.wikipedia.org/wiki/Escopete"


def test_zstd_and_parquet_read_the_same_documents(web: Path, tmp_path: Path) -> None:
    raw = gzip.decompress((web / "c4-sample.02.json.gz").read_bytes())
    zst = tmp_path / "c4.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(raw))
    from_zstd, _ = read_all(zst)
    table = pa.Table.from_pylist([__import__("json").loads(line) for line in raw.splitlines()])
    pq.write_table(table, tmp_path / "c4.parquet")
    from_parquet, _ = read_all(tmp_path / "c4.parquet")
    assert from_zstd.column("text").to_pylist() == from_parquet.column("text").to_pylist()
    assert from_zstd.num_rows == 10


def test_field_mapping_reads_other_names(tmp_path: Path) -> None:
    shard = tmp_path / "custom.jsonl"
    shard.write_text(
        '{"body": "hello there", "doc": {"key": 7}, "when": 1700000000, "link": "http://a.org/x"}\n'
    )
    fields = FieldMap(text="body", id="doc.key", crawl_date="when", url=["link"])
    docs, rejects = read_all(shard, fields=fields)
    row = docs.to_pylist()[0]
    assert (row["id"], row["text"], row["url"]) == ("7", "hello there", "http://a.org/x")
    assert row["crawl_date"].year == 2023
    assert all(key not in (row["meta"] or "") for key in ("body", "when", "link", "key"))


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.json.gz", "jsonl"),
        ("a.jsonl.zst", "jsonl"),
        ("x.parquet", "parquet"),
        ("c.warc.gz", "warc"),
        ("c.warc.wet.gz", "wet"),
        ("c.wet", "wet"),
        ("notes.txt", None),
    ],
)
def test_format_inference(name: str, fmt: str | None) -> None:
    assert infer_format(Path(name)) == fmt
