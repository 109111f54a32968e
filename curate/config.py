"""The pipeline config: YAML in, a validated model out, or one clear error naming the bad key.

Everything a run does is decided here before any shard is opened, so a typo costs a second, not an hour.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from curate.dedup.settings import DedupConfig
from curate.errors import ConfigError
from curate.paths import GlobParam, PathParam, confined_paths
from curate.readers.fields import FieldMap
from curate.readers.formats import FORMATS, Format, infer_format
from curate.readers.warc import DEFAULT_EXTRACTOR, Extractor
from curate.schema import DomainName
from curate.stages.base import Stage, StageParams
from curate.stages.registry import get_stage, stage_names
from curate.storage import Location, is_url, location
from curate.yamlfile import read_yaml


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: GlobParam
    format: Format | None = None
    name: str | None = Field(default=None, description="name used in `source` and domain rules")
    domain: DomainName | None = Field(default=None, description="default mixing domain for this input")
    fields: FieldMap = FieldMap()
    allow_unreadable: bool = Field(
        default=False,
        description="accept an input whose first batch of records holds no readable document (all "
        "`unreadable`); by default such an input fails the run, as it is almost always a wrong `fields:` "
        "or `format:`",
        exclude_if=lambda allowed: not allowed,  # unset, it leaves the config hash of older configs as is
    )
    extractor: Extractor | None = Field(
        default=None,
        description=f"HTML to main text for a WARC input: `resiliparse` (unset: {DEFAULT_EXTRACTOR}) or "
        "`trafilatura`; see BENCHMARKS.md for their F1 and speed",
        exclude_if=lambda extractor: extractor is None,  # unset, it leaves the config hash as is
    )

    @model_validator(mode="after")
    def _extractor_only_for_warc(self) -> InputSpec:
        if self.extractor is not None and self.format not in (None, "warc"):
            raise ValueError(_extractor_misplaced(f"this input is `format: {self.format}`"))
        if self.extractor == "trafilatura" and importlib.util.find_spec("trafilatura") is None:
            raise ValueError(
                "extractor: trafilatura needs the trafilatura package, which is not installed; "
                "`pip install trafilatura`, or use `extractor: resiliparse`"
            )
        return self

    def input_name(self, index: int) -> str:
        return self.name or f"input{index}"


class StageSpec(BaseModel):
    """One `- name: {params}` entry of `stages:`, its params validated by the stage's own model."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: SerializeAsAny[StageParams]

    def build(self) -> Stage:
        return get_stage(self.name)(self.params)


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[InputSpec] = Field(min_length=1)
    stages: list[StageSpec] = []
    output: PathParam | None = None
    seed: int = 0
    batch_docs: int = Field(default=2000, ge=1, description="documents per batch handed to stages")
    batch_mb: int = Field(default=64, ge=1, description="text megabytes per batch handed to stages")
    max_doc_chars: int = Field(
        default=5_000_000,
        ge=1,
        description="a longer document is a `too_long` reject at read time, before any stage holds it; "
        "input lines and WARC records are read only up to 6 bytes a character plus 1 MiB, so one huge "
        "record never costs more memory than that",
    )
    row_group_rows: int = Field(default=100_000, ge=1)
    row_group_mb: int = Field(default=128, ge=1)
    dedup: DedupConfig | None = None

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise ValueError("expected a list of `- stage_name: {params}` entries")
        return [_stage_entry(entry, index) for index, entry in enumerate(value)]

    @model_validator(mode="after")
    def _known_stage_names_only_once(self) -> PipelineConfig:
        names = [spec.name for spec in self.stages]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"stage(s) listed twice: {', '.join(repeated)}; list each stage once")
        return self

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude={"output"}), sort_keys=True)

    def config_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _stage_entry(entry: Any, index: int) -> dict[str, Any]:
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError("each stage is a one-key mapping `- stage_name: {params}`")
    ((name, params),) = entry.items()
    if name not in stage_names():
        if name in PipelineConfig.model_fields:
            raise ValueError(
                f"`{name}` is a top-level key of the config, not a stage; move it out of `stages:`"
            )
        raise ValueError(f"unknown stage {name!r}; known stages: {', '.join(stage_names())}")
    stage = get_stage(name)
    try:
        validated = stage.Params.model_validate(params or {})
    except ValidationError as error:
        raise ValueError(describe_validation_error(error, prefix=f"stages.{index}.{name}")) from None
    return {"name": name, "params": validated}


def load_config(path: Path, out: str | None = None) -> PipelineConfig:
    """Read, validate and resolve a config file; raise ConfigError with one line on any user error."""
    raw = read_yaml(path, "config file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with `inputs:` and `stages:` at the top")
    base = path.parent
    with confined_paths(lambda value, marker: str(_absolute(value, base))):
        config = parse_config(raw, where=str(path))  # every path a file names is relative to that file
    return resolve_paths(config, base=base, out=out)


def parse_config(raw: dict[str, Any], where: str = "config") -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {describe_validation_error(error)}") from None


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """The first problem as `dotted.path: message`: one line, naming the key and what was expected."""
    item = error.errors()[0]
    loc = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
    if item["type"] == "extra_forbidden":
        return f"{loc}: unknown key; remove it or check its spelling"
    if item["type"] == "missing":
        return f"{loc}: required key is missing"
    message = item["msg"].removeprefix("Value error, ")
    if message.startswith(loc + "."):  # a nested model already named the full path
        return message
    got = "" if item["type"] == "value_error" else f" (got {item.get('input')!r})"
    return f"{loc}: {message}{got}" if loc else message + got


def resolve_paths(config: PipelineConfig, base: Path, out: str | None) -> PipelineConfig:
    """Make input globs absolute (relative to the config file) and fix the output directory."""
    inputs = [spec.model_copy(update={"path": str(_absolute(spec.path, base))}) for spec in config.inputs]
    output = out or config.output
    if output is None:
        raise ConfigError("no output directory: set `output:` in the config or pass --out DIR")
    output_path = output if out and is_url(output) else Path(output) if out else _absolute(output, base)
    update: dict[str, Any] = {"inputs": inputs, "output": str(output_path)}
    if config.dedup is not None and config.dedup.index is not None:
        update["dedup"] = config.dedup.model_copy(update={"index": str(_absolute(config.dedup.index, base))})
    return config.model_copy(update=update)


def _absolute(path: str, base: Path) -> Path | str:
    """A local path made absolute against the config's folder; a filesystem URL is already absolute."""
    if is_url(path):
        return path
    candidate = Path(path.removeprefix("file://")).expanduser()
    return candidate if candidate.is_absolute() else (base / candidate).resolve()


def expand_input(spec: InputSpec, index: int) -> list[tuple[Location, Format]]:
    """Files matched by an input's glob, sorted, each with its format; errors name the input and the fix."""
    matches = _glob_files(spec.path)
    if not matches:
        raise ConfigError(f"inputs[{index}].path: {spec.path} matches no file; check the path or glob")
    files = []
    for match in matches:
        fmt = spec.format or infer_format(match)
        if fmt is None:
            raise ConfigError(
                f"inputs[{index}]: cannot tell the format of {match.name}; set `format:` to one of "
                f"{', '.join(FORMATS)}"
            )
        if spec.extractor is not None and fmt != "warc":
            raise ConfigError(f"inputs[{index}]: {_extractor_misplaced(f'{match.name} reads as {fmt}')}")
        files.append((match, fmt))
    return files


def _extractor_misplaced(why: str) -> str:
    return (
        f"`extractor:` applies only to WARC inputs (HTML pages), but {why}; remove `extractor:` from this "
        "input or point it at .warc/.warc.gz files"
    )


def _glob_files(pattern: str) -> list[Location]:
    if not is_url(pattern):
        return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    root = location(pattern)
    protocol = pattern.split("://", 1)[0]
    found = root.fs.glob(root.path, detail=True) if glob.has_magic(pattern) else _info(root)
    files = (name for name, info in found.items() if info.get("type") == "file")
    return sorted((location(f"{protocol}://{name}") for name in files), key=str)


def _info(path: Location) -> dict[str, dict]:
    try:
        return {path.path: path.fs.info(path.path)}
    except FileNotFoundError:
        return {}


def glob_root(pattern: str) -> Location:
    """The directory part of a glob before its first wildcard: file names in `source` are relative to it."""
    root: Location
    if is_url(pattern):
        protocol, rest = pattern.split("://", 1)
        root = location(f"{protocol}://{'/'.join(_fixed_parts(rest.split('/')))}")
    else:
        fixed = _fixed_parts(Path(pattern).parts)
        root = Path(*fixed) if fixed else Path(".")
    return root if root.is_dir() else root.parent


def _fixed_parts(parts: Iterable[str]) -> list[str]:
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return fixed
