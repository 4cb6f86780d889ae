"""Our string library against Python's own string operations (Hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evm.eni import EniError, run

texts = st.text(max_size=40)
small = st.text(alphabet="ab\u00e9\U0001f600", max_size=6)
fast = settings(max_examples=60, deadline=None)


def call(function: str, *args: object) -> tuple[str, int]:
    result, gas = run(function, json.dumps(args))
    (value,) = json.loads(result)
    return value, gas


def expected_gas(args: tuple[object, ...], result: str) -> int:
    return 10 * (sum(len(str(a).encode()) for a in args) + len(result.encode()))


def check(function: str, args: tuple[object, ...], expected: str) -> None:
    assert call(function, *args) == (expected, expected_gas(args, expected))


@fast
@given(texts)
def test_upper_lower_map_ascii_letters_only(s: str) -> None:
    check("upper", (s,), "".join(c.upper() if c.isascii() else c for c in s))
    check("lower", (s,), "".join(c.lower() if c.isascii() else c for c in s))


@fast
@given(texts, texts)
def test_concat(a: str, b: str) -> None:
    check("concat", (a, b), a + b)


@fast
@given(texts, st.integers(0, 50), st.integers(0, 50))
def test_substr_counts_code_points(s: str, start: int, length: int) -> None:
    check("substr", (s, start, length), s[start : start + length])


@fast
@given(small, small)
def test_index_of(s: str, sub: str) -> None:
    check("indexOf", (s, sub), str(s.find(sub)))


@fast
@given(small, small.filter(bool))
def test_split(s: str, sep: str) -> None:
    value, gas = call("split", s, sep)
    assert json.loads(value) == s.split(sep)
    assert gas == expected_gas((s, sep), value)


@fast
@given(small, small, small)
def test_replace(s: str, old: str, new: str) -> None:
    check("replace", (s, old, new), s.replace(old, new))


@fast
@given(texts)
def test_length_in_code_points(s: str) -> None:
    check("length", (s,), str(len(s)))


@fast
@given(
    st.integers(-(1 << 255), (1 << 255) - 1),
    st.sampled_from(["", "+", "-"]),
    st.integers(0, 3),
)
def test_to_int(n: int, sign: str, zeros: int) -> None:
    text = ("-" if n < 0 else sign) + "0" * zeros + str(abs(n))
    check("toInt", (text,), str(int(text)))


@fast
@given(st.integers(-(1 << 255), (1 << 256) - 1))
def test_from_int(n: int) -> None:
    check("fromInt", (n,), str(n))


@pytest.mark.parametrize(
    "function, args",
    [
        ("toInt", ("",)),
        ("toInt", (" 1",)),
        ("toInt", ("1_000",)),
        ("toInt", ("\u0661",)),  # Arabic-Indic digit: Python's int() would take it
        ("toInt", (str(1 << 255),)),
        ("toInt", ("9" * 5000,)),
        ("fromInt", (1 << 256,)),
        ("fromInt", ("1",)),
        ("split", ("a", "")),
        ("substr", ("abc", -1, 1)),
        ("replace", ("a" * 1000, "a", "b" * 2000)),  # result too large
        ("upper", ("\udcff",)),  # raw non-UTF-8 byte
        ("concat", ("a",)),
    ],
)
def test_errors(function: str, args: tuple[object, ...]) -> None:
    with pytest.raises(EniError):
        call(function, *args)


def test_non_utf8_argument_from_the_vm_is_rejected() -> None:
    with pytest.raises(EniError):
        run("length", '["\udcff"]')
