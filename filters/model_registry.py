"""Trained models by name: one directory per model with a JSON card saying how it was made.

Why: models here are built, not downloaded, so a score column is only meaningful next to the record of
what produced it. Every trained model (KenLM perplexity, fastText toxicity and quality) lives in
`<models home>/<name>/` with its files and `card.json`: kind, creation time, training parameters, the
checksums of the training data, evaluation metrics, and anything the stage needs at load time (e.g. the
perplexity percentiles that define buckets). Pipelines name models; stages resolve names here.

The models home is `$CURATE_MODELS`, else `$CURATE_HOME/models`, else `.cache/models`. A model is written
into a temporary sibling directory and renamed into place, so a half-trained model is never visible and
re-training replaces the old one in one step.

A home on an object store (`s3://bucket/models`, as `$CURATE_MODELS` or a stage's `models_dir`) stands as
a local mirror, `<mirror root>/s3/bucket/models` (`$CURATE_MODEL_MIRROR`, else `<tmp>/curate-model-mirror`):
fastText and KenLM load from local files. Looking a model up fetches its folder into the mirror when the
store's card differs from the mirror's (so a re-trained model is seen), and a model trained into such a
home is uploaded after its local commit. The mirror path names its URL, so no lookup table is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from curate.errors import ConfigError
from curate.paths import PATH, confine_path
from curate.storage import files_under, is_url, location, relative
from filters.model_files import check_model_file
from filters.model_mirror import (
    CARD_FILE,
    local_home,
    refresh_mirror,
    replace_folder,
    source_url,
    store_errors,
)

MODELS_ENV = "CURATE_MODELS"

TRAIN_COMMANDS = {
    "kenlm": "curate models train-lm",
    "fasttext-toxicity": "curate models train-toxicity",
    "fasttext-quality": "curate models train-quality",
}
"""The CLI command that (re)builds a model of each kind, quoted in every missing-model error."""


class ModelMissingError(ConfigError):
    """A stage names a model that is not trained; the message is one line with the command to build it."""


def models_home() -> Path:
    """Where named models live; see the module docstring for the precedence of the environment."""
    if os.environ.get(MODELS_ENV):
        return local_home(os.environ[MODELS_ENV])
    if os.environ.get("CURATE_HOME"):
        return local_home(os.environ["CURATE_HOME"].rstrip("/") + "/models")
    return Path(".cache/models")


@dataclass
class ModelCard:
    """What a model is and how it was made; `extra` holds kind-specific values the stage loads."""

    name: str
    kind: str
    files: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    data: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Model:
    """A resolved model: its directory and card; `path(role)` gives a file the card names."""

    directory: Path
    card: ModelCard

    def path(self, role: str) -> Path:
        return self.directory / self.card.files[role]


def pinned_home(home: Path | None) -> Path:
    """The models home as an absolute path, fixed when a config is validated: worker processes and Ray
    actors may start in another directory or without the driver's environment variables."""
    return (home or models_home()).resolve()


def _models_dir_value(value: Any) -> Any:
    """A stage's `models_dir`, confined as the config names it (so a service may allow a URL under an
    object-store data root); a URL then becomes its local mirror before it is read as a path (a `Path`
    would fold `s3://` into `s3:/`). The mirror is the host's cache, which no config can name, so it is
    not judged again."""
    if value is None:
        return None
    confined = confine_path(str(value), PATH)
    return str(local_home(confined)) if is_url(confined) else confined


class ModelFolderParams:
    """Stage params mixin: the registry folders the stage loads, and a copy that reads them from another
    home; this is `curate.stages.model_folders.UsesModelFolders`, so the Ray executor can ship the folders
    to nodes that lack the driver's `models_dir` (a field of each class: declared here, pydantic would move
    it first and change every config hash). A class lists its models in `model_names()`."""

    def model_names(self) -> list[str]:
        raise NotImplementedError

    def model_folders(self) -> dict[str, Path]:
        home = self.models_dir  # type: ignore[attr-defined]
        return {name: model_dir(name, home) for name in self.model_names()}

    def with_models_home(self, home: Path) -> Any:
        """`model_copy` skips the validators: the models were checked on the driver, names resolved there."""
        return self.model_copy(update={"models_dir": home})  # type: ignore[attr-defined]


def train_command(kind: str, name: str) -> str:
    return f"{TRAIN_COMMANDS.get(kind, 'curate models train-...')} --name {name}"


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
"""A model name is one folder under the models home: letters, digits, `_`, `.` and `-`, no separator."""


def model_dir(name: str, home: Path | None = None) -> Path:
    """The model's folder; a name that could leave the models home (`/`, `\\`, `..`) is refused."""
    if not MODEL_NAME.fullmatch(name or "") or ".." in name:
        raise ConfigError(
            f"model name {name!r} is not valid; use letters, digits, '_', '.' and '-' only, "
            "such as 'wiki-5gram' or 'fr-5gram'"
        )
    return (home or models_home()) / name


def find_model(name: str, home: Path | None = None) -> Model | None:
    """The model called `name`, or None when it has no card (never trained, or training died midway)."""
    directory = model_dir(name, home)
    refresh_mirror(directory)
    card_path = directory / CARD_FILE
    if not card_path.is_file():
        return None
    return Model(directory, ModelCard.from_json(card_path.read_text(encoding="utf-8")))


def require_model(name: str, kind: str, home: Path | None = None) -> Model:
    """The model, or one clear error naming it and the command that trains it."""
    model = find_model(name, home)
    where = home or models_home()
    if model is None:
        raise ModelMissingError(
            f"model {name!r} ({kind}) is not in {where}; train it with `{train_command(kind, name)}`"
        )
    if model.card.kind != kind:
        raise ModelMissingError(
            f"model {name!r} in {where} is a {model.card.kind} model, not {kind}; "
            f"train one with `{train_command(kind, name)}` or name another model"
        )
    missing = [role for role in model.card.files if not model.path(role).is_file()]
    if missing:
        raise ModelMissingError(
            f"model {name!r} in {where} lacks its {', '.join(missing)} file; "
            f"re-train it with `{train_command(kind, name)}`"
        )
    refuse_damaged(model)
    return model


def refuse_damaged(model: Model) -> None:
    """A model file cut short, checked from its header and its last bytes (cheap, on the driver): loaded
    by a worker, fastText would loop for ever on a cut dictionary, and a cut table scores wrongly."""
    if "model" in model.card.files:
        check_model_file(model.card.kind, str(model.path("model")))


def list_models(home: Path | None = None) -> list[ModelCard]:
    """Cards of every model under the home, sorted by name."""
    root = home or models_home()
    url = source_url(root)
    if url is not None:  # a store's models: refresh each into the mirror first
        with store_errors(url):
            cards = files_under(location(url), f"*/{CARD_FILE}")
        for card in cards:
            refresh_mirror(root / card.parent.name)
    if not root.is_dir():
        return []
    cards = []
    for card_path in sorted(root.glob(f"*/{CARD_FILE}")):
        try:
            cards.append(ModelCard.from_json(card_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            continue  # a foreign or damaged directory is not a model
    return cards


class ModelWriter:
    """Stage a model's files in a temp directory; `commit(card)` writes the card and renames into place.

    Use as a context manager: an exception (or a missing commit) removes the staging directory.
    """

    def __init__(self, name: str, home: Path | None = None) -> None:
        self.final = model_dir(name, home)
        self.name = name
        self.directory = self.final.with_name(f".{name}.tmp-{os.getpid()}")

    def __enter__(self) -> ModelWriter:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def commit(self, card: ModelCard) -> Model:
        card.created = card.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (self.directory / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        replace_folder(self.directory, self.final)
        url = source_url(self.final.parent)
        if url is not None:  # a home on a store: upload the files, the card last (readers trust a card)
            remote = location(f"{url}/{self.name}")
            files = sorted(files_under(self.final), key=lambda path: path.name == CARD_FILE)
            with store_errors(url):
                for path in files:
                    target = remote / relative(path, self.final)
                    target.fs.put_file(str(path), target.path)
        return Model(self.final, card)


def file_checksum(path: Path) -> dict[str, Any]:
    """A data-card entry for one training file: path, bytes, sha256."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest}


def texts_checksum(source: str, texts: Iterable[str]) -> dict[str, Any]:
    """A data-card entry for text drawn from a package or built in memory: count, bytes, sha256."""
    digest = hashlib.sha256()
    count = size = 0
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(encoded)
        digest.update(b"\0")
        count += 1
        size += len(encoded)
    return {"source": source, "texts": count, "bytes": size, "sha256": digest.hexdigest()}


ModelsDir = Annotated[
    Annotated[Path, PATH] | None,
    BeforeValidator(_models_dir_value),
    Field(description="registry folder or object-store URL (default: CURATE_MODELS, else .cache/models)"),
]
"""A stage's `models_dir`: a folder, or a URL read through its local mirror; pinned absolute."""
