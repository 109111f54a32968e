"""Field mapping: where in an input record the text, id, url and date live.

Corpora disagree on names (`text` vs `content`, `timestamp` vs `created`); a mapping lists candidates in
order, each a dotted path into nested JSON, so one config reads C4, Dolma and RedPajama shards alike.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

_MISSING = object()


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: list[str] = ["text", "content", "raw_content"]
    id: list[str] = ["id", "doc_id", "document_id"]
    url: list[str] = ["url", "metadata.url", "meta.url"]
    crawl_date: list[str] = ["crawl_date", "timestamp", "created", "date", "added"]

    @field_validator("text", "id", "url", "crawl_date", mode="before")
    @classmethod
    def _listify(cls, value: str | list[str]) -> list[str]:
        return _as_list(value)


def lookup(record: dict[str, Any], path: str) -> Any:
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def first_present(record: dict[str, Any], paths: list[str]) -> tuple[str | None, Any]:
    """The first candidate path present in the record, and its value; (None, None) if none is."""
    for path in paths:
        value = lookup(record, path)
        if value is not _MISSING and value is not None:
            return path, value
    return None, None


def remove_path(record: dict[str, Any], path: str) -> None:
    """Drop a mapped field from the record so `meta` holds only what no column took."""
    *parents, leaf = path.split(".")
    node: Any = record
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)
