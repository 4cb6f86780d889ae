"""Our JSON library (beyond Travis, SPEC §9): read and update a JSON document by path.

| function | arguments | result |
|---|---|---|
| json_get | data, path | the value: a string's content, anything else as compact JSON text |
| json_type | data, path | object, array, string, number, bool or null |
| json_length | data, path | element count of an array/object, code points of a string |
| json_set | data, path, value_json | the whole document, compact, with value_json stored at path |

A path is ``""`` (the root) or dot-separated keys each followed by any number of ``[index]``:
``a.b[2]``, ``[0].name``, ``m[1][0]``.  ``json_set`` replaces an existing member or element,
adds a missing object key (at the end) or appends when the index equals the array length.

Determinism choices: numbers are kept as their source text (no float rounding, ``1e400`` stays
``1e400``), ``NaN``/``Infinity`` are rejected, duplicate keys keep the last value, nesting is
limited to ``MAX_DEPTH`` (so the result never depends on the interpreter's recursion limit), and
output uses the ENI string escaping (``escape_json_string``).  Gas is ``size_gas``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from evm.eni.convention import EniError, Library, escape_json_string, sized_library

MAX_DEPTH = 128  # json_set may stack two of these: dump() stays far below the recursion limit


@dataclass(frozen=True)
class Number:
    """A JSON number as written in the source."""

    text: str


Step = str | int
_SEGMENT = re.compile(r"([^.\[\]]*)((?:\[[0-9]{1,9}\])*)")
_INDEX = re.compile(r"\[([0-9]+)\]")


def _reject_constant(name: str) -> None:
    raise EniError(f"json: {name} is not JSON")


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside strings (a linear pre-check before the recursive parser)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def load(text: str) -> Any:
    if _nesting_depth(text) > MAX_DEPTH:
        raise EniError("json: nested too deeply")
    try:
        return json.loads(
            text, parse_int=Number, parse_float=Number, parse_constant=_reject_constant
        )
    except ValueError as exc:
        raise EniError("json: invalid document") from exc


def dump(value: Any) -> str:
    """Compact JSON text (no spaces) with ENI string escaping."""
    if isinstance(value, dict):
        members = (escape_json_string(k) + ":" + dump(v) for k, v in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(dump, value)) + "]"
    if isinstance(value, str):
        return escape_json_string(value)
    if isinstance(value, Number):
        return value.text
    if value is None:
        return "null"
    return "true" if value else "false"


def parse_path(path: str) -> list[Step]:
    if path == "":
        return []
    steps: list[Step] = []
    for position, part in enumerate(path.split(".")):
        match = _SEGMENT.fullmatch(part)
        # Only the first segment may be index-only ("[0].a"); "a..b" and "" segments are errors.
        if match is None or not (match.group(1) or (position == 0 and match.group(2))):
            raise EniError(f"json: bad path {path!r}")
        if match.group(1):
            steps.append(match.group(1))
        steps.extend(int(index) for index in _INDEX.findall(match.group(2)))
    return steps


def _step(value: Any, step: Step) -> Any:
    if isinstance(step, str):
        if not isinstance(value, dict) or step not in value:
            raise EniError(f"json: no member {step!r}")
        return value[step]
    if not isinstance(value, list) or step >= len(value):
        raise EniError(f"json: no element [{step}]")
    return value[step]


def lookup(data: str, path: str) -> Any:
    value = load(data)
    for step in parse_path(path):
        value = _step(value, step)
    return value


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", Number: "number", bool: "bool"}
    return "null" if value is None else names[type(value)]


def _json_get(data: str, path: str) -> str:
    value = lookup(data, path)
    return value if isinstance(value, str) else dump(value)


def _json_type(data: str, path: str) -> str:
    return _type_name(lookup(data, path))


def _json_length(data: str, path: str) -> str:
    value = lookup(data, path)
    if not isinstance(value, dict | list | str):
        raise EniError("json_length: value has no length")
    return str(len(value))


def _store(parent: Any, step: Step, new: Any) -> None:
    if isinstance(step, str):
        if not isinstance(parent, dict):
            raise EniError(f"json_set: cannot set member {step!r} of a non-object")
        parent[step] = new
    elif isinstance(parent, list) and step <= len(parent):
        parent[step : step + 1] = [new]  # replaces, or appends when step == len
    else:
        raise EniError(f"json_set: cannot set element [{step}]")


def _json_set(data: str, path: str, value_json: str) -> str:
    root = load(data)
    new = load(value_json)
    steps = parse_path(path)
    if not steps:
        return dump(new)
    parent = root
    for step in steps[:-1]:
        parent = _step(parent, step)
    _store(parent, steps[-1], new)
    return dump(root)


LIBRARIES: dict[str, Library] = {
    "json_get": sized_library("json_get", (str, str), _json_get),
    "json_type": sized_library("json_type", (str, str), _json_type),
    "json_length": sized_library("json_length", (str, str), _json_length),
    "json_set": sized_library("json_set", (str, str, str), _json_set),
}
