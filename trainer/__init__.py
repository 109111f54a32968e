"""The proxy LM: tokenizer, model, precision recipes (bf16 / fp8 / nvfp4), training, evaluation, scoring.

Entry points (``trainer.proxy``): ``train_proxy`` trains a small LM on a mixture and writes
``OUT/result.json`` (weighted per-domain bits per byte, lower is better); ``eval_proxy`` re-scores a run,
optionally on other token shards or on user target sets. ``bench.train_speed.bench_train`` produces the
figures of ``curate bench train``.

Modules, in data-flow order: ``tokenizer`` (byte-level BPE, cached by sample hash), ``token_shards`` (the
on-disk format the mixture writer produces; reader, held-out split, seeded windows), ``model``
(TransformerLM and presets), ``quantize`` + ``precision`` (NVFP4 / FP8 linears and the recipes),
``optim`` (AdamW / Muon, schedules), ``train`` (the resumable loop), ``evaluate`` (bpb and the score).
"""
