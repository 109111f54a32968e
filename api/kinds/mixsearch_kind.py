"""`mixsearch` jobs: the config of `curate mixsearch`, as JSON, run by `mixers.strategies.search.mixsearch`.

The config is validated at submission by the search's own model (`SearchConfig`), imported on the first
mixsearch request only: it pulls in torch, which a server that never runs a search should not pay for.
Every path (token shards, extra evaluation sets, an agent's policy, the mixture's corpora and tokenizer)
is confined to the data roots. The worker writes the confined config to OUT/search.yaml and runs the
search there; the chosen spec is OUT/mix.yaml and its report OUT/mix.search.json. A search that dies is
run again from its start (proxy runs are cheap and seeded, so the answer is the same).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from api.errors import FieldError
from api.kinds.base import JobKind, KindContext, Prepared, RunContext
from api.security import PathPolicy
from api.store import Job

CONFIG = ("body", "config")
SPEC = "mix.yaml"
REPORT = "mix.search.json"


class MixsearchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parallel: Literal["sequential", "ray"] = Field(
        default="sequential", description="how proxy runs are spread"
    )


def _folder(policy: PathPolicy, value: str, loc: tuple[Any, ...]) -> str:
    path = Path(policy.confine(value, loc)).resolve()
    if not path.is_dir():
        raise FieldError(loc, f"{path}: no such folder")
    return str(path)


def confine_search(raw: dict[str, Any], policy: PathPolicy, output: Path) -> dict[str, Any]:
    confined = copy.deepcopy(raw)
    confined["tokens"] = _folder(policy, raw["tokens"], (*CONFIG, "tokens"))
    confined["eval_sets"] = {
        name: _folder(policy, path, (*CONFIG, "eval_sets", name))
        for name, path in raw.get("eval_sets", {}).items()
    }
    if raw.get("params", {}).get("policy"):
        confined["params"]["policy"] = _folder(policy, raw["params"]["policy"], (*CONFIG, "params", "policy"))
    mixture = confined["mixture"]
    if isinstance(mixture.get("corpora"), list):
        mixture["corpora"] = [
            policy.confine(str(c), (*CONFIG, "mixture", "corpora", i))
            for i, c in enumerate(mixture["corpora"])
        ]
    tokenizer = mixture.get("tokenizer")
    if isinstance(tokenizer, str):
        mixture["tokenizer"] = {"path": policy.confine(tokenizer, (*CONFIG, "mixture", "tokenizer"))}
    elif isinstance(tokenizer, dict) and tokenizer.get("path"):
        path = policy.confine(str(tokenizer["path"]), (*CONFIG, "mixture", "tokenizer", "path"))
        mixture["tokenizer"] = {**tokenizer, "path": path}
    confined["output"] = str(Path(policy.confine(str(output / SPEC), (*CONFIG, "output"))).resolve())
    return confined


class MixsearchKind(JobKind):
    name = "mixsearch"
    summary = "search mixture weights with proxy runs; writes a spec for a mix job"
    Options = MixsearchOptions

    @property
    def Config(self) -> type[BaseModel]:  # type: ignore[override]
        from mixers.strategies.search import SearchConfig

        return SearchConfig

    def prepare(
        self, job_id: str, config: dict[str, Any], options: dict[str, Any], ctx: KindContext
    ) -> Prepared:
        _, opts = self.validate(config, options, ctx.policy)
        out = ctx.settings.jobs_output_root / job_id
        confined = confine_search(config, ctx.policy, out)
        output = str(Path(confined["output"]).parent)
        return Prepared(confined, opts.model_dump(), output, [output], None)

    def recheck(self, job: Job, ctx: KindContext) -> None:
        confine_search(job.config, ctx.policy, Path(job.output))

    def run(self, job: Job, ctx: RunContext) -> dict[str, Any]:
        from mixers.strategies.search import mixsearch

        out = Path(job.output)
        out.mkdir(parents=True, exist_ok=True)
        config_path = out / "search.yaml"
        config_path.write_text(yaml.safe_dump(job.config, sort_keys=False), encoding="utf-8")
        opts = MixsearchOptions.model_validate(job.options)
        report = mixsearch(config_path, out / SPEC, opts.parallel)
        result = report["result"]
        ctx.log(f"{result['strategy']}: {result['weights']}; spec {report['spec']}")
        return {"strategy": result["strategy"], "weights": result["weights"], "spec": report["spec"]}

    def manifest_path(self, job: Job) -> Path | None:
        path = Path(job.output) / REPORT
        return path if path.is_file() else None


KIND = MixsearchKind()
