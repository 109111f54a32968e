"""Building mixtures from a real curated corpus: determinism, accounting, selection, repetition, shards."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from mixtest_corpus import MixCorpus, build_mix_corpus, manifest_of, mix_files

from mixers.errors import MixWarning
from mixers.sampler import build_mixture
from mixers.spec import parse_spec
from trainer.tokenizer import encode_documents, load_tokenizer


@pytest.fixture(scope="session")
def mix_corpus(tmp_path_factory: pytest.TempPathFactory) -> MixCorpus:
    return build_mix_corpus(tmp_path_factory.getbasetemp() / "mix-corpus")


def exact_spec(corpus: MixCorpus, **overrides: object) -> dict:
    return corpus.spec(tokenizer={"path": str(corpus.tokenizer)}, **overrides)


def read_mix(mix: Path) -> list[dict]:
    parts = [mix / entry["path"] for entry in manifest_of(mix)["files"]]
    return [row for part in parts for row in pq.read_table(part).to_pylist()]


def test_same_seed_gives_byte_identical_mixtures(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    spec = parse_spec(exact_spec(mix_corpus))
    build_mixture(spec, tmp_path / "a", tokens=True)
    build_mixture(spec, tmp_path / "b", tokens=True)
    first = mix_files(tmp_path / "a")
    assert {"manifest.json", "part-00000.parquet", "tokens/tokens.bin", "tokens/tokens.json"} <= set(first)
    assert first == mix_files(tmp_path / "b")


def test_another_seed_gives_another_mixture(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    build_mixture(parse_spec(mix_corpus.spec(seed=1)), tmp_path / "one")
    build_mixture(parse_spec(mix_corpus.spec(seed=2)), tmp_path / "two")
    one, two = read_mix(tmp_path / "one"), read_mix(tmp_path / "two")
    assert (
        mix_files(tmp_path / "one")["part-00000.parquet"] != mix_files(tmp_path / "two")["part-00000.parquet"]
    )
    assert {r["id"] for r in one} != {r["id"] for r in two}
    assert [r["domain"] for r in one] != sorted(r["domain"] for r in one)  # shuffled across domains
    build_mixture(parse_spec(mix_corpus.spec(seed=2)), tmp_path / "one")  # a rebuild replaces it whole
    assert mix_files(tmp_path / "one") == mix_files(tmp_path / "two")


def test_manifest_tokens_match_a_recount_with_the_tokenizer(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    manifest = build_mixture(parse_spec(exact_spec(mix_corpus, budget=300_000)), tmp_path / "mix")
    tokenizer = load_tokenizer(mix_corpus.tokenizer)
    rows = read_mix(tmp_path / "mix")
    recount: Counter = Counter()
    largest: Counter = Counter()
    for row, (ids, _) in zip(rows, encode_documents(tokenizer, [r["text"] for r in rows]), strict=True):
        assert row["n_tokens"] == len(ids)
        recount[row["domain"]] += len(ids)
        largest[row["domain"]] = max(largest[row["domain"]], len(ids))
    assert manifest["totals"]["achieved_tokens"] == sum(recount.values())
    assert manifest["totals"]["documents"] == len(rows)
    for name, domain in manifest["domains"].items():
        assert domain["achieved_tokens"] == recount[name]
        assert (
            0 <= domain["achieved_tokens"] - domain["requested_tokens"] < largest[name]
        )  # one doc over at most
    assert manifest["domains"]["wiki"]["requested_tokens"] == 225_000
    assert manifest["corpora"][0]["manifest_sha256"] == _sha256(mix_corpus.out / "manifest.json")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_predicates_select_exactly_the_matching_documents(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    spec = mix_corpus.spec(
        budget=50_000,
        eval={"tokens": 0},  # no evaluation suite: every matching document is available
        where="n_words >= 20",
        domains={
            "wiki": {"weight": 0.5, "where": "quality >= 0.77 and ppl_bucket in [head, middle]"},
            "code": {"weight": 0.5, "where": ["ppl_bucket == tail", "n_lines < 2000"]},
        },
    )
    manifest = build_mixture(parse_spec(spec), tmp_path / "mix")
    rows = read_mix(tmp_path / "mix")
    assert {r["domain"] for r in rows} == {"wiki", "code"}
    for row in rows:
        assert row["n_words"] >= 20
        if row["domain"] == "wiki":
            assert row["quality"] >= 0.77 and row["ppl_bucket"] in ("head", "middle")
        else:
            assert row["ppl_bucket"] == "tail" and row["n_lines"] < 2000
    corpus = pq.read_table(mix_corpus.out / "corpus" / "domain=wiki")
    matching = corpus.filter(
        pc.and_(
            pc.and_(pc.greater_equal(corpus["n_words"], 20), pc.greater_equal(corpus["quality"], 0.77)),
            pc.is_in(corpus["ppl_bucket"], value_set=pc.cast(["head", "middle"], "string")),
        )
    )
    assert 0 < manifest["domains"]["wiki"]["available_documents"] == matching.num_rows < corpus.num_rows
    assert (
        manifest["domains"]["wiki"]["where"]
        == "n_words >= 20 and quality >= 0.77 and ppl_bucket in ['head', 'middle']"
    )


def test_small_domains_repeat_up_to_max_epochs_with_a_warning(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    with duckdb.connect() as con:
        news_chars = con.execute(
            "SELECT sum(ceil(n_chars / 4.0)) FROM read_parquet(?)",
            [str(mix_corpus.out / "corpus" / "domain=news" / "*.parquet")],
        ).fetchall()[0][0]
    wanted = int(news_chars * 2.5)
    spec = mix_corpus.spec(
        budget=wanted * 2,
        max_epochs=1,
        domains={"wiki": 0.5, "news": {"weight": 0.5, "max_epochs": 3}},
        eval={"tokens": 0},  # the whole domain is available
    )
    with pytest.warns(MixWarning, match=r"domain news repeats: 2\.50 epochs"):
        manifest = build_mixture(parse_spec(spec), tmp_path / "mix")
    news = manifest["domains"]["news"]
    assert news["available_tokens"] == news_chars and news["passes"] == 3
    assert 2.5 <= news["epochs"] < 2.51 and news["unique_documents"] == news["available_documents"]
    assert any("news repeats" in note for note in manifest["notes"])
    rows = [r for r in read_mix(tmp_path / "mix") if r["domain"] == "news"]
    per_epoch = Counter(r["epoch"] for r in rows)
    assert per_epoch[0] == per_epoch[1] == news["available_documents"] and 0 < per_epoch[2] < per_epoch[0]
    assert max(Counter(r["id"] for r in rows).values()) == 3
    assert all(r["n_tokens"] == math.ceil(r["n_chars"] / 4) for r in rows)  # the estimate, as specified


def test_token_shards_round_trip_to_the_parquet_rows(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    from trainer.token_shards import TokenShards

    manifest = build_mixture(parse_spec(exact_spec(mix_corpus, budget=60_000)), tmp_path / "mix", tokens=True)
    shards = TokenShards(tmp_path / "mix" / "tokens")
    tokenizer = load_tokenizer(mix_corpus.tokenizer)
    rows = read_mix(tmp_path / "mix")
    assert len(shards) == len(rows) and shards.meta["n_tokens"] == manifest["totals"]["achieved_tokens"]
    for index, row in enumerate(rows):
        ids = shards.document(index)
        assert len(ids) == row["n_tokens"] and ids[-1] == shards.eot_id
        assert tokenizer.decode(ids[:-1].tolist()) == row["text"]
        assert shards.domains[shards.domain_ids[index]] == row["domain"]
        assert shards.n_bytes[index] == len(row["text"].encode())


def test_per_domain_token_counts_and_zero_weights(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    spec = mix_corpus.spec(budget=None, domains={"wiki": {"tokens": 30_000}, "news": {"tokens": 0}})
    manifest = build_mixture(parse_spec(spec), tmp_path / "mix")
    assert (
        manifest["domains"]["wiki"]["requested_tokens"]
        == 30_000
        <= manifest["domains"]["wiki"]["achieved_tokens"]
    )
    assert manifest["domains"]["news"]["achieved_tokens"] == 0
    assert manifest["domains"]["news"]["available_tokens"] is None  # an inactive domain is never scanned
    assert {r["domain"] for r in read_mix(tmp_path / "mix")} == {"wiki"}


def test_several_corpora_are_one_pool(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(mix_corpus.out, copy)
    alone = build_mixture(parse_spec(mix_corpus.spec(eval={"tokens": 0})), tmp_path / "one")
    both = build_mixture(
        parse_spec(mix_corpus.spec(corpora=[str(mix_corpus.out), str(copy)], eval={"tokens": 0})),
        tmp_path / "two",
    )
    for name in ("wiki", "news"):
        assert (
            both["domains"][name]["available_documents"] == 2 * alone["domains"][name]["available_documents"]
        )
    assert [c["path"] for c in both["corpora"]] == [str(mix_corpus.out), str(copy)]
    assert both["corpora"][0]["manifest_sha256"] == both["corpora"][1]["manifest_sha256"]


def test_demo_mixture_uses_the_domains_present(mix_corpus: MixCorpus, tmp_path: Path) -> None:
    from api.demo_mixture import demo_mixture
    from mixers.report import inspect_mixture

    manifest = demo_mixture(mix_corpus.out, tmp_path / "demo", tokenizer=mix_corpus.tokenizer, budget=200_000)
    assert set(manifest["domains"]) == {"wiki", "news", "code"}
    assert sum(d["requested_share"] for d in manifest["domains"].values()) == pytest.approx(1.0)
    assert manifest["token_shards"]["n_tokens"] == manifest["totals"]["achieved_tokens"] >= 200_000
    report = inspect_mixture(tmp_path / "demo")
    assert report["score_columns"] == ["quality"]
    means = {row["domain"]: row["means"]["quality"] for row in report["domains"]}
    assert means["news"] > means["code"]  # prose has more letters per character than source code
    assert [Path(p).name for p in report["plots"]] == ["shares.png", "scores.png"]
