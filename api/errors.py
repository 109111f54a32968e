"""User errors of the API, each pointing at the field that caused it.

A 422 answer has FastAPI's own shape, `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`, whether the
error came from the request model, from a job config's pydantic model, or from a check that needs the
file system (a glob matching nothing, a path outside the data roots). Clients handle one shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class FieldError(ValueError):
    """A user error in one field of a request; `loc` is relative to the part being validated."""

    def __init__(self, loc: tuple[Any, ...], message: str, kind: str = "value_error") -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.message = message
        self.kind = kind

    def prefixed(self, *prefix: Any) -> FieldError:
        return FieldError((*prefix, *self.loc), self.message, self.kind)

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": list(self.loc), "msg": self.message, "type": self.kind}]


class RequestErrors(ValueError):
    """Several field errors at once (all of a pydantic model's), answered as one 422."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"] if errors else "invalid request")
        self.errors = errors


class Conflict(RuntimeError):
    """The request is valid but clashes with the service's state (409): e.g. a run still active."""


def from_validation(error: ValidationError, *prefix: Any) -> RequestErrors:
    """A pydantic error as 422 items, every `loc` prefixed with where the model sits in the request."""
    items = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        loc, message = _nested_loc(list(item["loc"]), message)
        items.append({"loc": [*prefix, *loc], "msg": message, "type": item["type"]})
    return RequestErrors(items)


def _nested_loc(loc: list[Any], message: str) -> tuple[list[Any], str]:
    """Stage params are validated inside the `stages` validator, whose message starts with the full path
    (`stages.0.tag.domain.bogus: unknown key`); move that path into `loc` where clients look for it."""
    head, sep, rest = message.partition(": ")
    if not loc or not sep or not head.startswith(f"{loc[-1]}.") or " " in head:
        return loc, message
    parts = [int(p) if p.isdigit() else p for p in head.split(".")]
    return [*loc[:-1], *parts], rest


def dotted(loc: list[Any]) -> str:
    return ".".join(str(part) for part in loc)
