"""The job-kind registry: the only way a request picks code to run.

A kind is a name, the entry points its providing package must have, and the api module that adapts
them (config model + run function). A kind whose package or entry points are missing from this build
is listed as unavailable and refused with 422; there are no stand-ins. Availability is decided without
importing the providing package (its source is parsed), so the server never pays for torch just to
answer "is `train` here?".

To plug in a new kind: write `api/kinds/<name>_kind.py` with a `JobKind` subclass named `KIND`, and add
a `KindEntry` below naming the entry points it calls.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from api.kinds.base import JobKind


@dataclass(frozen=True)
class KindEntry:
    name: str
    summary: str
    adapter: str | None  # the api module holding `KIND`; None while no adapter exists
    requires: tuple[str, ...]  # "package.module:attribute" entry points of the providing package
    submittable: bool = True


REGISTRY: dict[str, KindEntry] = {
    entry.name: entry
    for entry in (
        KindEntry(
            "curate",
            "curate input shards into a corpus (the config of `curate run`)",
            "api.kinds.curate_kind",
            ("curate.run:run_pipeline", "curate.config:PipelineConfig"),
        ),
        KindEntry(
            "mix",
            "build a training mixture from curated corpora (the spec of `curate mix`)",
            "api.kinds.mix_kind",
            ("mixers.sampler:build_mixture", "mixers.spec:MixtureSpec"),
        ),
        KindEntry(
            "train",
            "train a proxy LM on a mixture and score it (result.json)",
            "api.kinds.train_kind",
            ("trainer.proxy:train_proxy",),
        ),
        KindEntry(
            "mixsearch",
            "search mixture weights with proxy runs; writes a spec for a mix job (`curate mixsearch`)",
            "api.kinds.mixsearch_kind",
            ("mixers.strategies.search:mixsearch", "mixers.strategies.search:SearchConfig"),
        ),
        KindEntry(
            "batch",
            "one run of a schedule: new shards into a new corpus version (created by the scheduler)",
            "api.kinds.batch_kind",
            ("curate.run:run_pipeline",),
            submittable=False,
        ),
    )
}


class UnknownKind(LookupError):
    pass


class KindUnavailable(LookupError):
    pass


def has_entry_point(spec: str) -> bool:
    """True when `module:attr` is defined at the top level of the module's source, without importing it."""
    module, _, attr = spec.partition(":")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return found is not None and not attr
    tree = ast.parse(Path(found.origin).read_text(encoding="utf-8"))
    return attr in _top_level_names(tree)


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


@cache
def is_available(name: str) -> bool:
    entry = REGISTRY.get(name)
    if entry is None or entry.adapter is None:
        return False
    return all(has_entry_point(spec) for spec in entry.requires)


def kinds_status() -> list[dict[str, object]]:
    return [
        {
            "kind": e.name,
            "summary": e.summary,
            "available": is_available(e.name),
            "submittable": e.submittable,
        }
        for e in REGISTRY.values()
    ]


@cache
def get_kind(name: str) -> JobKind:
    """The kind's adapter; UnknownKind / KindUnavailable carry the one-line reason for the 422."""
    entry = REGISTRY.get(name)
    if entry is None:
        known = ", ".join(e.name for e in REGISTRY.values() if e.submittable)
        raise UnknownKind(f"unknown job kind {name!r}; known kinds: {known}")
    if not is_available(name):
        raise KindUnavailable(f"job kind {name} is not available in this build")
    assert entry.adapter is not None
    return importlib.import_module(entry.adapter).KIND


def submittable_kind(name: str) -> JobKind:
    entry = REGISTRY.get(name)
    if entry is not None and not entry.submittable:
        raise UnknownKind(f"job kind {name!r} is created by the service's scheduler, not submitted")
    return get_kind(name)
