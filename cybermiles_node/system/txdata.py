"""Decoding the `data` object of a system transaction (SPEC §5), field by field.

`TxData` wraps one transaction's `data` with its kind and the fields it may hold: unknown fields
and missing required ones are refused at construction, and each accessor checks one field's
JSON type and value with the genesis codecs (`genesis._codec`), refusing with the module's own
"malformed" exception, which names the field ("stake/delegate: data.amount: ..."). The staking
and governance message parsers both build on it, so a field is read the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import NoReturn, TypeVar

from genesis import (
    GenesisError,
    parse_address,
    parse_rational,
    parse_uint,
    type_name,
)

__all__ = ["INT64_MAX", "TxData"]

T = TypeVar("T")

INT64_MAX = 2**63 - 1


class TxData:
    """The `data` object of one kind: every accessor refuses with `error(message, field)`,
    naming the field's dotted path."""

    def __init__(
        self,
        error: Callable[[str, str], Exception],
        kind: str,
        data: Mapping[str, object],
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> None:
        self.error = error
        self.kind = kind
        self.data = data
        allowed = (*required, *optional)
        for key in data:
            if key not in allowed:
                expected = ", ".join(allowed) if allowed else "no fields: {}"
                self.fail(str(key), f"unknown field (expected {expected})")
        for key in required:
            if key not in data:
                self.fail(key, "missing")

    def fail(self, name: str, message: str) -> NoReturn:
        field = f"data.{name}"
        raise self.error(f"{self.kind}: {field}: {message}", field)

    def _codec(self, name: str, parse: Callable[[object, str], T]) -> T:
        """Run a genesis codec on field `name`, turning its GenesisError into ours."""
        try:
            return parse(self.data[name], f"data.{name}")
        except GenesisError as error:
            self.fail(name, error.message)
        except ValueError:  # int()'s limit of 4300 decimal digits
            self.fail(name, "number far too long")

    def string(self, name: str, default: str = "") -> str:
        value = self.data.get(name, default)
        if not isinstance(value, str):
            self.fail(name, f"expected a string, got {type_name(value)}")
        return value

    def boolean(self, name: str, default: bool | None = None) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            self.fail(name, f"expected true or false, got {type_name(value)}")
        return value

    def amount(self, name: str) -> int:
        """Wei from a decimal or 0x-hex string; SPEC §5 and §6 want every amount > 0."""
        value = self.data[name]
        if not isinstance(value, str):
            hint = ' (write amounts as strings: "1000")' if isinstance(value, int | float) else ""
            got = type_name(value)
            self.fail(name, f"expected a decimal or 0x-hex wei string, got {got}{hint}")
        amount = self._codec(name, parse_uint)
        if amount == 0:
            self.fail(name, "must be greater than 0")
        return amount

    def rate(self, name: str, *, zero_allowed: bool = False) -> Fraction:
        """A rational string; 0 < rate < 1 (or 0 <= rate < 1 with `zero_allowed`)."""
        value = self.data[name]
        if not isinstance(value, str):
            self.fail(name, f'expected a rational string like "1/5", got {type_name(value)}')
        rate = self._codec(name, parse_rational)
        if rate >= 1 or (rate == 0 and not zero_allowed):
            bounds = "0 <= rate < 1" if zero_allowed else "0 < rate < 1"
            self.fail(name, f"must be {bounds}, got {rate.numerator}/{rate.denominator}")
        return rate

    def address(self, name: str) -> bytes:
        return self._codec(name, parse_address)

    def integer(self, name: str) -> int:
        """A JSON integer in 0 .. 2^63 - 1 (Travis's int64 ids, heights and times)."""
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"expected an integer, got {type_name(value)}")
        if not 0 <= value <= INT64_MAX:
            self.fail(name, f"must be between 0 and {INT64_MAX}, got {value}")
        return value
