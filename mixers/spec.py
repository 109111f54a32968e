"""The mixture spec: YAML in, a validated model out, or one line naming the bad key and the fix.

```yaml
corpora: [out/]                  # OUT folders of `curate run`, relative to this file
budget: 50_000_000               # tokens in the mixture (with weights; optional with per-domain tokens)
seed: 0
tokenizer: {path: tok/tokenizer.json}    # exact counts; or {chars_per_token: 4.0} for a quick estimate
max_epochs: 1                    # default cap on repetition for every domain
where: lang == en                # applies to every domain, and-ed with each domain's own `where`
domains:
  web:  {weight: 0.6, where: "quality >= 0.2 and toxicity < 0.1"}
  wiki: {weight: 0.3, max_epochs: 3}
  code: 0.1                      # shorthand for {weight: 0.1}
share_tolerance: 0.01           # achieved share within 1 percentage point of the request, or a warning
eval:                            # the evaluation suite, held out of every mixture of these corpora
  tokens: 50_000                 # per domain (estimated as characters / 4); 0: no suite
  max_share: 0.1                 # never more than this share of a domain
  near_threshold: 0.7            # a training document this similar (MinHash) to a suite one is dropped
  targets: {books: held_out/*.jsonl}   # named target sets, scored beside the domains
output: mix/                     # or --out MIX
```

Everything a spec says is checked here or in `mixers.plan` before a document is read: a spec that
cannot be satisfied costs a second, not a sampling pass.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curate.config import describe_validation_error
from curate.paths import PathParam
from curate.schema import DomainName
from curate.storage import is_url
from curate.yamlfile import read_yaml
from mixers.errors import MixError, warn

WEIGHT_TOLERANCE = 1e-6


class TokenizerSpec(BaseModel):
    """How tokens are counted: a tokenizer file (exact, the default when given) or chars per token."""

    model_config = ConfigDict(extra="forbid")

    path: PathParam | None = Field(default=None, description="tokenizer.json, or a folder holding one")
    chars_per_token: float | None = Field(default=None, gt=0, description="estimate: ceil(chars / this)")
    count: Literal["exact", "estimate"] | None = Field(
        default=None, description="exact (needs path) or estimate (needs chars_per_token)"
    )

    @model_validator(mode="after")
    def _one_way_to_count(self) -> TokenizerSpec:
        mode = self.mode
        if mode == "exact" and self.path is None:
            raise ValueError("count: exact needs `path:` to a tokenizer.json")
        if mode == "estimate" and self.chars_per_token is None:
            raise ValueError("count: estimate needs `chars_per_token:` (e.g. 4.0)")
        return self

    @property
    def mode(self) -> Literal["exact", "estimate"]:
        if self.count is not None:
            return self.count
        if self.path is None and self.chars_per_token is None:
            raise ValueError("give `path:` (a tokenizer.json) or `chars_per_token:` to count tokens")
        return "exact" if self.path is not None else "estimate"


class DomainSpec(BaseModel):
    """One domain's share (a weight or an absolute token count), its filter and its repetition cap."""

    model_config = ConfigDict(extra="forbid")

    weight: float | None = None
    tokens: int | None = Field(default=None, ge=0)
    where: str | list[str] | None = None
    max_epochs: float | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _weight_or_tokens(self) -> DomainSpec:
        if (self.weight is None) == (self.tokens is None):
            raise ValueError("give exactly one of `weight:` or `tokens:`")
        if self.weight is not None and self.weight < 0:
            raise ValueError(f"weight {self.weight} is negative; weights must be >= 0")
        return self


class EvalSpec(BaseModel):
    """The evaluation suite: a corpus-level held-out split plus named target sets (see mixers.suite)."""

    model_config = ConfigDict(extra="forbid")

    tokens: int = Field(default=50_000, ge=0, description="held-out tokens per domain (chars / 4); 0: none")
    max_share: float = Field(default=0.1, gt=0, le=0.5, description="largest share of a domain held out")
    near_threshold: float = Field(default=0.7, gt=0, le=1, description="MinHash Jaccard of a near-duplicate")
    targets: dict[DomainName, str] = Field(default_factory=dict, description="NAME: file or glob of texts")


class MixtureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpora: list[PathParam] = Field(min_length=1)
    domains: dict[DomainName, DomainSpec] = Field(min_length=1)
    budget: int | None = Field(default=None, gt=0, description="tokens in the whole mixture")
    seed: int = 0
    tokenizer: TokenizerSpec
    max_epochs: float = Field(default=1.0, ge=1)
    where: str | list[str] | None = None
    strict: bool = Field(default=False, description="refuse weights that do not sum to 1")
    share_tolerance: float = Field(
        default=0.01, ge=0, lt=1, description="allowed |achieved - requested| share"
    )
    eval: EvalSpec = Field(default_factory=EvalSpec)
    output: PathParam | None = None

    @field_validator("domains", mode="before")
    @classmethod
    def _weight_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"weight": v} if isinstance(v, int | float) else v for k, v in value.items()}
        return value

    @field_validator("tokenizer", mode="before")
    @classmethod
    def _tokenizer_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind_of_share(self) -> MixtureSpec:
        kinds = {"weight" if d.weight is not None else "tokens" for d in self.domains.values()}
        if len(kinds) > 1:
            raise ValueError("domains mix `weight:` and `tokens:`; give every domain the same kind")
        if kinds == {"weight"} and self.budget is None:
            raise ValueError("weights need `budget:` (tokens in the mixture)")
        if kinds == {"weight"} and sum(d.weight or 0 for d in self.domains.values()) <= 0:
            raise ValueError("every weight is 0; give at least one domain a positive weight")
        if kinds == {"tokens"} and self.budget is not None:
            total = sum(d.tokens or 0 for d in self.domains.values())
            if total != self.budget:
                raise ValueError(f"per-domain tokens sum to {total:,}, not budget {self.budget:,}; drop one")
        return self

    def domain_epochs(self, domain: str) -> float:
        own = self.domains[domain].max_epochs
        return self.max_epochs if own is None else own

    def canonical_json(self) -> str:
        """The spec as it decides the mixture: output location excluded, so moving MIX keeps the hash."""
        return json.dumps(self.model_dump(mode="json", exclude={"output"}), sort_keys=True)

    def spec_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def parse_spec(raw: Any, where: str = "spec") -> MixtureSpec:
    if not isinstance(raw, dict):
        raise MixError(f"{where}: expected a mapping with `corpora:`, `domains:` and `tokenizer:`")
    try:
        return MixtureSpec.model_validate(raw)
    except ValidationError as error:
        raise MixError(f"{where}: {describe_validation_error(error)}") from None


def load_spec(path: Path) -> MixtureSpec:
    """Read and validate a spec file; corpus, tokenizer and output paths become absolute (relative to it)."""
    raw = read_yaml(path, "mixture spec", MixError)
    return resolve_spec_paths(parse_spec(raw, where=str(path)), path.parent)


def resolve_spec_paths(spec: MixtureSpec, base: Path) -> MixtureSpec:
    def absolute(value: str) -> str:
        if is_url(value):
            return value
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else (base / candidate).resolve())

    tokenizer = spec.tokenizer
    if tokenizer.path is not None:
        tokenizer = tokenizer.model_copy(update={"path": absolute(tokenizer.path)})
    output = absolute(spec.output) if spec.output else None
    targets = {name: absolute(glob) for name, glob in spec.eval.targets.items()}
    return spec.model_copy(
        update={
            "corpora": [absolute(c) for c in spec.corpora],
            "tokenizer": tokenizer,
            "output": output,
            "eval": spec.eval.model_copy(update={"targets": targets}),
        }
    )


def domain_targets(spec: MixtureSpec, strict: bool, notes: list[str]) -> dict[str, int]:
    """Requested tokens per domain: weights (normalised unless strict) times budget, or the given counts.

    Rounded with the largest-remainder method, so the targets always add up to the budget exactly.
    """
    if all(d.tokens is not None for d in spec.domains.values()):
        return {name: int(d.tokens or 0) for name, d in spec.domains.items()}
    weights = {name: float(d.weight or 0.0) for name, d in spec.domains.items()}
    total = sum(weights.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        shown = ", ".join(f"{k}={v:g}" for k, v in weights.items())
        if strict or spec.strict:
            raise MixError(
                f"weights sum to {total:g}, not 1 ({shown}); fix them or drop --strict to normalise"
            )
        warn(f"weights sum to {total:g}, not 1 ({shown}); normalised to shares of the budget", notes)
    assert spec.budget is not None
    return largest_remainder({k: v / total for k, v in weights.items()}, spec.budget)


def largest_remainder(shares: dict[str, float], total: int) -> dict[str, int]:
    exact = {k: share * total for k, share in shares.items()}
    result = {k: int(value) for k, value in exact.items()}
    leftover = total - sum(result.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - result[k]), k))
    for name in by_remainder[:leftover]:
        result[name] += 1
    return result
