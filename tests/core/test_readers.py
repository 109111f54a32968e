"""Readers on real shards as found in the wild: Dolma and C4 JSONL, WARC, WET, plus zstd and Parquet."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from curate.readers.batches import REJECT_SCHEMA, ShardSource, read_batches
from curate.readers.fields import FieldMap
from curate.readers.formats import infer_format
from curate.readers.records import ReadLimits, ReadTally
from curate.schema import BASE_SCHEMA, empty_table


def read_all(path: Path, fmt: str | None = None, fields: FieldMap | None = None) -> tuple[pa.Table, pa.Table]:
    docs, rejects, _ = read_tallied(path, fmt, fields)
    return docs, rejects


def read_tallied(
    path: Path,
    fmt: str | None = None,
    fields: FieldMap | None = None,
    roots: tuple[str, ...] = (),
    max_doc_chars: int = 5_000_000,
) -> tuple[pa.Table, pa.Table, ReadTally]:
    """Documents, rejects and what the reader saw of the file; the tally must always account for it."""
    shard = ShardSource(path, f"t/{path.name}", fmt or infer_format(path), fields or FieldMap(), None, roots)
    tally = ReadTally()
    batches = list(read_batches(shard, 7, 1 << 30, tally, ReadLimits(max_doc_chars)))
    docs = pa.concat_tables([empty_table(BASE_SCHEMA)] + [b.docs for b in batches])
    rejects = pa.concat_tables([empty_table(REJECT_SCHEMA)] + [b.rejects for b in batches])
    assert tally.problem() is None, tally.problem()
    assert tally.records == docs.num_rows + rejects.num_rows
    return docs, rejects, tally


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


def dolma_lines(web: Path) -> list[bytes]:
    return (web / "dolma_cc_en_head-0091.jsonl").read_bytes().splitlines(keepends=True)


def test_zstd_cut_inside_its_only_frame_is_a_truncated_reject(web: Path, tmp_path: Path) -> None:
    whole = zstandard.ZstdCompressor().compress(b"".join(dolma_lines(web)))
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(whole[: len(whole) // 2])
    docs, rejects, tally = read_tallied(cut)
    reasons = rejects.column("reject_reason").to_pylist()
    assert reasons[-1] == "truncated" and tally.lost_tail == "truncated"
    assert "zstd frame starting at byte 0" in rejects.column("reject_detail").to_pylist()[-1]
    assert not tally.clean_end and docs.num_rows + rejects.num_rows >= 1


def test_zstd_cut_in_its_last_frame_keeps_the_earlier_frames(web: Path, tmp_path: Path) -> None:
    lines = dolma_lines(web)
    frames = [zstandard.ZstdCompressor().compress(b"".join(lines[i : i + 3])) for i in (0, 3, 6)]
    cut = tmp_path / "frames.jsonl.zst"
    cut.write_bytes(frames[0] + frames[1] + frames[2][: len(frames[2]) // 2])
    docs, rejects, tally = read_tallied(cut)
    assert docs.num_rows == 6, "the two whole frames are read"
    (detail,) = [r["reject_detail"] for r in rejects.to_pylist() if r["reject_reason"] == "truncated"]
    assert f"starting at byte {len(frames[0]) + len(frames[1])}" in detail
    assert tally.consumed == tally.size == cut.stat().st_size


def first_zlib_error(data: bytes, header: int, change) -> bytes:
    """The first mutation (scanning the deflate data) that makes gzip raise zlib.error, not a CRC error."""
    for position in range(header, len(data) - 8):
        mutated = change(data, position)
        try:
            gzip.decompress(mutated)
        except zlib.error:
            return mutated
        except (EOFError, OSError):
            continue
    raise AssertionError("no mutation gave a zlib.error")


@pytest.mark.parametrize("mutation", ["flipped bits", "cut span"])
def test_corrupt_gzip_is_a_reject_not_a_crash(web: Path, tmp_path: Path, mutation: str) -> None:
    data = (web / "c4_theguardian.jsonl.gz").read_bytes()
    if mutation == "flipped bits":
        broken = first_zlib_error(data, 200, lambda d, i: d[:i] + bytes([d[i] ^ 0x5A]) + d[i + 1 :])
    else:
        broken = first_zlib_error(data, 200, lambda d, i: d[:i] + d[i + 700 :])
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(broken)
    docs, rejects, tally = read_tallied(path)
    last = rejects.to_pylist()[-1]
    assert last["reject_reason"] in ("unreadable", "truncated") and "error" in last["reject_detail"]
    assert last["reject_detail"].startswith("t/broken.jsonl.gz: line ")
    assert tally.lost_tail == last["reject_reason"] and not tally.clean_end


def year_14000_parquet(path: Path, rows: int, bad_row: int) -> None:
    micros = [1_600_000_000_000_000 + i for i in range(rows)]
    micros[bad_row] = 379_000_000_000_000_000  # about the year 14000: Arrow holds it, Python cannot
    table = pa.table(
        {
            "text": [f"Document number {i} has a few real words in it." for i in range(rows)],
            "added": pa.array(micros, pa.timestamp("us")),
        }
    )
    pq.write_table(table, path, row_group_size=1000)


def test_parquet_bad_value_rejects_only_its_row(tmp_path: Path) -> None:
    path = tmp_path / "dates.parquet"
    year_14000_parquet(path, rows=3000, bad_row=1500)
    docs, rejects, tally = read_tallied(path)
    assert (docs.num_rows, rejects.num_rows) == (2999, 1)
    (reject,) = rejects.to_pylist()
    assert reject["reject_reason"] == "bad_value"
    assert reject["reject_detail"].startswith("t/dates.parquet: row 1500: column 'added'")
    assert "Document number 1500 " in reject["text"], "the row's readable values are kept in the reject"
    assert (tally.expected, tally.records, tally.clean_end) == (3000, 3000, True)


def test_parquet_corrupt_row_group_loses_only_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "groups.parquet"
    table = pa.table({"text": [f"Row {i} of a file with six row groups." for i in range(60)]})
    pq.write_table(table, path, row_group_size=10)
    chunk = pq.ParquetFile(path).metadata.row_group(2).column(0)
    start = min(o for o in (chunk.data_page_offset, chunk.dictionary_page_offset) if o is not None)
    data = bytearray(path.read_bytes())
    data[start : start + chunk.total_compressed_size] = bytes(chunk.total_compressed_size)
    path.write_bytes(bytes(data))
    docs, rejects, tally = read_tallied(path)
    assert docs.num_rows == 50
    assert sorted(docs.column("text").to_pylist()) == sorted(
        f"Row {i} of a file with six row groups." for i in range(60) if not 20 <= i < 30
    )
    assert rejects.num_rows == 10 and set(rejects.column("reject_reason").to_pylist()) <= {
        "unreadable",
        "truncated",
    }
    assert all("rows 20-29 (row group 2)" in d for d in rejects.column("reject_detail").to_pylist())
    assert (tally.expected, tally.records, tally.clean_end) == (60, 60, False)


def test_parquet_without_a_footer_is_one_unreadable_reject(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    year_14000_parquet(path, rows=100, bad_row=0)
    path.write_bytes(path.read_bytes()[:-100])
    docs, rejects, tally = read_tallied(path)
    assert (docs.num_rows, rejects.column("reject_reason").to_pylist()) == (0, ["unreadable"])
    assert tally.expected is None and tally.lost_tail == "unreadable"


def test_utf8_bom_does_not_make_a_bad_record(web: Path, tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(dolma_lines(web)[:3]))
    docs, rejects, _ = read_tallied(path)
    assert (docs.num_rows, rejects.num_rows) == (3, 0)


def test_documents_above_max_doc_chars_are_too_long_in_every_format(web: Path, tmp_path: Path) -> None:
    lines = dolma_lines(web)
    texts = [__import__("json").loads(line)["text"] for line in lines]
    limit = sorted(len(t) for t in texts)[len(texts) // 2]
    longer = sum(len(t) > limit for t in texts)
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines))
    pq.write_table(pa.table({"text": texts}), tmp_path / "a.parquet")
    for name, where in (("a.jsonl", "line "), ("a.parquet", "row ")):
        docs, rejects, _ = read_tallied(tmp_path / name, max_doc_chars=limit)
        assert rejects.num_rows == longer and docs.num_rows == len(texts) - longer
        assert set(rejects.column("reject_reason").to_pylist()) == {"too_long"}
        assert all(
            where in d and f"max_doc_chars {limit}" in d for d in rejects.column("reject_detail").to_pylist()
        )
    docs, rejects, _ = read_tallied(web / "dolma_sample-0000.warc.gz", max_doc_chars=200)
    assert "too_long" in rejects.column("reject_reason").to_pylist()


def test_an_over_long_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    good = b'{"text": "a short document that stays"}\n'
    path.write_bytes(good + b'{"text": "' + b"x" * 3_000_000 + b'"}\n' + good)
    docs, rejects, tally = read_tallied(path, max_doc_chars=100_000)  # reader limit: 1.6 MB of a line
    assert docs.num_rows == 2
    (reject,) = rejects.to_pylist()
    assert reject["reject_reason"] == "too_long" and "line 2: 3000013 bytes" in reject["reject_detail"]
    assert len(reject["text"]) == 1 << 20
    assert tally.consumed == tally.size and tally.clean_end


def test_a_symlink_out_of_the_data_roots_is_refused_unread(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.jsonl").write_text('{"text": "the secret text"}\n')
    (root / "inside.jsonl").write_text('{"text": "the public text"}\n')
    (root / "swapped.jsonl").symlink_to(outside / "secret.jsonl")
    docs, rejects, tally = read_tallied(root / "swapped.jsonl", roots=(str(root),))
    assert docs.num_rows == 0 and tally.sha256 == "" and tally.size == 0
    (reject,) = rejects.to_pylist()
    assert reject["reject_reason"] == "unreadable" and "outside the data roots" in reject["reject_detail"]
    assert "secret text" not in reject["text"]
    docs, _, _ = read_tallied(root / "inside.jsonl", roots=(str(root),))
    assert docs.column("text").to_pylist() == ["the public text"]
