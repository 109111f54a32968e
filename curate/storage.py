"""Where a run's files live: a local folder or an object store, named by a plain path or a filesystem URL.

Every path a config names goes through `location()`. A plain or `file://` path becomes a `pathlib.Path`,
so a local run behaves exactly as before; any other scheme (`s3://`, `gs://`, `memory://`, ...) becomes a
universal_pathlib `UPath` over fsspec, with the same `/`, `open`, `glob`, `exists` as a Path. Credentials
and endpoints come from each library's usual environment and config files (`AWS_*` variables and
`~/.aws` for s3fs, `GOOGLE_APPLICATION_CREDENTIALS` for gcsfs), never from a job body.

Object stores have no atomic rename, but an object appears whole when its upload completes, or not at
all. So a file is written under a temporary name and renamed on a local disk, and straight to its final
name on an object store (`staged` / `commit`); in both cases the run trusts a part only once the
completion record that lists it exists, and a redone shard first deletes what an earlier attempt left.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from upath import UPath

from curate.errors import ConfigError

Location: TypeAlias = Path | UPath
TMP_SUFFIX = ".tmp"
LOCAL_SCHEMES = ("", "file", "local")
# Listings are never cached: other processes (pool workers, Ray actors, a resumed run) write these prefixes.
UNCACHED_LISTINGS = {"s3", "s3a", "gs", "gcs", "az", "abfs"}


def location(value: str | os.PathLike[str] | UPath) -> Location:
    """A Path for anything on the local disk, a UPath for an object-store URL."""
    if isinstance(value, Path):
        return value
    if isinstance(value, UPath) and value.protocol not in LOCAL_SCHEMES:
        return value
    text = str(value)
    scheme = urlsplit(text).scheme
    if scheme in LOCAL_SCHEMES:
        return Path(text.removeprefix("file://").removeprefix("local://")).expanduser()
    options = {"use_listings_cache": False} if scheme in UNCACHED_LISTINGS else {}
    try:
        return UPath(text, **options)
    except (ValueError, ImportError) as error:
        message = f"{text}: no filesystem for {scheme}:// ({error}); use a local path or s3://"
        raise ConfigError(message) from None


def is_remote(path: Location) -> bool:
    return not isinstance(path, Path)


def is_url(text: str) -> bool:
    """A string naming an object-store location (not a plain or file:// path)."""
    return urlsplit(text).scheme not in LOCAL_SCHEMES and "://" in text


def make_dirs(path: Location) -> None:
    """Folders exist on a disk only; an object store has keys, and a prefix needs no creating."""
    if not is_remote(path):
        Path(path).mkdir(parents=True, exist_ok=True)


def temp_path(path: Location) -> Location:
    return path.with_name(path.name + TMP_SUFFIX)


def staged(path: Location) -> Location:
    """The name to write `path`'s content under until `commit`: a temporary on disk, the final on a store."""
    return path if is_remote(path) else temp_path(path)


def commit(path: Location) -> None:
    """Make a file written at `staged(path)` appear under its final name (an upload is already final)."""
    if not is_remote(path):
        os.replace(temp_path(path), path)


def discard(path: Location) -> None:
    """Remove whatever an unfinished write of `path` left (its temporary on disk, the object on a store)."""
    target = staged(path)
    if target.exists():
        target.unlink()


def write_atomic(path: Location, data: str) -> None:
    """Replace a small text file whole: readers see the old content or the new, never a mix or nothing."""
    if is_remote(path):
        path.write_text(data, encoding="utf-8")  # one PUT: the object changes at once
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def remove_tree(folder: Location) -> None:
    """Delete a folder (a prefix on an object store) and everything under it, if it exists."""
    if not folder.exists():
        return
    if is_remote(folder):
        folder.fs.rm(folder.path, recursive=True)
    else:
        shutil.rmtree(folder)


def arrow_filesystem(path: Location) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path for `path` (pyarrow wraps fsspec for object stores)."""
    if not is_remote(path):
        return pafs.LocalFileSystem(), str(path)
    return pafs.PyFileSystem(pafs.FSSpecHandler(path.fs)), path.path


def read_parquet(path: Location, **kwargs: Any) -> pa.Table:
    filesystem, inner = arrow_filesystem(path)
    return pq.read_table(inner, filesystem=filesystem, **kwargs)


def read_parquet_metadata(path: Location) -> pq.FileMetaData:
    if not is_remote(path):
        return pq.read_metadata(path)
    with path.open("rb") as handle:
        return pq.read_metadata(handle)


def parquet_file(path: Location) -> pq.ParquetFile:
    """A Parquet file to stream row groups from, on disk or on a store."""
    return pq.ParquetFile(path if not is_remote(path) else path.open("rb"))


def write_parquet(path: Location, table: pa.Table, **kwargs: Any) -> None:
    """Write a whole Parquet file so that it appears only complete (see `staged`)."""
    make_dirs(path.parent)
    filesystem, inner = arrow_filesystem(staged(path))
    pq.write_table(table, inner, filesystem=filesystem, **kwargs)
    commit(path)


def parquet_writer(path: Location, schema: pa.Schema, **kwargs: Any) -> pq.ParquetWriter:
    """A streaming writer to `staged(path)`; the caller closes it, then `commit(path)`s."""
    make_dirs(path.parent)
    filesystem, inner = arrow_filesystem(staged(path))
    return pq.ParquetWriter(inner, schema, filesystem=filesystem, **kwargs)


def files_under(folder: Location, pattern: str = "**/*") -> list[Location]:
    """Files below `folder` matching `pattern`, sorted (one listing on an object store)."""
    if not folder.exists():
        return []
    return sorted((p for p in folder.glob(pattern) if p.is_file()), key=str)


def relative(path: Location, root: Location) -> str:
    """`path` below `root`, with forward slashes (as completion records and manifests name files)."""
    if is_remote(path):
        return str(path).removeprefix(str(root).rstrip("/") + "/")
    return Path(path).relative_to(Path(root)).as_posix()


def register_filesystems(con: Any, paths: Iterable[Location]) -> None:
    """Let a DuckDB connection read these paths: object stores through their fsspec filesystem, so no
    DuckDB extension is downloaded at run time."""
    registered = set(con.list_filesystems())  # names of the filesystems registered so far
    for path in paths:
        if is_remote(path) and _fs_name(path) not in registered:
            con.register_filesystem(path.fs)
            registered = set(con.list_filesystems())


def _fs_name(path: Location) -> str:
    """The name DuckDB lists an fsspec filesystem under (its first protocol)."""
    protocol = path.fs.protocol
    return protocol if isinstance(protocol, str) else protocol[0]


def scratch_dir(out: Location, purpose: str) -> Path:
    """A local folder for work files of a run whose output may be remote (DuckDB databases and spill
    cannot live on an object store): beside the output on disk, else a temp folder keyed by the output."""
    if not is_remote(out):
        return Path(out) / purpose
    digest = hashlib.sha256(str(out).encode()).hexdigest()[:16]
    base = Path(os.environ.get("CURATE_SCRATCH") or tempfile.gettempdir())
    return base / f"curate-{digest}" / purpose
