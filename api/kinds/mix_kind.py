"""`mix` jobs: the mixture spec of `curate mix`, as JSON, built by `mixers.sampler.build_mixture`.

Everything `build_mixture` checks before sampling (corpora, domains, predicates, budget, output folder)
is checked at submission through `plan_mixture`, so a bad spec is a 422, not a failed job. A rerun after
a crash starts the build again: a mixture is committed by one rename, so there is nothing half-written
to resume from, and the rebuilt mixture is byte-identical for one seed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.errors import FieldError
from api.kinds.base import JobKind, KindContext, Prepared, RunContext
from api.security import PathPolicy
from api.store import Job
from curate.errors import ConfigError
from mixers.spec import MixtureSpec

CONFIG = ("body", "config")


class MixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: bool = Field(default=False, description="also write token shards (needs `tokenizer: {path}`)")
    strict: bool = Field(default=False, description="refuse weights that do not sum to 1")


def confine_spec(
    raw: dict[str, Any], spec: MixtureSpec, policy: PathPolicy, default_output: Path | None
) -> dict:
    confined = copy.deepcopy(raw)
    confined["corpora"] = [
        policy.confine(corpus, (*CONFIG, "corpora", i)) for i, corpus in enumerate(spec.corpora)
    ]
    if spec.tokenizer.path is not None:
        path = policy.confine(spec.tokenizer.path, (*CONFIG, "tokenizer", "path"))
        confined["tokenizer"] = {**spec.tokenizer.model_dump(exclude_none=True), "path": path}
    output = spec.output or (str(default_output) if default_output else None)
    if output is None:
        raise FieldError((*CONFIG, "output"), "required: the folder of the mixture")
    confined["output"] = str(Path(policy.confine(output, (*CONFIG, "output"))).resolve())
    return confined


def check_mixture(confined: dict[str, Any], opts: MixOptions) -> MixtureSpec:
    """`plan_mixture` finds every user error from manifests and footers only, before any sampling."""
    from mixers.sampler import plan_mixture
    from mixers.spec import parse_spec

    try:
        spec = parse_spec(confined)
        plan_mixture(spec, spec.output, opts.tokens, opts.strict)
    except ConfigError as error:
        raise FieldError(CONFIG, str(error)) from None
    return spec


def mixture_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    domains = {
        name: {k: d.get(k) for k in ("achieved_tokens", "achieved_share", "requested_share", "documents")}
        for name, d in manifest.get("domains", {}).items()
    }
    return {"totals": manifest.get("totals"), "domains": domains, "spec_hash": manifest.get("spec_hash")}


class MixKind(JobKind):
    name = "mix"
    summary = "build a training mixture from curated corpora (the spec of `curate mix`)"
    Config = MixtureSpec
    Options = MixOptions

    def prepare(
        self, job_id: str, config: dict[str, Any], options: dict[str, Any], ctx: KindContext
    ) -> Prepared:
        spec, opts = self.validate(config, options, ctx.policy)
        assert isinstance(spec, MixtureSpec) and isinstance(opts, MixOptions)
        confined = confine_spec(config, spec, ctx.policy, ctx.settings.jobs_output_root / job_id)
        check_mixture(confined, opts)
        return Prepared(confined, opts.model_dump(), confined["output"], [confined["output"]], None)

    def recheck(self, job: Job, ctx: KindContext) -> None:
        spec, _ = self.validate(job.config, job.options, ctx.policy)
        assert isinstance(spec, MixtureSpec)
        confine_spec(job.config, spec, ctx.policy, None)

    def run(self, job: Job, ctx: RunContext) -> dict[str, Any]:
        from mixers.sampler import build_mixture
        from mixers.spec import parse_spec

        opts = MixOptions.model_validate(job.options)
        phases = PhaseProgress(ctx.progress, MIX_PHASES if opts.tokens else MIX_PHASES[:-1])
        spec = parse_spec(job.config)
        manifest = build_mixture(spec, job.output, opts.tokens, opts.strict, echo=ctx.log, timings=phases)
        return mixture_summary(manifest)


# build_mixture's phases in the order they run ("count" only when token counts are missing).
MIX_PHASES = ("plan", "count", "select", "write", "tokens")


class PhaseProgress(dict[str, float]):
    """build_mixture's seconds per phase; each phase that ends reports the job's progress as the place of
    that phase among the planned ones, so a mix job shows "3/4" and not "-/-"."""

    def __init__(self, report: Callable[[int | None, int | None], None], planned: tuple[str, ...]) -> None:
        super().__init__()
        self.report, self.planned = report, planned

    def __setitem__(self, phase: str, seconds: float) -> None:
        super().__setitem__(phase, seconds)
        if phase in self.planned:
            self.report(len(self.planned), self.planned.index(phase) + 1)


KIND = MixKind()
