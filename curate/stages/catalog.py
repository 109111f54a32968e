"""`curate stages [NAME]`: what each stage takes, adds and drops, read from the stage classes themselves.

Read from the code, not written beside it, so the listing cannot drift from what a run does: params and
defaults from the stage's pydantic `Params`, columns from `output_fields()`, drop reasons from the
stage's `drop_reasons()`, the summary from its docstring.
"""

from __future__ import annotations

import sys
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from curate.stages.base import Stage
from curate.stages.registry import get_stage, stage_names


def describe_stage(name: str) -> dict[str, Any]:
    cls = get_stage(name)
    return {
        "name": name,
        "summary": summary(cls),
        "params": describe_params(cls.Params),
        "columns": describe_columns(cls),
        "drops": cls.drop_reasons(),
    }


def catalog() -> list[dict[str, Any]]:
    """Every stage; one whose package is broken (an entry point naming a missing module) is listed with
    the error instead of hiding the others."""
    described = []
    for name in stage_names():
        try:
            described.append(describe_stage(name))
        except (ImportError, TypeError) as error:
            described.append(
                {"name": name, "summary": f"cannot load: {error}", "params": [], "columns": [], "drops": {},
                 "error": str(error)}  # fmt: skip
            )
    return described


def summary(cls: type[Stage]) -> str:
    """The first sentence of the class docstring, else of its module's."""
    text = cls.__doc__ or sys.modules[cls.__module__].__doc__ or ""
    first = " ".join(text.strip().split("\n\n")[0].split())
    sentence = first.split(". ")[0].rstrip(".")
    return sentence.removeprefix(f"{cls.name}: ")


def describe_params(params: type[BaseModel], prefix: str = "") -> list[dict[str, Any]]:
    """One row per param; a nested params model (a rule family) as its own dotted rows."""
    rows = []
    for key, field in params.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += describe_params(annotation, f"{prefix}{key}.")
            continue
        if field.default is not PydanticUndefined:
            default = _plain(field.default)
        elif field.default_factory is not None:
            default = _plain(field.default_factory())  # type: ignore[call-arg]
        else:
            default = "(required)"
        kind = type_name(annotation)
        rows.append({"name": prefix + key, "type": kind, "default": default, "help": field.description})
    return rows


def describe_columns(cls: type[Stage]) -> list[dict[str, str]]:
    """The columns a stage adds with its default params (built unvalidated: no model is loaded or needed)."""
    stage = cls(cls.Params.model_construct())
    return [{"name": f.name, "type": str(f.type)} for f in stage.output_fields()]


def type_name(annotation: Any) -> str:
    """`'drop' | 'annotate'`, `float | None`, `list[str]`: the annotation as a reader writes it, with the
    validators that `Annotated` carries left out."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _plain(value: Any) -> Any:
    """Defaults as JSON shows them (a nested params model as its dict)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
