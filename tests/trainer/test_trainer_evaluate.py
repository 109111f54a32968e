"""Per-domain bits per byte, the mixture score, and the train_proxy / eval_proxy entry points."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from curate.errors import ConfigError
from curate.textsources import news_texts
from trainer.evaluate import documents_nats, mixture_score
from trainer.model import lm_loss
from trainer.proxy import eval_proxy, load_run, parse_target_sets, parse_weights, train_proxy
from trainer.token_shards import TokenShards

RUN_OPTIONS = {
    "preset": "tiny",
    "precision": "fp32",
    "steps": 10,
    "batch_size": 8,
    "seq_len": 32,
    "threads": 1,
    "progress": False,
    "model": {"d_model": 64, "n_layers": 2, "n_heads": 2},
    "max_eval_tokens_per_domain": 4096,
}


@pytest.fixture(scope="module")
def run_dir(token_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    result = train_proxy(token_dir, out, **RUN_OPTIONS)
    return out, result


def test_score_json_has_finite_bpb_for_every_domain(run_dir):
    out, result = run_dir
    saved = json.loads((out / "result.json").read_text())
    assert saved == {key: value for key, value in result.items() if key != "train"}
    assert set(saved["domains"]) == {"code", "news", "wiki"}
    for figures in saved["domains"].values():
        assert math.isfinite(figures["bpb"]) and 0.5 < figures["bpb"] < 8.0
    assert saved["score"] == pytest.approx(np.mean([d["bpb"] for d in saved["domains"].values()]))
    assert saved["weights"] == {"code": 1 / 3, "news": 1 / 3, "wiki": 1 / 3}
    assert saved["tokens_trained"] == 10 * 8 * 32 and saved["precision"] == "fp32"
    assert set(json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])) >= {
        "step",
        "tokens",
        "loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
    }


def test_bpb_counts_every_held_out_byte_and_token_exactly(run_dir, token_dir, corpus):
    out, _ = run_dir
    scores = json.loads((out / "result.json").read_text())["domains"]
    shards = TokenShards(token_dir)
    held_out = shards.split(0.05).eval
    for domain, figures in scores.items():
        docs = [i for i in held_out if shards.domains[shards.domain_ids[i]] == domain]
        docs = docs[: figures["documents"]]
        assert figures["bytes"] == sum(len(corpus[i][0].encode("utf-8")) for i in docs)  # the raw texts
        assert figures["tokens"] == sum(int(shards.lengths[i]) for i in docs)
        nats = figures["loss"] * figures["tokens"]
        assert figures["bpb"] == pytest.approx(nats / math.log(2) / figures["bytes"], rel=1e-12)


def test_windowed_document_loss_equals_a_plain_forward_pass(run_dir, token_dir):
    out, _ = run_dir
    _, model, recipe, _ = load_run(out, "cpu")
    shards = TokenShards(token_dir)
    doc = int(np.argmin(np.where(shards.domain_ids == shards.domains.index("news"), shards.lengths, 10**9)))
    tokens = shards.document(doc)
    sequence = torch.from_numpy(np.concatenate(([shards.eot_id], tokens)))[None]
    with torch.no_grad():
        plain = lm_loss(model(sequence[:, :-1]), sequence[:, 1:], reduction="sum").item()
    nats, count = documents_nats(model, recipe, shards, [doc], 1024, 4, torch.device("cpu"))
    assert count == len(tokens) and nats == pytest.approx(plain, rel=1e-5)
    short_nats, short_count = documents_nats(model, recipe, shards, [doc], 16, 4, torch.device("cpu"))
    assert short_count == count and short_nats > nats * 0.95  # less context, never fewer predictions


def test_eval_proxy_reproduces_the_score_and_takes_weights(run_dir):
    out, result = run_dir
    again = eval_proxy(out, max_eval_tokens_per_domain=4096, device="cpu")
    assert again["domains"] == result["domains"] and again["score"] == result["score"]
    wiki_only = eval_proxy(out / "checkpoint", weights={"wiki": 1.0}, max_eval_tokens_per_domain=4096)
    assert wiki_only["score"] == result["domains"]["wiki"]["bpb"]
    with pytest.raises(ConfigError, match="unknown domain"):
        eval_proxy(out, weights={"wikii": 1.0}, max_eval_tokens_per_domain=4096)


def test_a_finished_run_rerun_reuses_its_score_until_a_setting_changes(token_dir, tmp_path):
    run = tmp_path / "run"
    first = train_proxy(token_dir, run, **RUN_OPTIONS)
    written = (run / "result.json").stat().st_mtime_ns
    again = train_proxy(token_dir, run, **RUN_OPTIONS)
    assert (run / "result.json").stat().st_mtime_ns == written, "nothing trained, nothing re-scored"
    assert again | {"train": None} == first | {"train": None}
    assert again["train"]["final_loss"] is None
    domain = sorted(first["domains"])[0]
    weighted = train_proxy(token_dir, run, **RUN_OPTIONS, weights={domain: 1.0})
    assert weighted["weights"] == {domain: 1.0} and weighted["score"] == first["domains"][domain]["bpb"]
    eval_proxy(run, max_eval_tokens_per_domain=4096, device="cpu")  # a score `curate eval` wrote ...
    rescored = train_proxy(token_dir, run, **RUN_OPTIONS)  # ... is scored again, not trusted
    assert rescored["score"] == first["score"] and rescored["scored_with"] == first["scored_with"]


def test_target_sets_are_scored_with_the_run_tokenizer(run_dir, tmp_path):
    out, _ = run_dir
    unseen = list(itertools.islice(news_texts(), 200, 210))  # news articles the run never saw
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": text}) + "\n" for text in unseen))
    scored = eval_proxy(out, target_sets={"heldnews": target}, max_eval_tokens_per_domain=None)
    figures = scored["targets"]["heldnews"]
    assert figures["documents"] == 10 and figures["bytes"] == sum(len(t.encode()) for t in unseen)
    assert math.isfinite(figures["bpb"]) and "heldnews" in scored["weights"]
    with pytest.raises(ConfigError, match="equal domain names"):
        eval_proxy(out, target_sets={"news": target}, max_eval_tokens_per_domain=4096)


def test_train_proxy_tokenizes_a_parquet_mixture(corpus, tmp_path):
    mixture = tmp_path / "mix"
    mixture.mkdir()
    texts, domains = zip(*corpus[::2], strict=True)
    pq.write_table(
        pa.table({"text": list(texts), "domain": list(domains), "id": [str(i) for i in range(len(texts))]}),
        mixture / "part-0.parquet",
    )
    options = RUN_OPTIONS | {"steps": None, "tokens": 1000, "vocab_size": 300}
    result = train_proxy(mixture, tmp_path / "run", tokenizer_cache=tmp_path / "cache", **options)
    assert result["train"]["step"] == 4  # 1000 tokens / (8 x 32) rounded up
    shards = TokenShards(tmp_path / "run" / "tokens")
    assert shards.vocab_size == 300 and len(shards) == len(texts)
    assert (tmp_path / "run" / "tokenizer.json").read_bytes() == shards.tokenizer_path.read_bytes()
    assert set(result["domains"]) == {"code", "news", "wiki"}


def test_user_errors_are_config_errors(run_dir, token_dir, corpus, tmp_path, tokenizer_path):
    out, _ = run_dir
    with pytest.raises(ConfigError, match="exactly one of --steps or --tokens"):
        train_proxy(token_dir, tmp_path / "x", **RUN_OPTIONS | {"tokens": 100})
    with pytest.raises(ConfigError, match="no such mixture"):
        train_proxy(tmp_path / "missing", tmp_path / "x", **RUN_OPTIONS)
    (tmp_path / "bad.parquet").parent.mkdir(exist_ok=True)
    pq.write_table(pa.table({"content": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match="needs `text` and `domain`"):
        train_proxy(tmp_path / "bad.parquet", tmp_path / "x", **RUN_OPTIONS)
    with pytest.raises(ConfigError, match="not a proxy run folder"):
        eval_proxy(tmp_path)
    with pytest.raises(ConfigError, match="score weights must be"):
        mixture_score({"a": {"bpb": 1.0}}, {"a": 0.0})
    with pytest.raises(ConfigError, match="not a token-shard folder"):
        eval_proxy(out, token_dir=tmp_path)
    with pytest.raises(ConfigError, match="no held-out documents"):
        train_proxy(token_dir, tmp_path / "y", **RUN_OPTIONS | {"eval_fraction": 0.0})
    assert not (tmp_path / "y" / "metrics.jsonl").exists()


def test_a_bad_option_fails_before_the_mixture_is_tokenized(corpus, tmp_path):
    pq.write_table(pa.table({"text": [corpus[0][0]], "domain": ["wiki"]}), tmp_path / "mix.parquet")
    with pytest.raises(ConfigError, match="train config lr"):
        train_proxy(tmp_path / "mix.parquet", tmp_path / "run", **RUN_OPTIONS | {"lr": -1.0})
    assert not (tmp_path / "run" / "tokens").exists()


def test_command_line_pairs_parse_or_fail_in_one_line():
    assert parse_weights(["wiki=2", "code=0.5"]) == {"wiki": 2.0, "code": 0.5}
    assert parse_target_sets(["books=a/b.jsonl"]) == {"books": Path("a/b.jsonl")}
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        parse_weights(["wiki"])
    with pytest.raises(ConfigError, match="must be a number"):
        parse_weights(["wiki=lots"])


def test_a_mixture_folder_is_read_through_its_manifest(corpus, token_dir, tmp_path):
    """A mixers-written folder: its token shards are used as they are; without them, only listed parts."""
    import shutil

    mixture = tmp_path / "mix"
    (mixture / "tokens").mkdir(parents=True)
    for name in ("tokens.bin", "documents.parquet", "tokens.json"):
        shutil.copy(token_dir / name, mixture / "tokens" / name)
    texts, domains = zip(*corpus[::3], strict=True)
    pq.write_table(pa.table({"text": list(texts), "domain": list(domains)}), mixture / "part-00000.parquet")
    pq.write_table(pa.table({"other": [1]}), mixture / "stray.parquet")  # not listed: must be ignored
    manifest = {
        "kind": "curate-mixture",
        "files": [{"path": "part-00000.parquet"}],
        "token_shards": {"path": "tokens"},
    }
    (mixture / "manifest.json").write_text(json.dumps(manifest))
    options = RUN_OPTIONS | {"steps": 2, "max_eval_tokens_per_domain": 512}
    with_shards = train_proxy(mixture, tmp_path / "a", **options)
    assert with_shards["token_dir"] == str(mixture / "tokens") and not (tmp_path / "a" / "tokens").exists()
    (mixture / "manifest.json").write_text(json.dumps(manifest | {"token_shards": None}))
    from_parts = train_proxy(
        mixture, tmp_path / "b", vocab_size=300, tokenizer_cache=tmp_path / "c", **options
    )
    assert len(TokenShards(from_parts["token_dir"])) == len(texts)


def test_command_functions_parse_cli_pairs(run_dir, token_dir, tmp_path):
    from trainer.commands import eval_command, train_command

    out, result = run_dir
    target = tmp_path / "t.jsonl"
    target.write_text(json.dumps({"text": "A short unseen text about the weather in Paris."}) + "\n")
    scored = eval_command(
        out, sets=[f"extra={target}"], weight=["wiki=3", "extra=1"], max_eval_tokens_per_domain=4096
    )
    assert scored["weights"] == {"extra": 0.25, "wiki": 0.75}
    assert scored["score"] == pytest.approx(
        0.75 * result["domains"]["wiki"]["bpb"] + 0.25 * scored["targets"]["extra"]["bpb"]
    )
    with pytest.raises(ConfigError, match="--weight .wiki.: expected NAME=VALUE"):
        train_command(token_dir, tmp_path / "r", steps=1, weight=["wiki"], threads=1, progress=False)
    assert not (tmp_path / "r").exists()
