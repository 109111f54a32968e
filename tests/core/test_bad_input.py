"""Bad input never crashes a run and never loses a record: each becomes a reject with reason and place."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.config import load_config
from curate.readers.records import ReadTally
from curate.run import run_pipeline
from curate.shard_runner import ShardReport, check_file_accounted
from tests.conftest import REPO
from tests.core.helpers import read_parts, write_config

GOOD = {"text": "A perfectly ordinary document with several words in it.", "url": "https://example.org/a"}


def run(
    folder: Path, pattern: str, out: str = "out", settings: dict | None = None, **input_extra: object
) -> dict:
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
    for line_no in (2, 3, 4, 5, 6, 7):
        assert any(f"line {line_no}:" in d for d in details), line_no
    assert "in/mixed.jsonl: line 7: text is empty or whitespace only" in details
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


def warc_record(
    url: str, html: bytes, charset: str | None, status: str = "200 OK", content_type: str = "text/html"
) -> bytes:
    content_type += f"; charset={charset}" if charset else ""
    http = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(html)}\r\n\r\n"
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


def test_unknown_declared_charset_falls_back_to_detection(tmp_path: Path) -> None:
    page = "<html><body><p>Café, naïve façade, déjà vu in Zürich.</p></body></html>".encode("cp1252")
    (tmp_path / "odd.warc.gz").write_bytes(
        gzip.compress(warc_record("https://a.example/x", page, "x-no-such"))
    )
    manifest = run(tmp_path, str(tmp_path / "odd.warc.gz"))
    assert (manifest["totals"]["kept"], manifest["totals"]["rejected"]) == (1, 0)
    (kept,) = read_parts(tmp_path / "out" / "corpus").to_pylist()
    assert "naïve façade" in kept["text"]


def test_corrupt_warc_and_non_page_responses_are_rejects_with_detail(tmp_path: Path, web: Path) -> None:
    page = (web / "html" / "wikipedia_page1.html").read_bytes()
    good = warc_record("https://a.example/good", page, "utf-8")
    missing = warc_record("https://a.example/missing", b"<p>gone</p>", None, "404 Not Found")
    image = warc_record("https://a.example/logo", b"\x89PNG....", None, "200 OK", "image/png")
    broken = warc_record("https://a.example/after", page, "utf-8").replace(b"WARC/1.0", b"WXRC/1.0")
    (tmp_path / "bad.warc").write_bytes(good + missing + image + broken)
    (tmp_path / "cut.warc").write_bytes(good + good.replace(b"/good", b"/cut")[:-3000])
    manifest = run(tmp_path, str(tmp_path / "*.warc"))
    rejects = {
        r["url"] or r["reject_detail"]: r for r in read_parts(tmp_path / "out" / "rejects").to_pylist()
    }
    by_reason = {r["reject_reason"]: r["reject_detail"] for r in rejects.values()}
    assert (
        by_reason["http_status"].startswith("in/bad.warc: byte ")
        and "HTTP status 404" in by_reason["http_status"]
    )
    assert "https://a.example/logo" in by_reason["unsupported_content"]
    assert by_reason["unsupported_content"].endswith("content type image/png")
    assert (
        "Invalid WARC header" in by_reason["unreadable"]
        and "records after this point" in by_reason["unreadable"]
    )
    assert (
        "in/cut.warc: byte " in by_reason["truncated"]
        and "ends inside a response record" in by_reason["truncated"]
    )
    assert manifest["totals"]["kept"] == 2
    inputs = {entry["source"]: entry for entry in manifest["inputs"]}
    assert (
        inputs["in/cut.warc"]["lost_tail"] == "truncated"
        and inputs["in/bad.warc"]["lost_tail"] == "unreadable"
    )


def test_a_warc_record_above_the_read_limit_is_skipped_unread(tmp_path: Path, web: Path) -> None:
    page = (web / "html" / "wikipedia_page1.html").read_bytes()
    big = b"<html><body>" + b"<p>Far too long a page for this limit.</p>" * 40_000 + b"</body></html>"
    records = [
        warc_record("https://a.example/big", big, "utf-8"),
        warc_record("https://a.example/ok", page, "utf-8"),
    ]
    (tmp_path / "big.warc.gz").write_bytes(gzip.compress(b"".join(records)))
    manifest = run(tmp_path, str(tmp_path / "big.warc.gz"), settings={"max_doc_chars": 50_000})
    assert (manifest["totals"]["kept"], manifest["totals"]["rejected"]) == (1, 1)
    (reject,) = read_parts(tmp_path / "out" / "rejects").to_pylist()
    assert (
        reject["reject_reason"] == "too_long"
        and "(https://a.example/big): record of " in reject["reject_detail"]
    )
    assert (
        "longer than the reader's limit of 1348576 bytes (from max_doc_chars 50000)"
        in reject["reject_detail"]
    )


def test_manifest_inputs_carry_what_the_reader_saw(tmp_path: Path, web: Path) -> None:
    shutil.copy(web / "c4-sample.01.json.gz", tmp_path / "c4.json.gz")
    manifest = run(tmp_path, str(tmp_path / "c4.json.gz"))
    (entry,) = manifest["inputs"]
    size = (tmp_path / "c4.json.gz").stat().st_size
    assert entry["input_bytes"] == entry["input_bytes_read"] == entry["size"] == size
    assert (entry["records_parsed"], entry["records_expected"], entry["clean_end"]) == (10, None, True)
    assert entry["lost_tail"] is None and len(entry["sha256"]) == 64


def test_a_file_not_fully_read_fails_the_shard_naming_it() -> None:
    report = ShardReport("k", "in/a.jsonl", "/data/a.jsonl", 100, "")
    check_file_accounted(report, ReadTally(size=100, consumed=100, records=3, clean_end=True))
    with pytest.raises(
        RuntimeError, match=r"^input /data/a.jsonl \(in/a.jsonl\) is not fully accounted for: "
    ):
        check_file_accounted(report, ReadTally(size=100, consumed=40, records=3, clean_end=True))
    with pytest.raises(RuntimeError, match="stopped at byte 40 of 100"):
        check_file_accounted(report, ReadTally(size=100, consumed=40, records=3, clean_end=False))
    with pytest.raises(RuntimeError, match="2 records parsed but the file declares 3"):
        check_file_accounted(report, ReadTally(size=100, consumed=100, records=2, expected=3, clean_end=True))
    check_file_accounted(report, ReadTally(size=100, consumed=40, records=3, lost_tail="truncated"))


def without_file_permission_bypass() -> list[str]:
    """A prefix that runs a command unable to read a file it has no permission for: as root, with the
    capabilities that bypass file permissions dropped; as another user, nothing is needed."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is absent: cannot drop CAP_DAC_OVERRIDE")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, "--inh-caps=-all", "--ambient-caps=-all", f"--bounding-set={drop}", "--"]


def test_a_file_that_cannot_be_opened_is_one_unreadable_reject(tmp_path: Path, web: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(web / "c4-sample.01.json.gz", folder / "a.json.gz")
    shutil.copy(web / "c4-sample.02.json.gz", folder / "locked.json.gz")
    (folder / "locked.json.gz").chmod(0)
    config = write_config(
        tmp_path, {"inputs": [{"path": str(folder / "*.json.gz"), "name": "in"}], "stages": []}
    )
    done = subprocess.run(
        [
            *without_file_permission_bypass(),
            sys.executable,
            "-m",
            "api.main",
            "run",
            str(config),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    inputs = {entry["source"]: entry for entry in manifest["inputs"]}
    assert (inputs["in/a.json.gz"]["kept"], inputs["in/locked.json.gz"]["rejected"]) == (10, 1)
    assert (
        inputs["in/locked.json.gz"]["lost_tail"] == "unreadable"
        and inputs["in/locked.json.gz"]["sha256"] == ""
    )
    (reject,) = read_parts(tmp_path / "out" / "rejects").to_pylist()
    assert reject["reject_reason"] == "unreadable"
    assert reject["reject_detail"].startswith(
        "in/locked.json.gz: cannot open the file ([Errno 13] Permission denied"
    )
