"""pii on real web text: values planted into real documents are all replaced and counted exactly, the
rest of the text is untouched, and the real documents' own numbers, dates and versions are left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from curate.config import parse_config
from curate.errors import ConfigError
from curate.schema import BASE_SCHEMA, conform
from curate.stages.base import StageResult
from curate.stages.registry import get_stage
from filters.pii import PiiParams
from tests.conftest import run_cli
from tests.core.helpers import read_parts, write_config
from tests.filters.web_docs import web_docs

EMAIL, IPV4, IPV6, PHONE = "email@example.com", "192.0.2.1", "2001:db8::1", "(555) 555-0100"
PLANTED = {
    "email": ["maria.garcia+news@mail.univ-lyon.fr", "j_smith@company.co.uk", "Info@Example-Shop.COM"],
    "ipv4": ["81.2.69.160", "8.8.4.4"],
    "ipv6": ["2a00:1450:4007:80e::200e", "2001:4860:4860:0000:0000:0000:0000:8888"],
    "phone": [
        "+1 (415) 555-2671",
        "212.555.0199",
        "1-800-555-0199",
        "(617) 253-1000",
        "+44 20 7946 0958",
        "+33 1 42 68 53 00",
        "+4930901820",
    ],
}
PLACEHOLDER = {"email": EMAIL, "ipv4": IPV4, "ipv6": IPV6, "phone": PHONE}
KEPT = [  # look-alikes that are not personal data, planted beside the real ones
    "version 1.2.3.4",
    "see section 3.2.1.4",
    "under § 8.1.2.4",
    "1.2.3.4.5",
    "ISBN 978-3-16-148410-0",
    "on 2015-12-06 at 17:55:53",
    "order 4155552671",
    "icon@2x.png",
    "std::vector",
    "the router at 192.168.1.20",
    "link fe80::1",
    "card 4111 1111 1111 1111",
    "mass 522.4000000 g",
    "1   2   3   4   5   6   7   8   9   10",
]
NON_PUBLIC_PLANTED = 2  # 192.168.1.20, fe80::1
COUNTS = {"pii:email": 3, "pii:ipv4": 2, "pii:ipv6": 2, "pii:phone": 7}


def batch_of(texts: list[str]) -> pa.Table:
    ids = [f"doc{i}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": pa.array(texts, pa.large_string()), "source": ["test"] * len(texts)})
    return conform(table, BASE_SCHEMA)


def run_pii(texts: list[str], **params) -> StageResult:
    stage = get_stage("pii")(PiiParams(**params))
    stage.setup()
    return stage.process(batch_of(texts))


def plant(text: str, value: str) -> str:
    """`value` in a sentence after the document's first full stop (or at its end)."""
    cut = text.find(". ") + 2 if ". " in text else len(text)
    return f"{text[:cut]}Write to {value} today. {text[cut:]}"


@pytest.fixture(scope="module")
def real_texts(web: Path) -> list[str]:
    return [doc.text for doc in web_docs(web)]


@pytest.fixture(scope="module")
def clean_texts(real_texts: list[str]) -> list[str]:
    """Real documents in which the stage finds nothing (most of them; see the test below)."""
    out = run_pii(real_texts).table.column("text").to_pylist()
    return [text for text, after in zip(real_texts, out, strict=True) if text == after]


def test_real_documents_lose_only_their_real_contact_details(real_texts: list[str]) -> None:
    result = run_pii(real_texts)
    out = result.table.column("text").to_pylist()
    changed = [(before, after) for before, after in zip(real_texts, out, strict=True) if before != after]
    # Reviewed by hand: 3 organisations' addresses, 21 phone numbers in 3 documents (US toll-free,
    # Spanish mobiles in a Q&A, Brussels landlines), 9 loopback/multicast IPs in code that stay.
    assert dict(result.stats) == {"pii:email": 3, "pii:phone": 21, "pii:ip_non_public_kept": 9}
    assert len(changed) == 5 and len(real_texts) == 120
    assert all(PHONE in after or EMAIL in after for _, after in changed)
    # The real documents hold dates, clock times, year lists, prices and 11-digit ids: none was touched.
    assert sum("127.0.0.1" in text for text in out) == sum("127.0.0.1" in text for text in real_texts)


def test_papers_maths_wikipedia_and_news_are_left_alone(shared: Path) -> None:
    """2.3 MB of real text full of numbers (arXiv LaTeX with numeric tables, GSM8K problems, WikiText,
    news) holds no contact details, and the stage finds none."""
    domains = shared / "domains"
    lines = [json.loads(line) for line in (domains / "arxiv_sample.jsonl").read_text().splitlines()]
    texts = [row["text"] for row in lines]
    lines = [json.loads(line) for line in (domains / "gsm8k_test.jsonl").read_text().splitlines()]
    texts += [row["question"] + "\n" + row["answer"] for row in lines]
    texts += (domains / "wikitext2_valid.txt").read_text().split("\n = ")
    texts += (domains / "lee_news_background.txt").read_text().splitlines()
    result = run_pii(texts)
    assert len(texts) > 2000 and not result.stats
    assert result.table.column("text").to_pylist() == texts


def test_every_planted_value_is_replaced_and_nothing_else(clean_texts: list[str]) -> None:
    values = [(kind, value) for kind, items in PLANTED.items() for value in items]
    assert len(clean_texts) >= len(values) + len(KEPT)
    docs = clean_texts[: len(values) + len(KEPT)]
    planted = [plant(text, value) for text, (_, value) in zip(docs, values, strict=False)]
    planted += [plant(text, decoy) for text, decoy in zip(docs[len(values) :], KEPT, strict=True)]
    result = run_pii(planted)
    expected = [plant(text, PLACEHOLDER[kind]) for text, (kind, _) in zip(docs, values, strict=False)]
    expected += planted[len(values) :]
    assert result.table.column("text").to_pylist() == expected
    assert result.drop_reason is None
    assert dict(result.stats) == COUNTS | {"pii:ip_non_public_kept": NON_PUBLIC_PLANTED}


def test_kinds_switch_off_placeholders_and_private_ranges_are_set(clean_texts: list[str]) -> None:
    text = plant(clean_texts[0], "a@b.org, 10.1.2.3, 81.2.69.160 or (617) 253-1000")
    result = run_pii([text], emails=False, phones=False, ipv4_placeholder="<IP>", keep_non_public_ips=False)
    expected = plant(clean_texts[0], "a@b.org, <IP>, <IP> or (617) 253-1000")
    assert result.table.column("text").to_pylist() == [expected]
    assert dict(result.stats) == {"pii:ipv4": 2}
    once = run_pii([text]).table.column("text").to_pylist()
    twice = run_pii(once)
    assert twice.table.column("text").to_pylist() == once
    assert dict(twice.stats) == {"pii:ip_non_public_kept": 1}, "only 10.1.2.3 again: no placeholder counts"


def test_national_numbers_follow_the_regions(clean_texts: list[str]) -> None:
    text = plant(clean_texts[0], "020 7946 0958")
    assert run_pii([text]).table.column("text").to_pylist() == [text], "not a US number"
    result = run_pii([text], phone_regions=["US", "gb"])
    assert result.table.column("text").to_pylist() == [plant(clean_texts[0], PHONE)]
    with pytest.raises(ConfigError, match=r"stages\.0\.pii\.phone_regions: unknown phone region"):
        parse_config({"inputs": [{"path": "x.jsonl"}], "stages": [{"pii": {"phone_regions": ["XX"]}}]})


def test_cli_run_records_the_counts_in_the_manifest(clean_texts: list[str], tmp_path: Path) -> None:
    values = [value for items in PLANTED.values() for value in items]
    shard = tmp_path / "planted.jsonl"
    docs = zip(clean_texts, values, strict=False)
    lines = [
        json.dumps({"id": f"p{i}", "text": plant(text, value)}) + "\n" for i, (text, value) in enumerate(docs)
    ]
    shard.write_text("".join(lines), encoding="utf-8")
    raw = {"inputs": [{"path": str(shard), "name": "web"}], "stages": ["pii", "tag"]}
    config = write_config(tmp_path, raw)
    result = run_cli("run", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    funnel = {stage["stage"]: stage for stage in manifest["stages"]}["pii"]
    assert funnel["stats"] == COUNTS
    assert funnel["in"] == funnel["out"] == len(values)
    kept = read_parts(tmp_path / "out" / "corpus").to_pylist()
    texts = "\n".join(row["text"] for row in kept)
    assert not [value for value in values if value in texts]
    assert all(row["n_chars"] == len(row["text"]) for row in kept), "tag counts the rewritten text"
