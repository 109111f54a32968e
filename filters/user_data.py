"""A user's own training data for `curate models train-* --positive/--negative/--text/--labels`.

Why a module: the bundled recipes draw on ../shared/data, but a real user trains on their own documents,
in their own language, in whatever format they hold. Documents come from a glob of files read by
curate's own readers (JSONL, JSON.gz, Parquet, WARC/WET, any of them gzip- or zstd-compressed, with
`--text-field` naming the field when it is not `text`/`content`/`raw_content`) or as plain text (any other
name: `.txt`, `.md`, none), which is reflowed and cut into passages of about `PASSAGE_CHARS` at paragraph
breaks, one document each. Labels come from one table (CSV/TSV, JSONL or Parquet) with a text column and
a label column.

A document's id is the first 16 hex digits of its file's sha256 and its offset (or passage number) in
the file, so the held-out split (by a hash of the id) depends on the content alone, not on where the
files lie. Every file read becomes a card entry (path, bytes, sha256, documents), so a model's card says
exactly what it was trained on. Mistakes are `ConfigError`s naming the option and the fix: a glob
that matches nothing, a file with no readable text, a missing column, one class only.
"""

from __future__ import annotations

import csv
import glob
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import ConfigError
from curate.readers.compression import open_decoded, strip_compression_suffix
from curate.readers.fields import FieldMap
from curate.readers.formats import infer_format, reader_for
from curate.readers.records import RawDoc
from filters import corpora
from filters.model_registry import file_checksum

PASSAGE_CHARS = 4000
TRUE_LABELS = ("1", "true")
FALSE_LABELS = ("0", "false")
"""Label values read without `--positive-label` (case-insensitive); any other value needs the option."""


@dataclass
class Documents:
    """Documents read for one option (`--positive`, `--text`, ...) and the card entries of their files."""

    docs: list[corpora.Doc] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)


def expand_glob(pattern: str, option: str) -> list[Path]:
    """The files a glob matches (`**` recursive; a folder stands for every file under it), sorted; none is
    a ConfigError naming the option."""
    path = Path(pattern).expanduser()
    wanted = str(path / "**" / "*") if path.is_dir() else str(path)
    matches = sorted(Path(p) for p in glob.glob(wanted, recursive=True))
    files = [path for path in matches if path.is_file()]
    if not files:
        raise ConfigError(f"{option} {pattern} matches no file; check the path or quote the glob")
    return files


def read_documents(pattern: str, option: str, text_field: str | None = None) -> Documents:
    """Every document of every file the glob matches; each file must give at least one document."""
    fields = FieldMap(text=[text_field]) if text_field else FieldMap()
    out = Documents()
    for path in expand_glob(pattern, option):
        entry = file_checksum(path)
        docs = [(f"{entry['sha256'][:16]}:{where}", text) for where, text in _file_documents(path, fields)]
        if not docs:
            raise ConfigError(
                f"{option}: {path} has no readable document with text in field(s) "
                f"{', '.join(fields.text)}; name the text field with --text-field"
            )
        out.docs += docs
        out.files.append({**entry, "documents": len(docs), "option": option})
    return out


def _file_documents(path: Path, fields: FieldMap) -> Iterator[tuple[int, str]]:
    """(record offset or passage number, text) of one file."""
    fmt = infer_format(path)
    if fmt is None:
        yield from plain_text_documents(path)
        return
    for item in reader_for(fmt)(path, fields):
        if isinstance(item, RawDoc) and item.text.strip():
            yield item.offset, item.text


def plain_text_documents(path: Path) -> Iterator[tuple[int, str]]:
    """A plain-text file (gzip or zstd allowed), reflowed and cut into numbered passages at paragraph
    breaks."""
    with open(path, "rb") as raw, open_decoded(raw) as handle:
        text = handle.read().decode("utf-8", errors="replace")
    paragraphs = corpora.reflow(text).split("\n")
    for index, passage in enumerate(corpora.passages(paragraphs, PASSAGE_CHARS)):
        if passage.strip():
            yield index, passage


def require_documents(found: Documents, option: str, minimum: int) -> None:
    """Too few documents train nothing worth a card: one line naming the option and how many it needs."""
    if len(found.docs) < minimum:
        raise ConfigError(
            f"{option} gave {len(found.docs)} documents; training needs at least {minimum}, add more files"
        )


# ------------------------------------------------------------------------------------------- labels


@dataclass
class Labelled:
    """Texts with a 0/1 label from a labels table, the rule that mapped the values, and the card entry."""

    texts: list[str]
    labels: list[int]
    rule: str
    file: dict[str, Any]
    values: dict[str, int]


def read_labels(
    path: Path, text_column: str, label_column: str, positive_labels: list[str] | None = None
) -> Labelled:
    """Rows of a CSV/TSV, JSONL or Parquet labels file as (text, 0/1). With `positive_labels` a row is
    toxic when its label (as text) is one of them, any other value is not; without, the values must be
    0/1 or true/false. Rows with an empty text are skipped."""
    if not path.is_file():
        raise ConfigError(f"--labels {path} is not a file; pass a CSV, JSONL or Parquet file")
    rows = table_rows(path)
    _require_columns(rows, path, (("--text-column", text_column), ("--label-column", label_column)))
    pairs = [(str(row.get(text_column) or "").strip(), label_text(row.get(label_column))) for row in rows]
    pairs = [(text, value) for text, value in pairs if text]
    values = Counter(value for _, value in pairs)
    rule, positive = label_rule(values, label_column, positive_labels)
    labels = [int(value in positive) for _, value in pairs]
    entry = {**file_checksum(path), "documents": len(pairs), "option": "--labels"}
    return Labelled([text for text, _ in pairs], labels, rule, entry, dict(values))


def table_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a labels table by its name: .parquet, .jsonl/.json/.ndjson, else CSV (.tsv: tabs)."""
    name = strip_compression_suffix(path.name.lower())
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    with open(path, "rb") as raw, open_decoded(raw) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")
        if name.endswith((".jsonl", ".json", ".ndjson")):
            return [_json_row(line, path, number) for number, line in enumerate(text, 1) if line.strip()]
        return list(csv.DictReader(text, delimiter="\t" if name.endswith(".tsv") else ","))


def _json_row(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError:
        raise ConfigError(f"--labels {path} line {number} is not JSON; fix the line or remove it") from None
    if not isinstance(row, dict):
        raise ConfigError(f"--labels {path} line {number} is not a JSON object; write one object a line")
    return row


def _require_columns(rows: list[dict[str, Any]], path: Path, wanted: tuple[tuple[str, str], ...]) -> None:
    present = {key for row in rows for key in row}
    for option, column in wanted:
        if column not in present:
            shown = ", ".join(sorted(present)[:12]) or "none"
            raise ConfigError(f"--labels {path} has no column {column!r} (it has: {shown}); set {option}")


def label_text(value: Any) -> str:
    """A label value as the text `--positive-label` is compared with: True -> `true`, 1.0 -> `1`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()


def label_rule(values: Counter, label_column: str, positive_labels: list[str] | None) -> tuple[str, set[str]]:
    """The label values that mean toxic, and the rule in words for the card; both classes must occur."""
    seen = sorted(values)
    if positive_labels:
        unknown = [label for label in positive_labels if label not in values]
        if unknown:
            raise ConfigError(
                f"--positive-label {', '.join(unknown)} never occurs in column {label_column!r} "
                f"(values: {', '.join(seen[:10])}); pass values that occur"
            )
        positive = set(positive_labels)
        rule = f"{label_column} in {sorted(positive)} -> toxic; any other value -> not toxic"
    else:
        lowered = {value.lower() for value in values}
        if not lowered <= {*TRUE_LABELS, *FALSE_LABELS}:
            raise ConfigError(
                f"column {label_column!r} has values {', '.join(seen[:10])}; say which mean toxic with "
                "--positive-label VALUE (repeatable)"
            )
        positive = {value for value in values if value.lower() in TRUE_LABELS}
        rule = f"{label_column} 1/true -> toxic; 0/false -> not toxic"
    toxic = sum(n for value, n in values.items() if value in positive)
    if toxic == 0 or toxic == sum(values.values()):
        only = "toxic" if toxic else "not toxic"
        raise ConfigError(
            f"every labelled row is {only} under the rule `{rule}`; a classifier needs both classes, "
            "add rows of the other class or fix --positive-label"
        )
    return rule, positive
