"""Models homes on an object store, read through a local mirror (see `filters.model_registry`).

fastText and KenLM load from local files, so a home such as `s3://bucket/models` stands as the folder
`<mirror root>/s3/bucket/models` (`$CURATE_MODEL_MIRROR`, else `<tmp>/curate-model-mirror`). A model is
fetched into the mirror when the store's card differs from the mirror's (a re-trained model is seen); the
mirror path names its URL, so no lookup table is kept. Standard library and `curate.storage` only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from curate.errors import ConfigError
from curate.storage import files_under, is_url, location, relative

MIRROR_ENV = "CURATE_MODEL_MIRROR"
CARD_FILE = "card.json"


def mirror_root() -> Path:
    return Path(os.environ.get(MIRROR_ENV) or Path(tempfile.gettempdir()) / "curate-model-mirror").resolve()


def local_home(value: str | Path) -> Path:
    """The folder models are read from: the value itself, or for a URL its mirror (nothing is created)."""
    text = str(value)
    if not is_url(text):
        return Path(text)
    scheme, _, rest = text.partition("://")
    parts = [part for part in rest.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ConfigError(f"models home {text!r} is not a usable URL; give one such as s3://bucket/models")
    return mirror_root().joinpath(scheme, *parts)


def source_url(home: Path) -> str | None:
    """The object-store URL a mirror folder stands for; None for an ordinary folder."""
    try:
        scheme, *parts = home.resolve().relative_to(mirror_root()).parts
    except ValueError:
        return None
    return f"{scheme}://{'/'.join(parts)}" if parts else None


@contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Whatever the store's client raises (no credentials, no bucket, no network) as one line."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - botocore, gcsfs... raise their own types
        raise ConfigError(
            f"models home {url}: cannot read it ({type(error).__name__}: {error}); check the URL and the "
            "store's credentials (the usual environment variables of its client)"
        ) from None


def refresh_mirror(directory: Path) -> None:
    """Fetch a model folder into its mirror when the store's card differs from the mirror's copy."""
    url = source_url(directory.parent)
    if url is None:
        return
    with store_errors(url):
        _fetch(f"{url}/{directory.name}", directory)


def _fetch(url: str, directory: Path) -> None:
    remote = location(url)
    remote_card = remote / CARD_FILE
    if not remote_card.is_file():
        return  # not on the store: the lookup reports it missing
    local_card = directory / CARD_FILE
    if local_card.is_file() and local_card.read_bytes() == remote_card.read_bytes():
        return
    staging = directory.with_name(f".{directory.name}.fetch-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    for path in files_under(remote):
        target = staging / relative(path, remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.fs.get_file(path.path, str(target))
    replace_folder(staging, directory)


def replace_folder(staging: Path, final: Path) -> None:
    """Rename `staging` into place as `final`, the old folder (if any) removed after."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.replace(old)
    staging.replace(final)
    shutil.rmtree(old, ignore_errors=True)
