"""Our JSON-path library against Python's json module and plain dict/list navigation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evm.eni import EniError, run

keys = st.text(
    st.characters(blacklist_characters=".[]", blacklist_categories=["Cs"]), min_size=1, max_size=5
)
scalars = st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
fast = settings(max_examples=60, deadline=None)


def call(function: str, *args: object) -> tuple[str, int]:
    result, gas = run(function, json.dumps(args))
    (value,) = json.loads(result)
    assert gas == 10 * (sum(len(str(a).encode()) for a in args) + len(value.encode()))
    return value, gas


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    names = {dict: "object", list: "array", str: "string", int: "number", type(None): "null"}
    return names[type(value)]


@st.composite
def located(draw: st.DrawFn) -> tuple[Any, str, list[Any]]:
    """A document, the text of a path into it, and the steps of that path."""
    document = draw(values)
    node, path = document, ""
    steps: list[Any] = []
    while draw(st.booleans()) and isinstance(node, dict | list) and node:
        if isinstance(node, dict):
            key = draw(st.sampled_from(sorted(node)))
            path += ("." if path else "") + key
            node = node[key]
            steps.append(key)
        else:
            index = draw(st.integers(0, len(node) - 1))
            path += f"[{index}]"
            node = node[index]
            steps.append(index)
    return document, path, steps


def walk(document: Any, steps: list[Any]) -> Any:
    for step in steps:
        document = document[step]
    return document


@fast
@given(located())
def test_get_type_length(case: tuple[Any, str, list[Any]]) -> None:
    document, path, steps = case
    data = json.dumps(document)
    expected = walk(document, steps)
    value, _ = call("json_get", data, path)
    assert value == expected if isinstance(expected, str) else json.loads(value) == expected
    assert call("json_type", data, path)[0] == type_name(expected)
    if isinstance(expected, dict | list | str):
        assert call("json_length", data, path)[0] == str(len(expected))
    else:
        with pytest.raises(EniError):
            call("json_length", data, path)


@fast
@given(located(), values)
def test_set_replaces(case: tuple[Any, str, list[Any]], new: Any) -> None:
    document, path, steps = case
    expected = copy.deepcopy(new)
    if steps:
        expected = copy.deepcopy(document)
        walk(expected, steps[:-1])[steps[-1]] = new
    value, _ = call("json_set", json.dumps(document), path, json.dumps(new))
    assert json.loads(value) == expected


def test_set_adds_keys_and_appends() -> None:
    assert call("json_set", '{"a": [1]}', "a[1]", "2")[0] == '{"a":[1,2]}'
    assert call("json_set", '{"a": [1]}', "b", '"x\\n"')[0] == '{"a":[1],"b":"x\\u000A"}'
    for path in ["a[3]", "a.b", "c.d"]:
        with pytest.raises(EniError):
            call("json_set", '{"a": [1]}', path, "0")


def test_numbers_keep_their_text() -> None:
    assert call("json_get", '{"a": [1.50, 1e400, -0]}', "a")[0] == "[1.50,1e400,-0]"
    assert call("json_type", '{"a": 1.5}', "a")[0] == "number"


def test_paths() -> None:
    doc = '[{"x": [[0, {"y": true}]]}]'
    assert call("json_get", doc, "[0].x[0][1].y")[0] == "true"
    assert call("json_get", doc, "")[0] == '[{"x":[[0,{"y":true}]]}]'


@pytest.mark.parametrize(
    "data, path",
    [
        ('{"a": 1}', "b"),
        ('{"a": 1}', "a..b"),
        ('{"a": 1}', ".a"),
        ('{"a": [1]}', "a[1]"),
        ('{"a": [1]}', "a[x]"),
        ('{"a": [1]}', "a.[0]"),
        ("[1]", "a"),
        ("{", ""),
        ("NaN", ""),
        ("[" * 200 + "]" * 200, ""),
    ],
)
def test_errors(data: str, path: str) -> None:
    with pytest.raises(EniError):
        call("json_get", data, path)
