"""Held-out evaluation in bits per byte, and the mixture score built from it.

Bits per byte, not loss per token: proxies of different tokenizers (or of one tokenizer over very
different domains: code packs more bytes per token than prose) are only comparable per byte of text.
For a set of whole documents, ``bpb = sum of token losses (nats) / ln 2 / sum of UTF-8 bytes``; every
token of a document, including its closing ``<|endoftext|>``, is predicted exactly once, and the byte
counts come from ``documents.parquet`` (``n_bytes``), so the figure is exact rather than estimated from
an average bytes-per-token ratio.

The mixture score is a weighted mean of per-domain bpb (lower is better); by default every held-out
domain weighs the same, so a mixture cannot score well by sacrificing a small domain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from curate.errors import ConfigError
from trainer.model import lm_loss
from trainer.precision import Recipe
from trainer.token_shards import TokenShards, eval_batches


def documents_nats(
    model: nn.Module,
    recipe: Recipe,
    shards: TokenShards,
    docs: Iterable[int],
    seq_len: int,
    batch_size: int,
    device: torch.device,
    prefix_of: Callable[[int], np.ndarray | None] | None = None,
) -> tuple[float, int]:
    """(summed token loss in nats, predicted tokens) over whole documents, without gradients.

    ``prefix_of(doc)`` conditions each document on prefix tokens (metadata conditioning's steering by
    site), heading every window of it; the prefix is context, never counted. Scores of a run are always
    plain (no prefix)."""
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in eval_batches(shards, docs, seq_len, batch_size, prefix_of):
            inputs = torch.from_numpy(batch.inputs).to(device)
            with recipe.autocast():
                logits = model(inputs)
            losses = lm_loss(logits, torch.from_numpy(batch.targets).to(device), reduction="none")
            mask = torch.from_numpy(batch.mask).to(device).flatten()
            total += float(losses[mask].double().sum())
            count += int(mask.sum())
    model.train(was_training)
    return total, count


def bits_per_byte(nats: float, n_bytes: int) -> float:
    return nats / math.log(2) / n_bytes if n_bytes > 0 else float("nan")


def evaluate_domains(
    model: nn.Module,
    recipe: Recipe,
    shards: TokenShards,
    docs: np.ndarray,
    seq_len: int,
    batch_size: int,
    device: torch.device,
    max_tokens_per_domain: int | None = None,
) -> dict[str, dict[str, float]]:
    """Per-domain {bpb, loss (nats/token), tokens, bytes, documents} over the given held-out documents.

    ``max_tokens_per_domain`` caps the cost by taking whole documents, in order, until the cap is reached.
    """
    results: dict[str, dict[str, float]] = {}
    for domain_id, domain in enumerate(shards.domains):
        chosen = _cap_documents(shards, docs[shards.domain_ids[docs] == domain_id], max_tokens_per_domain)
        if not len(chosen):
            continue
        nats, tokens = documents_nats(model, recipe, shards, chosen, seq_len, batch_size, device)
        n_bytes = int(shards.n_bytes[chosen].sum())
        results[domain] = {
            "bpb": bits_per_byte(nats, n_bytes),
            "loss": nats / max(tokens, 1),
            "tokens": tokens,
            "bytes": n_bytes,
            "documents": len(chosen),
        }
    return results


def _cap_documents(shards: TokenShards, docs: np.ndarray, max_tokens: int | None) -> np.ndarray:
    """Leading documents whose tokens stay within ``max_tokens`` (always at least one)."""
    if max_tokens is None or not len(docs):
        return docs
    within = np.cumsum(shards.lengths[docs]) <= max_tokens
    return docs[: max(1, int(within.sum()))]


def mixture_score(
    per_domain: dict[str, dict[str, float]],
    weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Weighted mean bpb over domains (lower is better), with the normalised weights actually used.

    Weights name domains; a domain missing from ``weights`` counts zero, an unknown name is an error
    (a typo must not silently drop a domain from the objective).
    """
    if not per_domain:
        raise ConfigError("no held-out documents to score; the token shards need >= 2 documents per domain")
    if weights is None:
        weights = dict.fromkeys(per_domain, 1.0)
    unknown = sorted(set(weights) - set(per_domain))
    if unknown:
        raise ConfigError(f"score weights name unknown domain(s) {unknown}; known: {sorted(per_domain)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ConfigError("score weights must be >= 0 and not all zero")
    total = sum(weights.values())
    used = {d: w / total for d, w in sorted(weights.items()) if w > 0}
    score = sum(w * per_domain[d]["bpb"] for d, w in used.items())
    return {"score": score, "metric": "weighted mean bits per byte (lower is better)", "weights": used}
