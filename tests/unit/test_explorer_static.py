"""The explorer's static route (rpc.static + rpc.server): types, 404s, traversal, methods, origin.

`StaticSite` is tested alone (pure: path in, response out), then through the real server on
127.0.0.1 (hypercorn percent-decodes paths before the app sees them, so traversal attempts are
sent as raw request lines too).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from cybermiles_node.operator.config import (
    DevnetConfig,
    NodeConfig,
    RpcConfig,
    explorer_enabled,
    load_config,
)
from rpc.static import EXPLORER_DIR, EXPLORER_PREFIX, StaticFile, StaticSite, explorer_site
from tests.unit.test_rpc_server import TIMEOUT, make_dispatcher, run_server

SITE = explorer_site()
ECHO = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":[7]}'


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def raw_status(port: int, target: bytes) -> int:
    """The status of `GET target` sent byte for byte (no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = sock.recv(65536)
    return int(head.split(b" ", 2)[1])


# -- StaticSite alone ---------------------------------------------------------------------------


def test_the_explorer_folder_holds_the_page_and_what_it_loads() -> None:
    assert sorted(SITE.files) == ["app.js", "index.html", "style.css"]
    index = SITE.files["index.html"].body.decode()
    loaded = re.findall(r'(?:src|href)="([^"#]+)"', index)
    assert sorted(x for x in loaded if not x.startswith("data:")) == ["app.js", "style.css"]
    for name, served in SITE.files.items():  # works offline: no URL of any other site
        assert not re.search(rb"https?://", served.body), name


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
    ],
)
def test_known_files_are_answered_with_their_type(name: str, content_type: str) -> None:
    status, body, headers = SITE.answer(EXPLORER_PREFIX + name)
    found = dict(headers)
    assert status == 200 and body == SITE.files[name.strip("/") or "index.html"].body
    assert found[b"content-type"] == content_type.encode()
    assert found[b"cache-control"] == b"max-age=60"
    assert found[b"x-content-type-options"] == b"nosniff"
    assert b"connect-src 'self'" in found[b"content-security-policy"]


def test_the_prefix_redirects_to_the_folder() -> None:
    status, body, headers = SITE.answer("/explorer")
    assert (status, body, dict(headers)[b"location"]) == (301, b"", b"/explorer/")


@pytest.mark.parametrize(
    "path",
    [
        "/explorer/../static.py",
        "/explorer/../../pyproject.toml",
        "/explorer/..",
        "/explorer/.",
        "/explorer//etc/passwd",
        "/explorer/app.js/",
        "/explorer/sub/app.js",
        "/explorer/APP.JS",
        "/explorer/app.js\x00.png",
        "/explorer/nope.html",
    ],
)
def test_anything_not_in_the_table_is_404(path: str) -> None:
    status, body, _ = SITE.answer(path)
    assert status == 404 and body.startswith(b"not found")


def test_a_matching_etag_gets_304() -> None:
    etag = SITE.files["app.js"].etag
    assert SITE.answer("/explorer/app.js", etag)[:2] == (304, b"")
    assert SITE.answer("/explorer/app.js", b'"other", W/' + etag)[0] == 304
    assert SITE.answer("/explorer/app.js", b'"other"')[0] == 200
    assert StaticFile.of(b"x", "text/css").etag != StaticFile.of(b"y", "text/css").etag


def test_from_folder_reads_known_kinds_of_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>hi</p>")
    (tmp_path / "notes.txt").write_text("not served")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.js").write_text("1")
    site = StaticSite.from_folder("/x", tmp_path)
    assert list(site.files) == ["index.html"]
    assert site.answer("/x/notes.txt")[0] == 404 and site.answer("/x/sub/deep.js")[0] == 404
    assert site.handles("/x") and site.handles("/x/a") and not site.handles("/xa")
    (tmp_path / "index.html").unlink()
    with pytest.raises(FileNotFoundError, match="index.html"):
        StaticSite.from_folder("/x", tmp_path)
    assert EXPLORER_DIR.name == "explorer"


# -- through the server -------------------------------------------------------------------------


def test_get_and_head_on_a_real_server() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        status, headers, body = request(port, "GET", "/explorer/app.js")
        assert status == 200 and body == SITE.files["app.js"].body
        assert headers["content-type"] == "text/javascript; charset=utf-8"
        assert int(headers["content-length"]) == len(body)
        status, head_headers, head_body = request(port, "HEAD", "/explorer/app.js")
        assert (status, head_body) == (200, b"")
        assert head_headers["content-length"] == headers["content-length"]
        assert head_headers["etag"] == headers["etag"]
        status, _, body = request(
            port, "GET", "/explorer/app.js", headers={"If-None-Match": headers["etag"]}
        )
        assert (status, body) == (304, b"")
        status, headers, _ = request(port, "GET", "/explorer?x=1")
        assert (status, headers["location"]) == (301, "/explorer/")
        status, headers, body = request(port, "GET", "/explorer/?q=1")
        assert status == 200 and headers["content-type"].startswith("text/html")
        # Outside the prefix GET is still the banner, and /explorerx is outside.
        for path in ("/", "/explorerx", "/other/explorer/"):
            status, headers, body = request(port, "GET", path)
            assert status == 200 and json.loads(body)["result"].startswith("cybermiles node")

    run_server(client, d, pages=SITE)


def test_only_get_and_head_reach_the_files() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        for method in ("PUT", "DELETE", "PATCH"):
            status, headers, body = request(port, method, "/explorer/app.js", b"x")
            assert status == 405 and body == b"" and "POST" in headers["allow"], method
        # POST is JSON-RPC on every path, this one too.
        status, _, body = request(
            port, "POST", "/explorer/", ECHO, {"Content-Type": "application/json"}
        )
        assert status == 200 and json.loads(body)["result"] == 7

    run_server(client, d, pages=SITE)


@pytest.mark.parametrize(
    "target",
    [
        b"/explorer/../rpc/server.py",
        b"/explorer/%2e%2e/server.py",
        b"/explorer/%2E%2E%2Fstatic.py",
        b"/explorer/..%2f..%2fpyproject.toml",
        b"/explorer/%2fetc%2fpasswd",
        b"/explorer/app.js%00",
        b"/explorer/./app.js",
        b"/explorer/%61pp.js/..",
    ],
)
def test_traversal_attempts_on_the_wire_are_404(target: bytes) -> None:
    d, _ = make_dispatcher()
    assert run_server(lambda port: raw_status(port, target), d, pages=SITE) == 404


def test_a_node_without_the_explorer_says_how_to_turn_it_on() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        status, headers, body = request(port, "GET", "/explorer/")
        assert status == 404 and b"rpc.explorer = true" in body
        assert headers["content-type"].startswith("text/plain")
        status, _, body = request(port, "GET", "/")
        assert status == 200 and b"POST JSON-RPC here" in body

    run_server(client, d)


def test_websocket_from_the_nodes_own_origin_only_when_it_serves_the_page() -> None:
    def client(port: int) -> bool:
        own = Origin(f"http://127.0.0.1:{port}")
        with pytest.raises(InvalidStatus):
            with connect(
                f"ws://127.0.0.1:{port}/", origin=Origin("http://evil"), open_timeout=TIMEOUT
            ):
                pass
        try:
            with connect(f"ws://127.0.0.1:{port}/", origin=own, open_timeout=TIMEOUT) as ws:
                ws.send(ECHO.decode())
                return bool(json.loads(ws.recv(timeout=TIMEOUT))["result"] == 7)
        except InvalidStatus:
            return False

    assert run_server(client, make_dispatcher()[0], pages=SITE) is True
    assert run_server(client, make_dispatcher()[0]) is False  # no page there: cross-origin


# -- the setting ----------------------------------------------------------------------------------


def test_devnets_always_serve_it_other_nodes_when_set(tmp_path: Path) -> None:
    assert explorer_enabled(NodeConfig()) is False
    assert explorer_enabled(NodeConfig(devnet=DevnetConfig(enabled=True))) is True
    assert explorer_enabled(NodeConfig(rpc=RpcConfig(explorer=True))) is True
    path = tmp_path / "config.toml"
    path.write_text("[rpc]\nexplorer = true\n")
    assert explorer_enabled(load_config(path)) is True
