"""Which browser origins may use the RPC server (CORS for HTTP, the Origin check of WebSocket).

An allowed-origins list holds entries of three forms:

- `"*"`: any origin (never a default: any web page could then drive the node);
- an exact origin, `scheme://host[:port]` (compared case-insensitively, as origins are);
- an origin whose port is `*`: `http://localhost:*` allows `http://localhost` and
  `http://localhost:<any port>`. Browser dev servers pick ports freely, so a devnet allows its
  loopback origins this way (`cybermiles_node.operator.config.DEVNET_CORS_ORIGINS`).

Requests without an Origin header do not come from a web page and are not subject to this.
"""

from __future__ import annotations

from typing import Final

__all__ = ["origin_allowed"]

_ANY_PORT: Final = ":*"


def _matches(origin: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if not pattern.endswith(_ANY_PORT):
        return origin == pattern
    base = pattern[: -len(_ANY_PORT)]
    if origin == base:
        return True  # the scheme's default port
    if not origin.startswith(base + ":"):
        return False
    port = origin[len(base) + 1 :]
    return port.isascii() and port.isdigit() and len(port) <= 5


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """Whether a browser page of `origin` may use the server under the `allowed` list."""
    lowered = origin.lower()
    return any(_matches(lowered, pattern.lower()) for pattern in allowed)
