"""Metadata conditioning (MeCo): url/site travel from Parquet into the token shards, prefixes are real
tokens that weigh nothing in the loss, the cooldown switches to plain documents at the right step, and
evaluation never sees a prefix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from curate.errors import ConfigError
from trainer.evaluate import documents_nats
from trainer.metadata import conditioned_steps, prefix_text
from trainer.model import lm_loss
from trainer.token_shards import TokenShards, eval_batches, write_parquet_token_shards
from trainer.tokenizer import load_tokenizer
from trainer.train import METRICS, Run, evaluate_held_out, masked_lm_loss, parse_train_config, train_run

SMALL_MODEL = {"d_model": 64, "n_layers": 2, "n_heads": 2}
SITES = {"wiki": "wikipedia.org", "code": "github.com"}  # news documents carry no metadata


@pytest.fixture(scope="module")
def meta_token_dir(corpus, tokenizer_path, tmp_path_factory) -> Path:
    """The shared corpus as Parquet with url/site (news without), tokenised by the trainer's Parquet path."""
    rows = [
        {
            "text": text,
            "domain": domain,
            "url": f"https://{SITES[domain]}/doc{index}" if domain in SITES else None,
            "site": SITES.get(domain),
        }
        for index, (text, domain) in enumerate(corpus)
    ]
    folder = tmp_path_factory.mktemp("meta")
    pq.write_table(pa.Table.from_pylist(rows), folder / "mix.parquet")
    write_parquet_token_shards(
        folder / "tokens", [folder / "mix.parquet"], load_tokenizer(tokenizer_path), tokenizer_path
    )
    return folder / "tokens"


def _config(token_dir: Path, out: Path, **overrides):
    fields = {
        "token_dir": token_dir, "out_dir": out, "model": SMALL_MODEL, "batch_size": 8, "seq_len": 32,
        "lr": 1e-2, "steps": 10, "threads": 1, "progress": False, "precision": {"name": "fp32"},
        "metadata_conditioning": "site", "cooldown": 0.3,
    }  # fmt: skip
    return parse_train_config(**{**fields, **overrides})


def test_token_shards_keep_url_and_site_from_parquet(meta_token_dir, token_dir):
    shards = TokenShards(meta_token_dir)
    sites = shards.metadata("site")
    domains = [shards.domains[i] for i in shards.domain_ids]
    assert {s for s, d in zip(sites, domains, strict=True) if d == "wiki"} == {"wikipedia.org"}
    assert all(s is None for s, d in zip(sites, domains, strict=True) if d == "news")
    assert shards.metadata("url")[0].startswith("https://")
    assert set(TokenShards(token_dir).metadata("site")) == {None}  # shards written without metadata


def test_prefix_tokens_get_zero_loss_weight_on_a_real_batch(meta_token_dir, tmp_path):
    run = Run(_config(meta_token_dir, tmp_path, steps=400))  # built, not trained: batches to choose from
    # the first batch whose windows cross a document start (a prefix is ~1% of the stream)
    tokens, mask = next(
        b for b in map(run.sampler.masked_batch, range(run.sampler.prefixed_batches)) if not b[1].all()
    )
    assert mask.shape == (8, 32) and 0 < (~mask).sum() < mask.size
    tokenizer = load_tokenizer(run.shards.tokenizer_path)
    # every masked target is a prefix token: decoding each masked run gives (part of) "URL: SITE\n\n"
    whole = {prefix_text(site) for site in SITES.values()}
    targets = tokens[:, 1:]
    for row in range(8):
        runs = np.split(
            np.flatnonzero(~mask[row]), np.flatnonzero(np.diff(np.flatnonzero(~mask[row])) > 1) + 1
        )
        for positions in (r for r in runs if len(r)):
            text = tokenizer.decode(targets[row, positions].tolist())
            assert any(text in prefix or prefix.endswith(text) for prefix in whole), text
    # the loss ignores the masked targets entirely: changing their logits changes nothing
    logits = torch.randn(8, 32, 512)
    target = torch.from_numpy(targets)
    keep = torch.from_numpy(mask)
    noisy = logits.clone()
    noisy[~keep] = torch.randn_like(noisy[~keep]) * 10
    assert torch.allclose(masked_lm_loss(logits, target, keep), masked_lm_loss(noisy, target, keep))
    expected = lm_loss(logits, target, reduction="none")[keep.flatten()].mean()
    assert torch.allclose(masked_lm_loss(logits, target, keep), expected)


def test_documents_without_metadata_train_plain(meta_token_dir, tmp_path):
    run = Run(_config(meta_token_dir, tmp_path))
    news = run.shards.domains.index("news")
    news_rows = run.shards.domain_ids[run.sampler.docs] == news
    assert (run.sampler.prefix_lengths[news_rows] == 0).all() and (
        run.sampler.prefix_lengths[~news_rows] > 0
    ).all()
    assert run.conditioning["documents_with_metadata"] == int((~news_rows).sum())


def test_no_metadata_at_all_is_a_config_error(token_dir, tmp_path):
    with pytest.raises(ConfigError, match="no training document .* has a site"):
        Run(_config(token_dir, tmp_path))


def test_cooldown_switches_to_plain_documents_at_the_right_step(meta_token_dir, tmp_path):
    cfg = _config(meta_token_dir, tmp_path, steps=10, cooldown=0.3)
    assert conditioned_steps(10, 0.3) == 7
    run, summary = train_run(cfg)
    rows = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["conditioned"] for r in rows] == [True] * 7 + [False] * 3
    assert summary["metadata_conditioning"]["conditioned_steps"] == 7
    assert run.sampler.masked_batch(6)[1] is not None and run.sampler.masked_batch(7)[1] is None
    assert np.array_equal(run.sampler.masked_batch(7)[0], run.sampler.batch(7))  # plain windows after


def test_evaluation_has_no_prefix(meta_token_dir, tmp_path):
    run, _ = train_run(_config(meta_token_dir, tmp_path, steps=4))
    cfg, docs = run.cfg, run.split.eval
    per_domain = evaluate_held_out(run, cfg, None)
    wiki = docs[run.shards.domain_ids[docs] == run.shards.domains.index("wiki")]
    plain, count = documents_nats(run.model, run.recipe, run.shards, wiki, cfg.seq_len, 8, run.device)
    assert per_domain["wiki"]["loss"] == pytest.approx(plain / count)
    assert count == int(run.shards.lengths[wiki].sum())  # every document token once, nothing else
    # a prefix, when asked for (site steering), is context only: the same targets are counted
    prefix = np.array([5, 6, 7])
    counted = sum(
        int(b.mask.sum()) for b in eval_batches(run.shards, wiki, cfg.seq_len, 8, lambda _d: prefix)
    )
    assert counted == count
    conditioned, _ = documents_nats(
        run.model, run.recipe, run.shards, wiki, cfg.seq_len, 8, run.device, lambda _d: prefix
    )
    assert conditioned != pytest.approx(plain)
