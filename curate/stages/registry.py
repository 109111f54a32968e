"""Stages by name: the `curate.stages` entry-point group, plus stages registered in this process.

Every stage, built-in or from a user's package, is an entry point `name = "module:Class"` in the group
`curate.stages` of its package's pyproject.toml. Names are listed without importing anything and a stage's
module is imported on first use, so a pipeline that does not use a heavy stage (torch, kenlm) never pays
for it, and this core module names no module of a higher layer. Entry points are seen by every worker
process and Ray actor that has the package installed; `register()` (a class in this process only) suits
tests and one-process runs.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from curate.stages.base import Stage

ENTRY_POINT_GROUP = "curate.stages"

_STAGES: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    if cls.name in _STAGES and _STAGES[cls.name] is not cls:
        raise ValueError(f"stage name {cls.name!r} is registered twice")
    _STAGES[cls.name] = cls
    return cls


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def stage_names() -> list[str]:
    return sorted(set(_STAGES) | set(_entry_points()))


def get_stage(name: str) -> type[Stage]:
    if name in _STAGES:
        return _STAGES[name]
    point = _entry_points().get(name)
    if point is None:
        raise KeyError(f"unknown stage {name!r}; known stages: {', '.join(stage_names())}")
    cls = point.load()
    if not (isinstance(cls, type) and issubclass(cls, Stage) and cls.name == name):
        raise TypeError(
            f"entry point {name!r} = {point.value!r} in group {ENTRY_POINT_GROUP!r} is not a Stage "
            f"subclass named {name!r}; fix the package's pyproject.toml"
        )
    return register(cls)
