"""Bad input never crashes a run and never loses a record: each becomes a reject with reason and place."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq

from curate.config import load_config
from curate.run import run_pipeline
from tests.core.helpers import read_parts, write_config

GOOD = {"text": "A perfectly ordinary document with several words in it.", "url": "https://example.org/a"}


def run(folder: Path, pattern: str, out: str = "out", settings: dict | None = None, **input_extra: object) -> dict:
    config = {
        "inputs": [{"path": pattern, "name": "in", **input_extra}],
        "stages": [{"normalize": {}}, {"tag": {}}],
        "output": str(folder / out),
        **(settings or {}),
    }
    return run_pipeline(load_config(write_config(folder, config)), "local", 1, progress=False)


def test_malformed_lines_are_rejects_with_line_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD).encode(),
        b'{"text": "broken json',
        json.dumps({"url": "https://example.org/no-text"}).encode(),
        b'{"text": "bad \xff\xfe utf8 bytes"}',
        b"[1, 2, 3]",
        json.dumps({"text": 12}).encode(),
        json.dumps({"text": "   "}).encode(),
        json.dumps({**GOOD, "url": "https://example.org/b"}).encode(),
    ]
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    manifest = run(tmp_path, str(tmp_path / "mixed.jsonl"))
    assert manifest["totals"]["read"] == 8
    assert (manifest["totals"]["kept"], manifest["totals"]["rejected"]) == (2, 6)
    rejects = read_parts(tmp_path / "out" / "rejects").to_pylist()
    details = sorted(r["reject_detail"] for r in rejects)
    assert all(d.startswith("in/mixed.jsonl: ") for d in details)
    for line_no in (2, 3, 4, 5, 6):
        assert any(f"line {line_no}:" in d for d in details), line_no
    by_reason = {r["reject_reason"] for r in rejects}
    assert by_reason == {"unreadable", "empty"}
    assert any("broken json" in r["text"] for r in rejects), "the raw bytes of a bad line are kept"


def test_truncated_gzip_keeps_earlier_records_and_says_where(tmp_path: Path, web: Path) -> None:
    whole = gzip.decompress((web / "c4_theguardian.jsonl.gz").read_bytes())
    compressed = gzip.compress(whole)
    (tmp_path / "cut.jsonl.gz").write_bytes(compressed[: len(compressed) // 2])
    manifest = run(tmp_path, str(tmp_path / "cut.jsonl.gz"))
    totals = manifest["totals"]
    assert totals["kept"] >= 1
    reasons = read_parts(tmp_path / "out" / "rejects").column("reject_detail").to_pylist()
    assert any("compressed stream ends early" in d for d in reasons)


def test_empty_files_and_a_huge_document(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "empty2.jsonl.gz").write_bytes(gzip.compress(b""))
    paragraph = "Words of a very long real looking document keep coming here. " * 16
    huge = {"id": "huge", "text": (paragraph + "\n") * (50_000_000 // len(paragraph))}
    (tmp_path / "huge.jsonl").write_text(json.dumps(huge) + "\n")
    manifest = run(tmp_path, str(tmp_path / "*.json*"))
    assert manifest["totals"] == {**manifest["totals"], "read": 1, "kept": 0, "rejected": 1}
    (reject,) = read_parts(tmp_path / "out" / "rejects").to_pylist()
    assert reject["reject_reason"] == "too_long" and reject["reject_stage"] == "read"
    assert reject["reject_detail"].startswith("in/huge.jsonl: line 1: ")
    assert "max_doc_chars 5000000" in reject["reject_detail"]
    assert 0 < len(reject["text"]) <= 1 << 20, "a prefix of the document is kept, not all 50 MB"

    manifest = run(tmp_path, str(tmp_path / "*.json*"), out="raised", settings={"max_doc_chars": 60_000_000})
    assert manifest["totals"] == {**manifest["totals"], "read": 1, "kept": 1, "rejected": 0}
    kept = pq.read_table(next((tmp_path / "raised" / "corpus").rglob("*.parquet")), columns=["id", "n_chars"])
    assert kept.column("n_chars")[0].as_py() > 49_000_000


def warc_record(url: str, html: bytes, charset: str | None) -> bytes:
    content_type = "text/html" + (f"; charset={charset}" if charset else "")
    http = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(html)}\r\n\r\n"
    ).encode()
    block = http + html
    head = (
        "WARC/1.0\r\nWARC-Type: response\r\nWARC-Date: 2024-01-02T03:04:05Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{abs(hash(url)):032x}>\r\nWARC-Target-URI: {url}\r\n"
        f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(block)}\r\n\r\n"
    ).encode()
    return head + block + b"\r\n\r\n"


def test_non_utf8_warc_payloads_become_text(tmp_path: Path, web: Path) -> None:
    page = (web / "html" / "wikipedia_page1.html").read_text(encoding="utf-8")
    latin = "<html><body><p>Café, naïve façade, déjà vu — Zürich straße.</p></body></html>"
    records = [
        warc_record("https://a.example/latin1", latin.replace("—", "-").encode("latin-1"), "iso-8859-1"),
        warc_record("https://a.example/cp1252-undeclared", latin.encode("cp1252"), None),
        warc_record("https://en.wikipedia.org/wiki/X", page.encode("utf-8"), "utf-8"),
        warc_record("https://a.example/binary", b"\x00\xff\xfe\x81" * 500, "utf-8"),
    ]
    (tmp_path / "enc.warc.gz").write_bytes(gzip.compress(b"".join(records)))
    manifest = run(tmp_path, str(tmp_path / "enc.warc.gz"))
    assert manifest["totals"]["read"] == 4
    kept = {r["url"]: r["text"] for r in read_parts(tmp_path / "out" / "corpus").to_pylist()}
    assert "Café, naïve façade" in kept["https://a.example/latin1"]
    assert "Zürich" in kept["https://a.example/cp1252-undeclared"]
    assert manifest["totals"]["kept"] + manifest["totals"]["rejected"] == 4
