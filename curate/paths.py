"""Path-valued config fields, marked by type so a host can confine every one of them by one rule.

Every field of a config model that names a file or folder (a stage's `models_dir`, an input glob, an
output, a dedup index, a word list...) is declared with one of the types below instead of `str`/`Path`.
On the command line they behave as plain strings and paths. A host that must keep jobs inside some
folders (the REST service) validates configs inside `confined_paths(confine)`: every marked value a
config gives is then passed through `confine` while the field is validated, before any validator of the
model can look at the file system, so a refused path is never opened, and whether it exists is never
told. Defaults (e.g. the operator's models home) are the host's own choice and are not checked.

A new config field that names a path must use these types; `tests/core/test_path_params.py` fails
for a field whose name or type looks like a path and is not marked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel


@dataclass(frozen=True)
class PathField:
    """The marker: this value names a file-system location (`glob`: a glob pattern of files)."""

    glob: bool = False


Confine = Callable[[str, PathField], str]
"""Takes a value as given and its marker; returns the absolute path to use, or raises ValueError."""

_confine: ContextVar[Confine | None] = ContextVar("curate_confine_paths", default=None)
P = TypeVar("P", str, Path)


@contextmanager
def confined_paths(confine: Confine) -> Iterator[None]:
    """Within this block, every marked field validated (in this thread or task) goes through `confine`."""
    token = _confine.set(confine)
    try:
        yield
    finally:
        _confine.reset(token)


def confine_path(value: str, marker: PathField) -> str:
    """`value` through the active confinement (unchanged when none is active). For a field that turns
    the value it is given into another before its type's check (a URL read through a local copy), so
    the value the config names is the one judged."""
    confine = _confine.get()
    return value if confine is None else confine(value, marker)


def _confined(marker: PathField) -> Callable[[Any], Any]:
    def validate(value: P) -> P:
        return type(value)(confine_path(str(value), marker))

    return validate


PATH, GLOB = PathField(), PathField(glob=True)
PathParam = Annotated[str, PATH, AfterValidator(_confined(PATH))]
"""A file or folder named as text."""
PathValue = Annotated[Path, PATH, AfterValidator(_confined(PATH))]
"""A file or folder, as a `pathlib.Path`."""
GlobParam = Annotated[str, GLOB, AfterValidator(_confined(GLOB))]
"""A glob pattern of files (its fixed prefix and every match are confined)."""


def path_marker(annotation: Any) -> PathField | None:
    """The marker of a field's annotation (also inside `X | None`, `list[X]`, `dict[str, X]`), if any."""
    for item in getattr(annotation, "__metadata__", ()):
        if isinstance(item, PathField):
            return item
    for arg in getattr(annotation, "__args__", ()):
        found = path_marker(arg)
        if found is not None:
            return found
    return None


def map_paths(model: BaseModel, change: Callable[[str, PathField], str]) -> BaseModel:
    """A copy of `model` with each value of a marked path field (nested models, lists and dicts
    included) replaced by `change(value, marker)`, without running any validator again: the values were
    checked when the model was built, and a validator may read the files (which need not be here)."""
    update = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        marker = path_marker(field.annotation)
        changed = _map_value(value, marker, change)
        if changed is not value:
            update[name] = changed
    return model.model_copy(update=update) if update else model


def _map_value(value: Any, marker: PathField | None, change: Callable[[str, PathField], str]) -> Any:
    if isinstance(value, BaseModel):
        return map_paths(value, change)
    if isinstance(value, list):
        items = [_map_value(item, marker, change) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        items = {key: _map_value(item, marker, change) for key, item in value.items()}
        return items if any(items[key] is not value[key] for key in value) else value
    if marker is not None and isinstance(value, str | Path):
        changed = change(str(value), marker)
        return value if changed == str(value) else type(value)(changed)
    return value
