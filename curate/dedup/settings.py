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
    # 28 bands x 4 rows, not FineWeb's 14 x 8: 14 x 8 makes a pair at Jaccard 0.7 a candidate with
    # probability 0.56 only (its S-curve is tuned for ~0.75-0.8 without verification); 28 x 4 gives 0.9995
    # at 0.7 and the extra candidates below the threshold are cut by verification. On the near-dup
    # benchmark (bench_quality) duplicate pairs left with both copies kept fall from 2.1% to 0.2% at 0.7.
    bands: int = Field(default=28, ge=1)
    seed: int = Field(default=0, ge=0, lt=2**32)
    threshold: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="min Jaccard of a verified pair, and of every removed document to the one it is kept for",
    )
    verify: Literal["none", "signature", "exact"] = "signature"
    keep: list[KeepRule] = ["quality", "longest", "oldest"]
    index: str | None = None
    memory_limit: str = Field(default="2GB", description="DuckDB memory cap; beyond it DuckDB spills to disk")

    @model_validator(mode="after")
    def _bands_divide_permutations(self) -> DedupConfig:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self
