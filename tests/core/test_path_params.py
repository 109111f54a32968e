"""Every path a config can name is marked (curate.paths), so a host confines all of them by one rule.

The inventory test walks every registered stage's params and every job kind's config, nested models
included, and fails on a field whose name or type looks like a path but is not marked: the next stage or
kind cannot forget. The behaviour tests show what the mark buys: the host's rule runs while the field is
validated, before any validator of the model looks at the file system.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.kinds import REGISTRY, get_kind, is_available
from api.schedules import ScheduleSpec
from curate.config import PipelineConfig, parse_config
from curate.paths import PathField, confined_paths, path_marker
from curate.stages.base import StageParams
from curate.stages.registry import get_stage, stage_names

PATH_LIKE = re.compile(
    r"path|dir|file|glob|index|home|model|folder|corp|tokenizer|mixture|output|staging|eval|policy"
)
NOT_PATHS = {
    "model": "a model's name in the registry; model_dir refuses '/' and a leading '.'",
    "ppl_model": "a model's name in the registry, as `model`",
    "models": "language -> a model's name in the registry, as `model`",
    "url_glob": "matched against document URLs, never opened",
}


def config_models() -> list[type[BaseModel]]:
    """Every model a job can fill in: stages' params, the pipeline, schedules, and every kind's config."""
    models: list[type[BaseModel]] = [get_stage(name).Params for name in stage_names()]
    models += [PipelineConfig, ScheduleSpec]
    models += [get_kind(name).Config for name in REGISTRY if is_available(name)]
    return models


def nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from nested_models(arg)


def leaf_types(annotation: Any) -> set[Any]:
    """The types a value may have: through `X | None`, `Annotated`, lists and dict values (not keys)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return leaf_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return set().union(*(leaf_types(a) for a in typing.get_args(annotation) if a is not Ellipsis))
    if origin is dict:
        return leaf_types(typing.get_args(annotation)[1])
    return {annotation}


def looks_like_path(name: str, annotation: Any) -> bool:
    leaves = leaf_types(annotation)
    if any(isinstance(t, type) and issubclass(t, Path) for t in leaves):
        return True
    return str in leaves and bool(PATH_LIKE.search(name)) and name not in NOT_PATHS


def unmarked_path_fields(models: list[type[BaseModel]]) -> list[str]:
    seen: set[type[BaseModel]] = set()
    unmarked = []
    queue = list(models)
    while queue:
        model = queue.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            annotation = field.rebuild_annotation()
            queue.extend(nested_models(annotation))
            if looks_like_path(name, annotation) and path_marker(annotation) is None:
                unmarked.append(f"{model.__module__}.{model.__qualname__}.{name}")
    return sorted(unmarked)


def test_every_path_field_of_every_config_is_marked() -> None:
    models = config_models()
    assert len(models) >= len(stage_names()) + 4
    assert unmarked_path_fields(models) == []


def test_the_inventory_catches_an_unmarked_path_field() -> None:
    class Careless(StageParams):
        models_dir: Path | None = None
        word_list_file: str = "words.txt"
        extra_globs: list[str] = []

    found = unmarked_path_fields([Careless])
    assert [name.rsplit(".", 1)[1] for name in found] == ["extra_globs", "models_dir", "word_list_file"]


def test_marked_fields_go_through_the_hosts_rule_before_any_model_validator(tmp_path: Path) -> None:
    """A toxicity stage whose models_dir the host refuses never reaches its own model lookup."""
    seen: list[tuple[str, PathField]] = []

    def refuse_outside(value: str, marker: PathField) -> str:
        seen.append((value, marker))
        if not value.startswith(str(tmp_path)):
            raise ValueError(f"{value} is outside the data roots")
        return value

    config = {
        "inputs": [{"path": str(tmp_path / "in/*.jsonl")}],
        "stages": [{"toxicity": {"models_dir": "/somewhere/else", "fallback": "error"}}],
    }
    with confined_paths(refuse_outside), pytest.raises(Exception) as error:
        parse_config(config)
    assert "stages.0.toxicity.models_dir: /somewhere/else is outside the data roots" in str(error.value)
    assert "not in" not in str(error.value)  # the model lookup (an existence check) never ran
    assert (str(tmp_path / "in/*.jsonl"), PathField(glob=True)) in seen
    assert ("/somewhere/else", PathField()) in seen
    with confined_paths(refuse_outside):
        params = get_stage("toxicity").Params.model_validate(
            {"models_dir": str(tmp_path / "models"), "fallback": "wordlist"}
        )
    assert params.models_dir == tmp_path / "models"  # marked values keep their type (a Path here)


def test_the_rule_holds_only_inside_its_block() -> None:
    def refuse_all(value: str, marker: PathField) -> str:
        raise ValueError(f"{value} refused")

    raw = {"inputs": [{"path": "anywhere/*.jsonl"}], "output": "/any/out"}
    with confined_paths(refuse_all), pytest.raises(ValidationError, match="anywhere/\\*.jsonl refused"):
        PipelineConfig.model_validate(raw)
    config = parse_config(raw)  # the command line: paths are plain values
    assert config.inputs[0].path == "anywhere/*.jsonl" and config.output == "/any/out"
