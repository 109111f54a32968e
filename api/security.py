"""The service's security rules, each a small function the app, the workers and the tests share.

* Paths: every path a job reads or writes must resolve (symlinks followed) inside a data root, must not
  contain `..`, and must stay out of the service's own state folder (a job must not overwrite the job DB).
  A data root may be an object-store prefix (`s3://bucket/prefix`): a URL path must then lie under it
  (same scheme and bucket, no `.`/`..` segment; objects have no symlinks), checked again at open time.
  One rule covers every path field of every config: fields are marked by type (curate.paths) and
  confined while the config is validated, so a refused path is never opened nor its existence told.
  Workers check again just before running, so a symlink planted after submission cannot escape either.
* Auth: one bearer token, compared in constant time, checked before a request's body is read.
* Binding: a non-loopback address without a token is refused before the socket is opened.
* Body size: requests larger than the limit are cut off with 413 before they are buffered.
"""

from __future__ import annotations

import glob
import hmac
import ipaddress
import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import FieldError
from curate.paths import PathField, confined_paths
from curate.readers.opening import url_inside
from curate.storage import is_url

LOOPBACK_NAMES = {"localhost"}
PATH_MAX, NAME_MAX = 4096, 255


def is_loopback(host: str) -> bool:
    """True only for addresses that cannot be reached from another machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    from curate.errors import ConfigError

    if token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without an API token: set CURATE_API_TOKEN or "
            "CURATE_API_TOKEN_FILE (or --token-file), or bind 127.0.0.1"
        )


def token_matches(header: str | None, token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())


class PathPolicy:
    """Where jobs may read and write: inside the data roots, never in the service's state folder."""

    def __init__(self, roots: Iterable[Path | str], forbidden: Iterable[Path] = ()) -> None:
        """`roots`: local folders (the first one is where relative paths point) and object-store URLs."""
        self.roots = tuple(str(r).rstrip("/") if is_url(str(r)) else Path(r).resolve() for r in roots)
        self.local_roots = tuple(r for r in self.roots if isinstance(r, Path))
        self.url_roots = tuple(r for r in self.roots if isinstance(r, str))
        self.forbidden = tuple(Path(f).resolve() for f in forbidden)

    @property
    def base(self) -> Path:
        """The folder relative paths are relative to: the first local data root."""
        return self.local_roots[0]

    def absolute(self, value: str, loc: tuple[Any, ...]) -> Path:
        """A config path made absolute against the first data root; `..` is refused outright."""
        _check_usable(value, loc)
        path = Path(value).expanduser()
        if ".." in path.parts:
            raise FieldError(loc, f"{value}: `..` is not allowed in paths; give a path inside a data root")
        return path if path.is_absolute() else self.base / path

    def confine_url(self, value: str, loc: tuple[Any, ...]) -> str:
        """An object-store URL (or a glob of one) is allowed only under an object-store data root."""
        _check_usable(value, loc)
        if any(part in (".", "..") for part in value.partition("://")[2].split("/")):
            raise FieldError(loc, f"{value}: `..` is not allowed in paths; give a path inside a data root")
        if not url_inside(value, self.url_roots):
            raise self._outside(value, loc)
        return value

    def _outside(self, path: Path | str, loc: tuple[Any, ...]) -> FieldError:
        roots = ", ".join(str(r) for r in self.roots)
        return FieldError(loc, f"{path} is outside the data roots ({roots}); use a path inside one")

    def check(self, path: Path, loc: tuple[Any, ...]) -> Path:
        """The real path (symlinks resolved, also for a not-yet-existing tail) if it is allowed."""
        real = path.resolve()
        if not any(real == root or root in real.parents for root in self.local_roots):
            raise self._outside(path, loc)
        if any(real == f or f in real.parents for f in self.forbidden):
            raise FieldError(loc, f"{path} is inside the service's state folder; jobs may not touch it")
        return real

    def confine(self, value: str, loc: tuple[Any, ...]) -> str:
        """Check one plain path (file or folder, existing or not) and return it absolute."""
        if is_url(value):
            return self.confine_url(value, loc)
        path = self.absolute(value, loc)
        self.check(path, loc)
        return str(path)

    def confine_marked(self, value: str, marker: PathField) -> str:
        """The one rule for every path field of every config (see curate.paths), applied while the field
        is validated: before any validator of the model looks at the file system."""
        return self.confine_glob(value, ()) if marker.glob else self.confine(value, ())

    def marked_fields(self) -> AbstractContextManager[None]:
        """Validate configs inside this block and every marked path in them is confined."""
        return confined_paths(self.confine_marked)

    def confine_glob(self, pattern: str, loc: tuple[Any, ...]) -> str:
        """Check a glob: its fixed prefix and every file it matches now must lie inside a root.

        Checking the matches (resolved) catches a symlink inside a root that points outside it. A URL
        glob's matches all start with its fixed prefix, and objects cannot point elsewhere."""
        if is_url(pattern):
            return self.confine_url(pattern, loc)
        path = self.absolute(pattern, loc)
        self.check(_glob_prefix(path), loc)
        for match in glob.glob(str(path), recursive=True):
            self.check(Path(match), loc)
        return str(path)


def _check_usable(value: str, loc: tuple[Any, ...]) -> None:
    if "\0" in value or len(value) > PATH_MAX or any(len(p) > NAME_MAX for p in value.split("/")):
        raise FieldError(loc, "not a usable path (NUL byte, or a name too long for the file system)")


def _glob_prefix(path: Path) -> Path:
    fixed = []
    for part in path.parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed)


class RequestOrigin:
    """Pure ASGI middleware for where a request comes from.

    * Browsers send Origin with cross-site requests: any origin but our own is refused (403), which stops
      another web page from posting to the API (CSRF); it matters most for a tokenless loopback server.
    * Without a token the server is loopback-only, and Host headers other than loopback names are refused
      (421): that stops DNS rebinding (a web page whose name resolves to 127.0.0.1 driving the API)."""

    def __init__(self, app: ASGIApp, loopback_hosts_only: bool) -> None:
        self.app = app
        self.loopback_hosts_only = loopback_hosts_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1")
            origin = headers.get(b"origin")
            if origin is not None and origin.decode("latin-1") != f"{scope.get('scheme', 'http')}://{host}":
                await _refuse(send, 403, f"cross-origin request from {origin.decode('latin-1')!r} refused")
                return
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if self.loopback_hosts_only and not is_loopback(name):
                await _refuse(send, 421, f"host {host!r} not allowed without an API token")
                return
        await self.app(scope, receive, send)


class BearerAuth:
    """Pure ASGI middleware: 401 for a request under `prefix` without the token, before anything reads
    its body. (A route dependency runs only after FastAPI has parsed the body, so malformed JSON from a
    caller without the token would get a 422 that tells it about the route.)"""

    def __init__(self, app: ASGIApp, token: str | None, prefix: str = "/v1") -> None:
        self.app = app
        self.token = token
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is not None and scope["type"] == "http" and self._guarded(scope["path"]):
            header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            if not token_matches(header, self.token):
                challenge = ((b"www-authenticate", b"Bearer"),)
                await _refuse(send, 401, "missing or wrong bearer token", challenge)
                return
        await self.app(scope, receive, send)

    def _guarded(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")


class BodySizeLimit:
    """Pure ASGI middleware: 413 when Content-Length or the streamed body exceeds `max_bytes`.

    A body without Content-Length (chunked) is read here up to the limit and then replayed to the app, so
    a client cannot make the server buffer more than the limit by omitting the header."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(send, self.max_bytes)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        body = await _read_limited(receive, self.max_bytes)
        if body is None:
            await _too_large(send, self.max_bytes)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_limited(receive: Receive, limit: int) -> bytes | None:
    """A chunked body read up to `limit` bytes (None past it): never more than the limit is buffered."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the server's own receive does

    return replay


async def _too_large(send: Send, limit: int) -> None:
    await _refuse(send, 413, f"request body larger than {limit} bytes")


async def _refuse(
    send: Send, status: int, detail: str, extra_headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra_headers]})
    await send({"type": "http.response.body", "body": body})
