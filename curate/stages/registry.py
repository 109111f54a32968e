"""Stages by name. A new stage registers itself here; the config and the executors look names up here.

Built-in stage modules are listed once below and imported on first use, so importing the registry stays
cheap and a stage with heavy imports (torch, kenlm) costs nothing to pipelines that do not use it.
"""

from __future__ import annotations

import importlib

from curate.stages.base import Stage

BUILTIN_STAGE_MODULES = [
    "curate.stages.normalize",
    "curate.stages.tag",
    "filters.langid",
    "filters.perplexity",
    "filters.toxicity",
    "filters.quality",
    "filters.heuristics",
]

_STAGES: dict[str, type[Stage]] = {}
_loaded = False


def register(cls: type[Stage]) -> type[Stage]:
    if cls.name in _STAGES and _STAGES[cls.name] is not cls:
        raise ValueError(f"stage name {cls.name!r} is registered twice")
    _STAGES[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_STAGE_MODULES:
            importlib.import_module(module)
        _loaded = True


def stage_names() -> list[str]:
    _load_builtins()
    return sorted(_STAGES)


def get_stage(name: str) -> type[Stage]:
    _load_builtins()
    try:
        return _STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; known stages: {', '.join(sorted(_STAGES))}") from None
