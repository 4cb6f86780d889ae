"""Static files served under a URL prefix by the JSON-RPC server: the built-in explorer.

`StaticSite` holds the files of one folder in memory, read once when the node starts (the
explorer is three small files), and answers GET and HEAD for `PREFIX/NAME` by looking NAME up in
that table. Nothing on the request path touches the disk, so no path a client sends (`..`,
percent-encoded slashes, absolute paths, symlinks) can reach another file: a name that is not
in the table is a 404. `PREFIX` redirects to `PREFIX/`, which serves `index.html`.

Responses carry their content type, an ETag (If-None-Match gets a 304), a short cache lifetime
(a node upgrade shows within a minute), `nosniff` and a Content-Security-Policy that lets the
page load only its own files and talk only to its own origin (the node's JSON-RPC over HTTP and
WebSocket): the page shows what the chain holds (validator names, token symbols), and none of it
can run as script.

`EXPLORER_PREFIX`/`explorer_site()` are the explorer's instance (files in rpc/explorer/); the
server (rpc/server.py) routes GET/HEAD under the prefix here, and everything else as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "CONTENT_TYPES",
    "EXPLORER_DIR",
    "EXPLORER_PREFIX",
    "StaticFile",
    "StaticSite",
    "explorer_off_response",
    "explorer_site",
    "under_prefix",
]

Headers = list[tuple[bytes, bytes]]
Response = tuple[int, bytes, Headers]  # rpc.server.HttpResponse

EXPLORER_PREFIX: Final = "/explorer"
EXPLORER_DIR: Final = Path(__file__).resolve().parent / "explorer"

# Only files of these kinds are served (anything else in the folder is ignored).
CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
CACHE_CONTROL: Final = b"max-age=60"
CONTENT_SECURITY_POLICY: Final = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_COMMON_HEADERS: Final[Headers] = [
    (b"cache-control", CACHE_CONTROL),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
]
_TEXT: Final = (b"content-type", b"text/plain; charset=utf-8")


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: bytes  # quoted, as the header carries it

    @classmethod
    def of(cls, body: bytes, content_type: str) -> StaticFile:
        return cls(body, content_type, b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"')


def under_prefix(path: str, prefix: str) -> bool:
    """Is `path` the prefix itself or below it ("/explorer", "/explorer/..."; not "/explorerx")."""
    return path == prefix or path.startswith(prefix + "/")


class StaticSite:
    """The files of one folder, answered under `prefix` (GET and HEAD only)."""

    def __init__(self, prefix: str, files: Mapping[str, StaticFile]) -> None:
        self.prefix = prefix
        self.files = dict(sorted(files.items()))

    @classmethod
    def from_folder(cls, prefix: str, folder: Path) -> StaticSite:
        """Read every regular file of `folder` (not its subfolders) with a known extension."""
        files = {
            item.name: StaticFile.of(item.read_bytes(), CONTENT_TYPES[item.suffix])
            for item in sorted(folder.iterdir())
            if item.suffix in CONTENT_TYPES and item.is_file()
        }
        if "index.html" not in files:
            raise FileNotFoundError(f"{folder / 'index.html'} is missing")
        return cls(prefix, files)

    def handles(self, path: str) -> bool:
        return under_prefix(path, self.prefix)

    def answer(self, path: str, if_none_match: bytes | None = None) -> Response:
        """The response to GET `path` (a path `handles`); HEAD sends the same without body."""
        if path == self.prefix:
            return 301, b"", [(b"location", (self.prefix + "/").encode()), *_COMMON_HEADERS]
        name = path[len(self.prefix) + 1 :] or "index.html"
        found = self.files.get(name)
        if found is None:
            return 404, f"not found: {path}\n".encode(), [_TEXT, *_COMMON_HEADERS]
        headers = [
            (b"content-type", found.content_type.encode()),
            (b"etag", found.etag),
            *_COMMON_HEADERS,
        ]
        if if_none_match is not None and found.etag in _etags(if_none_match):
            return 304, b"", headers
        return 200, found.body, headers


def _etags(header: bytes) -> list[bytes]:
    return [tag.strip().removeprefix(b"W/") for tag in header.split(b",")]


def explorer_site(folder: Path = EXPLORER_DIR) -> StaticSite:
    return StaticSite.from_folder(EXPLORER_PREFIX, folder)


def explorer_off_response() -> Response:
    """GET under the explorer's prefix on a node that does not serve it."""
    body = b"the explorer is not served by this node: set rpc.explorer = true in config.toml\n"
    return 404, body, [_TEXT]
