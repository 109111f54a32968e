"""What a run's stages read from the driver's disk, shipped to Ray actors that may not have it.

Two kinds travel, both as tars keyed by their sha256 in Ray's object store, unpacked once per node and
checksum in a node-local cache (`$CURATE_MODEL_CACHE`, else `<tmp>/curate-models`):

- Model folders, by name (`curate.stages.model_folders`): the actor's stage gets a models home of links.
- Every other file, folder or glob a stage's params name (a blocklist, an evaluation set, a folder of
  word lists): the values of the params' marked path fields (`curate.paths.map_paths`, the marks the
  service confines by). On the driver they are recorded; on an actor each is replaced by its unpacked
  copy, so a stage reads the copy without knowing it moved. A path that names nothing on the driver is
  left as it is (a stage may have read it already, e.g. hashed an evaluation set into its params). URLs
  (s3://...) are read by the workers themselves and not shipped.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curate.config import StageSpec
from curate.errors import ConfigError
from curate.paths import PathField, map_paths
from curate.plan import RunPlan
from curate.stages.model_folders import UsesModelFolders, model_folders
from curate.storage import is_url

MODEL_CACHE_ENV = "CURATE_MODEL_CACHE"


@dataclass(frozen=True)
class ShippedPath:
    """A path value's copy: the archive holding it, and where in the unpacked folder the value points
    ("" for a folder, the file's name for a file, the pattern's tail for a glob)."""

    checksum: str
    inside: str


@dataclass(frozen=True)
class StageShipment:
    """`archives` maps a checksum to the object-store ref of its tar; per stage i, `stage_homes[i]` maps
    each model name to a checksum and `stage_paths[i]` each shipped path value to its copy."""

    archives: dict[str, Any]
    stage_homes: list[dict[str, str]]
    stage_paths: list[dict[str, ShippedPath]]


def ship_stage_files(plan: RunPlan) -> StageShipment:
    """Pack each model folder and named path of the stages once (two stages may share one); `ray.put` it.

    Everything is checked and packed before the first `ray.put`: a missing model is a config error that
    leaves no Ray behind (a `ray.put` without a running Ray would start one)."""
    import ray

    packed: dict[str, bytes] = {}

    def keep(data: bytes) -> str:
        checksum = hashlib.sha256(data).hexdigest()
        packed.setdefault(checksum, data)  # the same bytes travel once
        return checksum

    homes, paths = [], []
    for spec in plan.config.stages:
        folders = model_folders(spec.params)
        for folder in folders.values():
            if not folder.is_dir():
                raise ConfigError(
                    f"stage {spec.name!r} reads model folder {folder}, which is gone from the driver; "
                    "restore or re-train the model there (the run ships it to the workers)"
                )
        homes.append({name: keep(pack_folder(folder)) for name, folder in folders.items()})
        skip = {folder.parent.resolve() for folder in folders.values()}  # the models home: shipped by name
        shipped = {}
        for value, marker in path_values(spec):
            found = pack_path(value, marker, skip)
            if found is not None:
                shipped[value] = ShippedPath(keep(found[0]), found[1])
        paths.append(shipped)
    archives = {checksum: ray.put(data) for checksum, data in packed.items()}
    return StageShipment(archives, homes, paths)


def path_values(spec: StageSpec) -> list[tuple[str, PathField]]:
    """Every value of a marked path field in the stage's params."""
    seen: list[tuple[str, PathField]] = []

    def record(value: str, marker: PathField) -> str:
        seen.append((value, marker))
        return value

    map_paths(spec.params, record)
    return seen


def pack_path(value: str, marker: PathField, skip: set[Path]) -> tuple[bytes, str] | None:
    """The tar of what a path value names on the driver and where the value points inside it; None for a
    URL, a models home, or a path that names nothing here (the stage itself says what is missing)."""
    if is_url(value):
        return None
    if marker.glob:
        base, pattern = glob_base(value)
        matches = [Path(p) for p in sorted(glob.glob(value, recursive=True)) if Path(p).is_file()]
        return (pack_files(base, matches), pattern) if matches else None
    path = Path(value)
    if path.is_dir() and path.resolve() not in skip:
        return pack_folder(path), ""
    if path.is_file():
        return pack_files(path.parent, [path]), path.name
    return None


def glob_base(pattern: str) -> tuple[Path, str]:
    """The folder before the first wildcard component, and the rest of the pattern."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts) - 1)
    return Path(*parts[:fixed]), str(Path(*parts[fixed:]))


def pack_folder(folder: Path) -> bytes:
    return pack_files(folder, (p for p in folder.rglob("*") if p.is_file()))


def pack_files(base: Path, files: Iterable[Path]) -> bytes:
    """A tar of the files (named relative to `base`) that depends on their names and bytes only (sorted,
    no times or owners), so its sha256 names the content and unchanged files never travel twice."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path.relative_to(base).as_posix())
            info.size = path.stat().st_size
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def node_model_cache() -> Path:
    """Where an actor unpacks shipped files: read on the actor's node, so each node may set its own."""
    return Path(os.environ.get(MODEL_CACHE_ENV) or Path(tempfile.gettempdir()) / "curate-models")


def localized_plan(plan: RunPlan, shipment: StageShipment, cache: Path) -> RunPlan:
    """The plan with every stage reading its models and named paths from this node's cache."""
    stages = [
        _localized_stage(spec, homes, paths, shipment, cache)
        for spec, homes, paths in zip(
            plan.config.stages, shipment.stage_homes, shipment.stage_paths, strict=True
        )
    ]
    return replace(plan, config=plan.config.model_copy(update={"stages": stages}))


def _localized_stage(
    spec: StageSpec,
    homes: dict[str, str],
    paths: dict[str, ShippedPath],
    shipment: StageShipment,
    cache: Path,
) -> StageSpec:
    params = spec.params
    if homes and isinstance(params, UsesModelFolders):
        params = params.with_models_home(materialized_home(homes, shipment, cache))
    if paths:

        def to_copy(value: str, marker: PathField) -> str:
            shipped = paths.get(value)
            if shipped is None:
                return value
            folder = unpacked_folder(shipped.checksum, shipment.archives[shipped.checksum], cache)
            return str(folder / shipped.inside) if shipped.inside else str(folder)

        params = map_paths(params, to_copy)
    return spec.model_copy(update={"params": params})


def materialized_home(names: dict[str, str], shipment: StageShipment, cache: Path) -> Path:
    """A models home holding `name -> folder` links to the unpacked folders, one per set of models."""
    for checksum in names.values():
        unpacked_folder(checksum, shipment.archives[checksum], cache)
    digest = hashlib.sha256(json.dumps(sorted(names.items())).encode()).hexdigest()[:16]
    home = cache / f"home-{digest}"
    if not home.is_dir():
        staging = _staging_dir(home)
        for name, checksum in names.items():
            (staging / name).symlink_to(Path("..") / checksum, target_is_directory=True)
        _publish(staging, home)
    return home


def unpacked_folder(checksum: str, archive: Any, cache: Path) -> Path:
    """`<cache>/<checksum>/`, fetched from the object store and unpacked only if this node lacks it."""
    import ray

    folder = cache / checksum
    if not folder.is_dir():
        staging = _staging_dir(folder)
        with tarfile.open(fileobj=io.BytesIO(ray.get(archive))) as tar:
            tar.extractall(staging, filter="data")
        _publish(staging, folder)
    return folder


def _staging_dir(final: Path) -> Path:
    staging = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _publish(staging: Path, final: Path) -> None:
    """Rename into place in one step; if another actor on this node got there first, keep its copy."""
    try:
        staging.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)
