"""Receipt logs of module events: the one format staking and governance share.

A module event is a frozen dataclass with a `kind` (an Enum). Its log is emitted by the module's
storage account: topic 0 is keccak256 of "<prefix>/<kind>" ("stake/staked",
"governance/voted"); the data is the event's fields as canonical JSON (addresses and bytes as 0x
hex, rationals "a/b", enums their value, integers at or above 2^53 as decimal strings, since
JSON readers lose precision there), so wallets can read what a system transaction did without
an ABI.
"""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from fractions import Fraction
from typing import Protocol

from eth_hash.auto import keccak

from evm.system import Log

__all__ = ["Event", "event_log", "json_value"]


class Event(Protocol):
    """A module event: a frozen dataclass whose `kind` names what happened."""

    @property
    def kind(self) -> Enum: ...


def event_log(account: bytes, prefix: str, event: Event) -> Log:
    """The receipt log of `event`, emitted by `account`."""
    if not dataclasses.is_dataclass(event) or isinstance(event, type):
        raise TypeError(f"not an event: {event!r}")
    name = f"{prefix}/{json_value(event.kind)}"
    topic = int.from_bytes(keccak(name.encode()), "big")
    fields = {f.name: json_value(getattr(event, f.name)) for f in dataclasses.fields(event)}
    data = json.dumps({"event": name, **fields}, sort_keys=True, separators=(",", ":"))
    return (account, (topic,), data.encode())


def json_value(value: object) -> object:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2**53:
        return str(value)
    return value
