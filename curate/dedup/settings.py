"""The `dedup:` section of a pipeline config: what counts as a duplicate and which copy survives."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

KeepRule = Literal["quality", "longest", "oldest"]


class DedupConfig(BaseModel):
    """Exact dedup on normalised text, then MinHash-LSH near-dup clusters across all shards of a run.

    `keep` orders the tie-breakers for the surviving copy (the id breaks the last tie, so the choice is
    deterministic). `index` names a persistent index: documents emitted by earlier runs are then
    duplicates' keepers, and this run's kept documents are added to it when the run completes.
    """

    model_config = ConfigDict(extra="forbid")

    exact: bool = True
    near: bool = True
    ngram: int = Field(default=5, ge=1)
    num_perm: int = Field(default=112, ge=8)
    bands: int = Field(default=14, ge=1)
    seed: int = Field(default=0, ge=0, lt=2**32)
    threshold: float = Field(default=0.7, gt=0, le=1, description="min Jaccard for a verified pair")
    verify: Literal["none", "signature", "exact"] = "signature"
    keep: list[KeepRule] = ["quality", "longest", "oldest"]
    index: str | None = None
    memory_limit: str = Field(default="2GB", description="DuckDB memory cap; beyond it DuckDB spills to disk")

    @model_validator(mode="after")
    def _bands_divide_permutations(self) -> DedupConfig:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self
