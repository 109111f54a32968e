"""The `dedup:` section of a pipeline config: what counts as a duplicate and which copy survives."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from curate.paths import PathParam

KeepRule = Literal["quality", "longest", "oldest"]
# One DuckDB process clusters a few million sketches in minutes within its memory cap; below this the
# Ray path's shuffles cost more than they save (see curate.dedup.ray_global).
RAY_MIN_DOCUMENTS = 2_000_000


class ParagraphConfig(BaseModel):
    """CCNet-style boilerplate removal: a line (or paragraph) found in `min_docs` or more distinct
    documents is removed from every document that holds it. See :mod:`curate.dedup.paragraphs`.

    Units are compared after normalisation (lower case, accents stripped, digits to 0, punctuation and
    spacing ignored). Units whose normalised form is shorter than `min_chars` are neither counted nor
    removed. A document left with fewer than `min_chars_left` characters of text becomes a reject with
    reason `boilerplate_only`.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    unit: Literal["line", "paragraph"] = Field(
        default="line", description="line: every line (CCNet); paragraph: runs of lines between blank lines"
    )
    min_docs: int = Field(default=2, ge=2, description="distinct documents a unit must be in to be removed")
    min_chars: int = Field(default=10, ge=0, description="shorter normalised units are left alone")
    min_chars_left: int = Field(
        default=1, ge=1, description="a stripped document with less text left is rejected (boilerplate_only)"
    )


class DedupConfig(BaseModel):
    """Exact dedup on normalised text, then MinHash-LSH near-dup clusters across all shards of a run,
    then (optionally, `paragraphs:`) boilerplate lines or paragraphs removed from the documents kept.

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
    index: PathParam | None = None
    memory_limit: str = Field(default="2GB", description="DuckDB memory cap; beyond it DuckDB spills to disk")
    paragraphs: ParagraphConfig = Field(default_factory=ParagraphConfig)
    ray_min_documents: int = Field(
        default=RAY_MIN_DOCUMENTS,
        ge=0,
        description="with --executor ray, the global phase runs on Ray from this many documents (the run's "
        "plus the index's); smaller runs use one DuckDB process, faster than Ray's scheduling and shuffles",
    )

    @field_validator("paragraphs", mode="before")
    @classmethod
    def _paragraphs_shorthand(cls, value: Any) -> Any:
        """`paragraphs: true` turns it on with the defaults."""
        return {"enabled": value} if isinstance(value, bool) else value

    @model_serializer(mode="wrap")
    def _omit_options_added_later(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A config without paragraph dedup serialises as before the option existed, so its config hash,
        and the run ids of outputs made before, stay the same; so does the default Ray threshold (which
        path runs never changes the output)."""
        data = handler(self)
        if not self.paragraphs.enabled:
            data.pop("paragraphs", None)
        if self.ray_min_documents == RAY_MIN_DOCUMENTS:
            data.pop("ray_min_documents", None)
        return data

    @model_validator(mode="after")
    def _bands_divide_permutations(self) -> DedupConfig:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self
