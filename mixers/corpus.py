"""The curated corpora a mixture draws from: their part files, domains, schema and manifest hashes.

Only Parquet footers are read here (row counts and schemas), so opening a corpus of any size is instant.
The part list comes from each corpus's manifest, not from a glob, so a stray or half-written file in the
folder can never leak into a mixture, and a missing one is an error instead of a silently smaller mix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from curate.manifest import MANIFEST
from curate.storage import Location, files_under, location, read_parquet_metadata, relative
from mixers.errors import MixError

CORPUS_DIR = "corpus"


@dataclass(frozen=True)
class PartFile:
    """One Parquet part of a corpus; `index` is its position in the whole set, the sampler's file key."""

    index: int
    corpus: int
    path: Location
    rel: str
    domain: str
    rows: int


@dataclass(frozen=True)
class CorpusSet:
    roots: list[Location]
    manifest_sha256: list[str]
    parts: list[PartFile]
    schema: pa.Schema

    def domains(self) -> list[str]:
        return sorted({part.domain for part in self.parts})

    def parts_for(self, domains: list[str] | set[str]) -> list[PartFile]:
        return [part for part in self.parts if part.domain in domains]

    def columns(self) -> list[str]:
        return list(self.schema.names)


def open_corpora(paths: list[str]) -> CorpusSet:
    """Check every corpus folder and list its parts; errors name the folder and what to pass instead."""
    roots, hashes, parts, schemas = [], [], [], []
    for corpus_index, raw in enumerate(paths):
        root = location(raw)
        if any(_same(root, seen) for seen in roots):
            raise MixError(f"corpora[{corpus_index}]: {root} is listed twice; list each corpus once")
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise MixError(
                f"corpora[{corpus_index}]: {root} has no {MANIFEST}; pass the output folder of a finished "
                "`curate run`"
            )
        data = manifest_path.read_bytes()
        roots.append(root)
        hashes.append(hashlib.sha256(data).hexdigest())
        for rel in _corpus_files(root, json.loads(data), corpus_index):
            path = root / rel
            metadata = read_parquet_metadata(path)
            parts.append(PartFile(len(parts), corpus_index, path, rel, _domain_of(rel), metadata.num_rows))
            schemas.append(metadata.schema.to_arrow_schema())
    if not parts:
        raise MixError(f"corpora {', '.join(paths)} hold no documents; run `curate run` with inputs first")
    return CorpusSet(roots, hashes, parts, _unify(schemas))


def _same(a: Location, b: Location) -> bool:
    if isinstance(a, Path) and isinstance(b, Path):
        return a.resolve() == b.resolve()
    return str(a).rstrip("/") == str(b).rstrip("/")


def _corpus_files(root: Location, manifest: dict, corpus_index: int) -> list[str]:
    listed = manifest.get("files")
    if listed is None:
        listed = [relative(p, root) for p in files_under(root / CORPUS_DIR, "domain=*/*.parquet")]
    files = sorted(rel for rel in listed if rel.startswith(CORPUS_DIR + "/"))
    missing = [rel for rel in files if not (root / rel).is_file()]
    if missing:
        raise MixError(
            f"corpora[{corpus_index}]: {root} lists {len(missing)} part(s) that are not on disk "
            f"(first: {missing[0]}); re-run `curate run` to complete it"
        )
    return files


def _domain_of(rel: str) -> str:
    folder = Path(rel).parent.name
    return folder.split("=", 1)[1] if folder.startswith("domain=") else folder


def _unify(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema over all parts; columns a corpus lacks read as NULL (DuckDB union_by_name)."""
    try:
        return pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise MixError(
            f"the corpora's columns disagree on types ({error}); mix corpora of one schema"
        ) from None
