"""The proxy LM: tokenizer, model, precision recipes (bf16 / fp8 / nvfp4), training, evaluation, scoring."""
