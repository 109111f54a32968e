"""``curate mixsearch CONFIG``: run a strategy on proxies and write a mixture spec ``curate mix`` takes.

```yaml
tokens: mix-natural/              # a mixture of `curate mix --tokens` (or its tokens/): scored on its suite
eval_sets: {gsm8k: gsm8k/tokens}  # optional extra held-out sets (same tokenizer), usable in the objective
domains: [web, wiki, code]        # optional subset of the shards' domains
proxy: {d_model: 48, n_layers: 2, seq_len: 64, batch_size: 8}   # ProxyConfig fields
strategy: regmix                  # uniform natural temperature fixed regmix doremi skillit agent
params: {model: auto, top_k: 100} # the strategy's settings (agent: {policy: agents/default})
objective: {average: [web, wiki]} # or {weights: {web: 0.7, gsm8k: 0.3}}
                                  # or {balanced: {source: [web], target: [gsm8k], balance: 0.5}}
                                  # or {critical_ratio: {domain: code, tolerance: 0.01, budgets: [40, 120]}}
budget: {runs: 32, steps: 50}     # or {runs: 32, tokens: 2_000_000}
stages: 1
seed: 0
continual: {source: {web: 1.0}, steps: 200}   # optional: start every proxy from a model of the source mix
parallel: sequential              # or ray
check: {seeds: 3}                 # then the answer vs uniform and natural on 3 fresh paired seeds (0: skip)
mixture:                          # the spec to write, minus `domains` (filled with the chosen weights)
  corpora: [out/]
  budget: 50_000_000
  tokenizer: {path: tok/tokenizer.json}
output: mix.yaml                  # the spec; the search report goes beside it as mix.search.json
```

Paths are relative to the config file. A staged answer (agent) writes its average weights into the spec
(``curate mix`` builds one static mixture) and the whole schedule into the report.

Every proxy run, search and check alike, is scored on the mixture's evaluation suite (``mixers.suite``:
documents chosen by a hash of their id before any sampling, never in the token shards), so candidates
compete on the same documents; the report records the suite's hash (``eval_suite``). Plain token shards
have no suite: a seeded held-out split of their own documents scores, and ``eval_suite`` is null.

``critical_ratio`` asks another question: not which weights, but how large a share of one domain a
continual run can take while the other domains' loss stays within ``tolerance`` of a model of them
(mixers/strategies/critical_ratio.py); it takes no strategy, budget, continual or stages (its section
has ``budgets`` in proxy steps, ``ratios``, ``base_steps`` and paired ``seeds``). The spec gets the
general mix with the domain at its critical ratio at the largest budget.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curate.errors import ConfigError
from curate.paths import PathParam
from curate.yamlfile import read_yaml
from mixers.strategies import make_strategy
from mixers.strategies.base import Budget, MixProblem, MixResult, Objective
from mixers.strategies.critical_ratio import DEFAULT_RATIOS, CriticalRatioSearch, find_critical_ratio, mixed
from mixers.strategies.environment import ProxyConfig, ProxyEnvironment
from mixers.strategies.evaluation import BASELINES, evaluation_seeds, score_answers, versus_baselines
from mixers.strategies.parallel import Runner


class BudgetSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: int = Field(ge=0)
    steps: int | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _steps_or_tokens(self) -> BudgetSection:
        if (self.steps is None) == (self.tokens is None):
            raise ValueError("give exactly one of `steps:` or `tokens:`")
        return self


class ContinualSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: dict[str, float]
    steps: int = Field(gt=0)


class CriticalRatioSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str
    tolerance: float = Field(default=0.01, gt=0, lt=1)
    budgets: list[int] = Field(min_length=1)
    ratios: list[float] = Field(default_factory=lambda: list(DEFAULT_RATIOS))
    base_steps: int = Field(default=200, gt=0)
    seeds: int = Field(default=2, gt=0)

    def search(self) -> CriticalRatioSearch:
        return CriticalRatioSearch(
            self.domain,
            tuple(self.budgets),
            self.tolerance,
            tuple(self.ratios),
            self.base_steps,
            tuple(range(self.seeds)),
        )


class CheckSection(BaseModel):
    """After the search: its answer, uniform and natural trained again on `seeds` fresh paired seeds, so
    the report says whether the answer beats them beyond seed noise. `seeds: 0` skips it."""

    model_config = ConfigDict(extra="forbid")

    seeds: int = Field(default=3, ge=0)
    steps: int | None = Field(default=None, gt=0, description="updates per check run (default: the budget's)")


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: PathParam
    eval_sets: dict[str, PathParam] = Field(default_factory=dict)
    domains: list[str] | None = None
    proxy: dict[str, Any] = Field(default_factory=dict)
    strategy: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    objective: dict[str, Any] = Field(default_factory=lambda: {"average": None})
    budget: BudgetSection | None = None
    stages: int = Field(default=1, gt=0)
    seed: int = 0
    continual: ContinualSection | None = None
    parallel: str = "sequential"
    check: CheckSection = Field(default_factory=CheckSection)
    mixture: dict[str, Any]
    output: PathParam = "mix.yaml"

    @model_validator(mode="after")
    def _one_question(self) -> SearchConfig:
        if "critical_ratio" in self.objective:
            if self.strategy or self.budget or self.continual or self.stages != 1:
                raise ValueError(
                    "objective critical_ratio searches a share, not weights: drop strategy, budget, "
                    "continual and stages (its budgets and base model are set in critical_ratio)"
                )
        elif self.strategy is None or self.budget is None:
            raise ValueError("give `strategy:` and `budget:` (or the objective critical_ratio)")
        return self


def parse_objective(section: dict[str, Any], env: ProxyEnvironment) -> Objective:
    """``{average: [...]|null}``, ``{weights: {...}}`` or ``{balanced: {source, target, balance}}``."""
    if len(section) != 1:
        raise ConfigError("objective: give exactly one of average, weights, balanced")
    ((kind, value),) = section.items()
    if kind == "average":
        objective = Objective.average(value or env.domains)
    elif kind == "weights" and isinstance(value, dict):
        objective = Objective(value)
    elif kind == "balanced" and isinstance(value, dict):
        unknown = set(value) - {"source", "target", "balance"}
        if unknown:
            raise ConfigError(f"objective.balanced: unknown key(s) {sorted(unknown)}")
        objective = Objective.balanced(
            value.get("source", []), value.get("target", []), value.get("balance", 0.5)
        )
    else:
        raise ConfigError(f"objective.{kind}: expected average, weights (a mapping) or balanced (a mapping)")
    objective.check(env.eval_names)
    return objective


def load_config(path: Path) -> SearchConfig:
    raw = read_yaml(path, "mixsearch config")
    try:
        return SearchConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {first_error(error)}") from None


def first_error(error: ValidationError) -> str:
    """`where.in.the.config: what is wrong`, from pydantic's first complaint, as one line."""
    item = error.errors()[0]
    where = ".".join(str(p) for p in item["loc"])
    return f"{where}: {item['msg'].removeprefix('Value error, ')}"


def proxy_config(fields_given: dict[str, Any]) -> ProxyConfig:
    known = {f.name for f in fields(ProxyConfig)}
    unknown = sorted(set(fields_given) - known)
    if unknown:
        raise ConfigError(f"proxy: unknown field(s) {unknown}; known: {sorted(known)}")
    return ProxyConfig(**fields_given)


def _resolve(base: Path, value: str) -> str:
    candidate = Path(value).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def build_problem(cfg: SearchConfig, env: ProxyEnvironment) -> tuple[MixProblem, dict[str, Any]]:
    """The problem a config describes; a continual start is trained here, once."""
    assert cfg.budget is not None
    steps = cfg.budget.steps or max(
        1, (cfg.budget.tokens or 0) // max(cfg.budget.runs, 1) // env.config.tokens_per_step
    )
    budget = Budget(cfg.budget.runs, steps)
    objective = parse_objective(cfg.objective, env)
    if cfg.continual is None:
        return MixProblem(objective, budget, cfg.seed, cfg.stages), {}
    source = dict(cfg.continual.source)
    state, base = env.pretrain(source, cfg.continual.steps, seed=cfg.seed + 7919)
    problem = MixProblem(objective, budget, cfg.seed, cfg.stages, init_state=state, source_weights=source)
    return problem, {"source": source, "pretrain_steps": cfg.continual.steps, "start_bpb": base.bpb}


def _absolute_paths(mixture: dict[str, Any], base: Path) -> dict[str, Any]:
    """Corpora and tokenizer paths made absolute: the spec may be written far from the config."""
    fixed = dict(mixture)
    if isinstance(fixed.get("corpora"), list):
        fixed["corpora"] = [_resolve(base, str(c)) for c in fixed["corpora"]]
    tokenizer = fixed.get("tokenizer")
    if isinstance(tokenizer, str):
        fixed["tokenizer"] = {"path": _resolve(base, tokenizer)}
    elif isinstance(tokenizer, dict) and tokenizer.get("path"):
        fixed["tokenizer"] = {**tokenizer, "path": _resolve(base, str(tokenizer["path"]))}
    return fixed


def write_spec(result: MixResult, cfg: SearchConfig, base: Path, output: Path) -> dict[str, Any]:
    """The base mixture spec with the chosen weights as ``domains``, validated as ``curate mix`` will
    (paths made absolute, so the spec can live anywhere)."""
    from mixers.spec import parse_spec

    spec = {
        **_absolute_paths(cfg.mixture, base),
        "domains": {d: round(w, 6) for d, w in result.weights.items()},
    }
    parse_spec(spec, where="mixture")  # the written file must be one `curate mix` accepts
    output.parent.mkdir(parents=True, exist_ok=True)
    header = f"# written by `curate mixsearch` ({result.strategy}); report: {output.stem}.search.json\n"
    output.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    return spec


def check_answer(
    env: ProxyEnvironment, problem: MixProblem, result: MixResult, runner: Runner, check: CheckSection
) -> dict[str, Any]:
    """The answer against uniform and natural on fresh paired seeds: objective per seed and the tests."""
    baselines = [make_strategy(name).propose(env, problem, runner) for name in BASELINES]
    answers = [result] + [b for b in baselines if b.strategy != result.strategy]
    seeds = evaluation_seeds(problem, check.seeds)
    steps = check.steps or problem.budget.steps
    runs = score_answers(env, problem, answers, runner, seeds, steps)
    per_seed = {label: [problem.objective.value(r.bpb) for r in outcomes] for label, outcomes in runs.items()}
    return {
        "seeds": seeds,
        "steps": steps,
        "scored_on": sorted({str(r.eval_suite) for outcomes in runs.values() for r in outcomes}),
        "objective_per_seed": per_seed,
        "versus": versus_baselines(per_seed).get(result.strategy, {}),
    }


def mixsearch(config_path: Path, out: Path | None = None, parallel: str | None = None) -> dict[str, Any]:
    """Run the configured strategy and write the mixture spec + report; returns the report."""
    config_path = Path(config_path)
    cfg = load_config(config_path)
    base = config_path.resolve().parent
    eval_sets = {name: _resolve(base, path) for name, path in cfg.eval_sets.items()}
    env = ProxyEnvironment.open(
        _resolve(base, cfg.tokens), proxy_config(cfg.proxy), eval_sets=eval_sets, domains=cfg.domains
    )
    runner = Runner.create(parallel or cfg.parallel)
    output = Path(out) if out else Path(_resolve(base, cfg.output))
    if cfg.strategy is None:
        return critical_ratio_search(cfg, env, runner, base, output)
    params = dict(cfg.params)
    if cfg.strategy == "agent" and "policy" in params:
        params["policy"] = _resolve(base, params["policy"])
    strategy = make_strategy(cfg.strategy, **params)
    problem, continual = build_problem(cfg, env)
    with runner.session():
        result = strategy.propose(env, problem, runner)
        check = check_answer(env, problem, result, runner, cfg.check) if cfg.check.seeds else None
    spec = write_spec(result, cfg, base, output)
    report = {
        "eval_suite": env.suite_hash,
        "result": result.to_json(),
        "problem": problem.describe(),
        "continual": continual,
        "environment": env.describe(),
        "spec": str(output),
        "mixture": spec,
        "check": check,
    }
    output.with_name(f"{output.stem}.search.json").write_text(
        json.dumps(report, indent=2, default=str) + "\n"
    )
    return report


def critical_ratio_search(
    cfg: SearchConfig, env: ProxyEnvironment, runner: Runner, base: Path, output: Path
) -> dict[str, Any]:
    """The critical ratio at each budget; the spec mixes the domain in at the largest budget's ratio.
    With no ratio of the grid within tolerance there is no spec to write: the report is written and the
    run fails, naming the fix."""
    section = cfg.objective["critical_ratio"]
    if len(cfg.objective) != 1 or not isinstance(section, dict):
        raise ConfigError("objective.critical_ratio: give it alone, as a mapping (domain, budgets, ...)")
    try:
        search = CriticalRatioSection.model_validate(section).search()
    except ValidationError as error:
        raise ConfigError(f"objective.critical_ratio.{first_error(error)}") from None
    with runner.session():
        found = find_critical_ratio(env, search, runner)
    report = {"eval_suite": env.suite_hash, "critical_ratio": found, "environment": env.describe()}
    last = max(found["budgets"], key=lambda row: row["steps"])
    share = last["cmr"] if last["bound"] == "inside" else max(search.ratios)
    report_path = output.with_name(f"{output.stem}.search.json")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    if last["bound"].startswith("below"):
        report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        raise ConfigError(
            f"no ratio of {search.domain} in the grid keeps the general loss within {search.tolerance}; "
            f"add smaller ratios (report: {report_path})"
        )
    weights = mixed(found["general_mix"], search.domain, share)
    result = MixResult("critical_ratio", weights, [weights], {"share": share, "budget_steps": last["steps"]})
    report |= {
        "result": result.to_json(),
        "spec": str(output),
        "mixture": write_spec(result, cfg, base, output),
    }
    report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
