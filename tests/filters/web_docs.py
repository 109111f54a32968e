"""The real web documents of ../shared/data/web (JSON lines, plain or gzipped), read at test time."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WebDoc:
    file: str
    text: str
    url: str | None


def web_docs(web: Path) -> list[WebDoc]:
    """Every record of the JSON shards, in file order, with its URL where the record has one
    (`url` or `metadata.url`, as the reader's default field mapping looks for it)."""
    docs = []
    for path in sorted(web.glob("*.json*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
                docs.append(WebDoc(path.name, record["text"], record.get("url") or metadata.get("url")))
    return docs
