"""Peer addresses: `node_id@host:port` and `host:port`, parsed strictly.

Everything that comes from the network (NodeInfo listen addresses, peer-exchange replies) goes
through these parsers before it is stored or dialed, so the rest of the package can trust a
`NetAddress`. Hosts are IP literals (IPv6 in brackets) or DNS names; node ids are 40 lowercase
hex characters (the first 20 bytes of SHA-256 of the node's ed25519 public key).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_NODE_ID = re.compile(r"[0-9a-f]{40}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
MAX_ADDRESS_CHARS = 320


def is_node_id(value: object) -> bool:
    return isinstance(value, str) and _NODE_ID.fullmatch(value) is not None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    ip = _ip(host)
    return host == "localhost" if ip is None else ip.is_loopback


def is_unspecified(host: str) -> bool:
    """0.0.0.0 / :: : a listen address that says "any interface", useless to dial."""
    ip = _ip(host)
    return ip is not None and ip.is_unspecified


@dataclass(frozen=True, order=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, order=True)
class NetAddress:
    node_id: str
    host: str
    port: int

    @property
    def host_port(self) -> HostPort:
        return HostPort(self.host, self.port)

    def __str__(self) -> str:
        return f"{self.node_id}@{self.host_port}"


def parse_host_port(text: object) -> HostPort:
    """`host:port` / `[v6]:port` → HostPort; ValueError for anything else."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_ADDRESS_CHARS:
        raise ValueError("address must be a short string")
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"{text!r}: expected host:port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: port out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ip = _ip(host)
        if ip is None or ip.version != 6:
            raise ValueError(f"{text!r}: bracketed host must be an IPv6 address")
        return HostPort(str(ip), port)
    ip = _ip(host)
    if ip is not None and ip.version == 4:
        return HostPort(str(ip), port)
    if ip is None and _HOSTNAME.fullmatch(host):
        return HostPort(host.lower(), port)
    raise ValueError(f"{text!r}: invalid host")


def parse_address(text: object) -> NetAddress:
    """`node_id@host:port` → NetAddress; ValueError for anything else."""
    if not isinstance(text, str):
        raise ValueError("address must be a string")
    node_id, sep, rest = text.partition("@")
    if not sep or not is_node_id(node_id):
        raise ValueError(f"{text!r}: expected <40 hex node id>@host:port")
    hp = parse_host_port(rest)
    return NetAddress(node_id, hp.host, hp.port)
