"""The evaluation suite and share control, on a real corpus built by `curate run` from the web shards.

The corpus has two domains: `web` (C4 and Guardian documents, each with a planted near-duplicate: one word
in 60 replaced, so the pair survives dedup at threshold 0.97 but is far above the suite's 0.7) and
`pile` (RedPajama / Pile samples plus one planted very long document).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from curate.errors import ConfigError
from mixers.errors import MixWarning
from mixers.sampler import build_mixture
from mixers.spec import parse_spec
from tests.conftest import run_cli

WEB_FILES = [
    "c4-sample.01.json.gz",
    "c4-sample.02.json.gz",
    "c4-sample.03.json.gz",
    "c4_theguardian.jsonl.gz",
]
PILE_FILES = [
    "dj_redpajama-c4-refined.jsonl",
    "dj_redpajama-cc-2023-06-refined.jsonl",
    "dj_the-pile-nih-refined.jsonl",
    "dj_the-pile-uspto-refined.jsonl",
]
LONG_ID = "planted/very-long"
NEAR_JACCARD = 0.7  # what counts as a near-duplicate in the independent check (exact 5-gram Jaccard)
SUITE = {"tokens": 2_000, "max_share": 0.2}


def _texts(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def _altered(text: str, every: int = 60) -> str:
    """One word in `every` replaced (at least one): a near-duplicate, not an exact one."""
    words = text.split(" ")
    for index in range(every // 2, len(words), every) if len(words) > every else [len(words) // 2]:
        words[index] = f"planted{index}"
    return " ".join(words)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def corpus(web: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`curate run` (the real CLI) over the web shards plus the planted documents; returns OUT."""
    root = tmp_path_factory.mktemp("suite-corpus")
    originals = [text for name in WEB_FILES for text in _texts(web / name)]
    _write_jsonl(
        root / "twins.jsonl", [{"id": f"twin/{i}", "text": _altered(t)} for i, t in enumerate(originals)]
    )
    pile = [text for name in PILE_FILES for text in _texts(web / name)]
    _write_jsonl(root / "long.jsonl", [{"id": LONG_ID, "text": "\n\n".join(pile * 2)}])
    inputs = [{"path": str(web / name), "domain": "web"} for name in WEB_FILES]
    inputs += [{"path": str(root / "twins.jsonl"), "domain": "web", "name": "twins"}]
    inputs += [{"path": str(web / name), "domain": "pile"} for name in PILE_FILES]
    inputs += [{"path": str(root / "long.jsonl"), "domain": "pile", "name": "long"}]
    config = {"inputs": inputs, "stages": [{"normalize": {}}], "dedup": {"threshold": 0.97}}
    (root / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run_cli("run", str(root / "run.yaml"), "--out", str(root / "out"), "--workers", "1")
    assert result.returncode == 0, result.stderr
    return root / "out"


def _spec(corpus: Path, weights: dict[str, float], **overrides: object) -> dict:
    spec = {
        "corpora": [str(corpus)],
        "budget": 12_000,
        "seed": 0,
        "tokenizer": {"chars_per_token": 4.0},
        "domains": {name: {"weight": w} for name, w in weights.items()},
        "eval": SUITE,
    }
    return spec | overrides


def _rows(mix: Path) -> list[dict]:
    manifest = json.loads((mix / "manifest.json").read_text())
    return [row for entry in manifest["files"] for row in pq.read_table(mix / entry["path"]).to_pylist()]


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def test_no_suite_document_nor_a_near_duplicate_is_trained_on(corpus: Path, tmp_path: Path) -> None:
    mixes = {}
    for name, weights in {"webby": {"web": 0.7, "pile": 0.3}, "pily": {"web": 0.3, "pile": 0.7}}.items():
        manifest = build_mixture(parse_spec(_spec(corpus, weights)), tmp_path / name)
        mixes[name] = (manifest, _rows(tmp_path / name))
    suites = {name: (tmp_path / name / "eval" / "documents.parquet").read_bytes() for name in mixes}
    assert suites["webby"] == suites["pily"]  # the same documents, byte for byte
    assert mixes["webby"][0]["eval_suite"]["hash"] == mixes["pily"][0]["eval_suite"]["hash"]
    suite = pq.read_table(tmp_path / "webby" / "eval" / "documents.parquet").to_pylist()
    assert {row["domain"] for row in suite} == {"web", "pile"} and {row["kind"] for row in suite} == {
        "held_out"
    }
    shingles = {row["id"]: _shingles(row["text"]) for row in _corpus_rows(corpus)}
    twins_in_corpus = {  # every corpus document near a suite document, by exact 5-gram Jaccard
        other
        for row in suite
        for other, theirs in shingles.items()
        if other != row["id"] and _jaccard(_shingles(row["text"]), theirs) >= NEAR_JACCARD
    }
    assert twins_in_corpus  # the planted near-duplicates of suite documents are in the corpus ...
    assert mixes["webby"][0]["eval_suite"]["near_duplicates_excluded"] >= len(twins_in_corpus)
    for _, rows in mixes.values():
        trained = {row["id"] for row in rows}
        assert trained and not trained & {row["id"] for row in suite}  # ... yet neither the suite ...
        assert not trained & twins_in_corpus  # ... nor a near-duplicate of it is trained on
    again = build_mixture(parse_spec(_spec(corpus, {"web": 1.0}, seed=5)), tmp_path / "other")
    assert again["eval_suite"]["hash"] == mixes["webby"][0]["eval_suite"]["hash"]  # weights, seed: same suite


def _corpus_rows(corpus: Path) -> list[dict]:
    with duckdb.connect() as con:
        return (
            con.sql(f"SELECT id, text FROM read_parquet('{corpus}/corpus/*/*.parquet')")
            .to_arrow_table()
            .to_pylist()
        )


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread: on a shared 2-core machine more threads only fight (see tests/trainer)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
def test_both_mixtures_are_scored_on_the_same_suite(corpus: Path, tmp_path: Path) -> None:
    from trainer.proxy import compare_runs, eval_proxy, train_proxy
    from trainer.tokenizer import train_tokenizer

    tokenizer = train_tokenizer([row["text"] for row in _corpus_rows(corpus)], 512, tmp_path / "tok")
    spec = {"tokenizer": {"path": str(tokenizer)}}
    (tmp_path / "books.jsonl").write_text(json.dumps({"text": "A target text, " * 40}) + "\n")
    targets = {"books": str(tmp_path / "*.jsonl")}
    results = {}
    for name, weights in {"a": {"web": 0.7, "pile": 0.3}, "b": {"web": 0.3, "pile": 0.7}}.items():
        settings = _spec(corpus, weights, **spec, eval=SUITE | {"targets": targets})
        build_mixture(parse_spec(settings), tmp_path / name, tokens=True)
        options = {"steps": 2, "batch_size": 8, "seq_len": 64, "device": "cpu", "progress": False}
        results[name] = train_proxy(
            tmp_path / name, tmp_path / f"run-{name}", preset="tiny", precision="fp32", **options
        )
    assert results["a"]["eval_suite"] == {
        **results["a"]["eval_suite"],
        "hash": results["b"]["eval_suite"]["hash"],
    }
    for result in results.values():
        assert set(result["domains"]) == {"web", "pile"} and set(result["targets"]) == {"books"}
    assert results["a"]["domains"]["web"]["bytes"] == results["b"]["domains"]["web"]["bytes"]
    ranked = compare_runs([tmp_path / "run-a", tmp_path / "run-b"])
    assert ranked["comparable"] and ranked["eval_suite"] == results["a"]["eval_suite"]["hash"]
    rescored = eval_proxy(tmp_path / "run-a", device="cpu")
    assert rescored["score"] == pytest.approx(results["a"]["score"])
    build_mixture(
        parse_spec(_spec(corpus, {"web": 1.0}, **spec, eval={"tokens": 1_000})), tmp_path / "c", tokens=True
    )
    train_proxy(tmp_path / "c", tmp_path / "run-c", preset="tiny", precision="fp32", **options)
    with pytest.raises(ConfigError, match="scored on different documents"):
        compare_runs([tmp_path / "run-a", tmp_path / "run-c"])
    flagged = compare_runs([tmp_path / "run-a", tmp_path / "run-c"], allow_different_suites=True)
    assert not flagged["comparable"] and "not comparable" in flagged["warning"]


def _long_first_seed(corpus: Path) -> int:
    """A seed whose order puts the planted long document first in `pile`: the old rule took it whole."""
    with duckdb.connect() as con:
        for seed in range(200):
            first = con.execute(
                f"SELECT id FROM read_parquet('{corpus}/corpus/domain=pile/*.parquet') "
                "ORDER BY md5_number(? || ':0:' || id) LIMIT 1",
                [str(seed)],
            ).fetchall()[0][0]
            if first == LONG_ID:
                return seed
    raise AssertionError("no seed puts the long document first")


def test_a_planted_long_document_cannot_blow_a_share(corpus: Path, tmp_path: Path) -> None:
    seed = _long_first_seed(corpus)
    spec = _spec(corpus, {"web": 0.8, "pile": 0.2}, seed=seed, eval={"tokens": 0})
    manifest = build_mixture(parse_spec(spec), tmp_path / "mix")
    rows = _rows(tmp_path / "mix")
    long_tokens = len(next(r["text"] for r in _corpus_rows(corpus) if r["id"] == LONG_ID)) / 4
    assert long_tokens > 3 * manifest["domains"]["pile"]["requested_tokens"]  # it would have tripled pile
    assert LONG_ID not in {row["id"] for row in rows}
    for domain in manifest["domains"].values():
        assert abs(domain["achieved_share"] - domain["requested_share"]) <= 0.01
        assert domain["share_error"] == pytest.approx(
            domain["achieved_share"] - domain["requested_share"], abs=1e-5
        )
    assert manifest["share_tolerance"] == 0.01 and not manifest["notes"]


def test_a_share_that_cannot_be_met_is_a_warning_and_a_record(corpus: Path, tmp_path: Path) -> None:
    """Pile of the long document only (`where`): nothing fits a 2% share, so the budget is met by that
    document and the mix says the share is off."""
    spec = _spec(
        corpus,
        {"web": 0.98, "pile": 0.02},
        eval={"tokens": 0},
        share_tolerance=0.005,
        domains={"web": {"weight": 0.98}, "pile": {"weight": 0.02, "where": f"id == '{LONG_ID}'"}},
    )
    with pytest.warns(MixWarning, match=r"domain pile: achieved share [\d.]+% .* vs 2\.00% requested"):
        manifest = build_mixture(parse_spec(spec), tmp_path / "mix")
    pile = manifest["domains"]["pile"]
    assert pile["requested_tokens"] == 240 < pile["achieved_tokens"] and pile["share_error"] > 0.005
    assert any("domain pile: achieved share" in note for note in manifest["notes"])


def test_the_cli_takes_target_sets_and_says_what_it_held_out(corpus: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.main import app  # the CLI root: a MixError is one line and exit code 2

    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "held-out target text"}) + "\n")
    spec = tmp_path / "mix.yaml"
    spec.write_text(yaml.safe_dump(_spec(corpus, {"web": 0.5, "pile": 0.5}, output="mix")), encoding="utf-8")
    result = CliRunner().invoke(app, ["mix", str(spec), "--target", f"qa={tmp_path}/t*.jsonl"])
    assert result.exit_code == 0, result.output
    assert "evaluation suite:" in result.stderr
    suite = json.loads((tmp_path / "mix" / "eval" / "suite.json").read_text())
    assert suite["targets"]["qa"]["documents"] == 1 and suite["near_duplicates"] == "checked"
    inspected = CliRunner().invoke(app, ["inspect", str(tmp_path / "mix")])
    assert f"evaluation suite {suite['hash'][:12]}: " in inspected.stdout
    bad = CliRunner().invoke(app, ["mix", str(spec), "--target", "web=nothing/*.jsonl"])
    assert bad.exit_code == 2 and bad.stderr.strip().splitlines() == [
        "error: eval.targets.web: a domain of the corpora has that name; rename the target set"
    ]
