"""The values the trainer's enum options take, apart from the code that uses them, so the CLI can show
and check them (`--precision <fp32|bf16|fp8|nvfp4>`) without importing torch."""

from __future__ import annotations

from typing import Literal

Size = Literal["tiny", "small", "base"]
Precision = Literal["fp32", "bf16", "fp8", "nvfp4"]
Schedule = Literal["cosine", "wsd"]
Optimizer = Literal["adamw", "muon"]
TrainRecipe = Literal["standard", "osp"]
MetadataField = Literal["url", "site"]
