"""Params accessors: right types through, everything else a -32602 with a precise message."""

from __future__ import annotations

import pytest

from node.rpc import InvalidParamsError, Params
from node.rpc.errors import INVALID_PARAMS


def named(**values: object) -> Params:
    return Params("block_get", dict(values))


def fails(fragment: str):
    return pytest.raises(InvalidParamsError, match=fragment)


def test_required_and_optional() -> None:
    params = named(height=5, label=None)
    assert params.int("height") == 5
    assert params.int("missing", default=None) is None
    assert params.int("label", default=7) == 7  # null counts as absent when optional
    with pytest.raises(InvalidParamsError) as missing:
        params.int("depth")
    assert (
        missing.value.message == "invalid params for block_get: missing required parameter 'depth'"
    )
    with fails(r"'label' must be an integer \(got null\)"):
        params.int("label")
    with pytest.raises(InvalidParamsError) as caught:
        params.str("missing")
    assert caught.value.code == INVALID_PARAMS


def test_int_bounds_and_types() -> None:
    params = named(a=-1, b=5.0, c=5.5, d=True, e="5", f=10**30)
    assert params.int("a") == -1
    assert params.int("b") == 5 and isinstance(params.int("b"), int)
    assert params.int("f") == 10**30
    with fails(r"'a' must be an integer >= 0 \(got -1\)"):
        params.int("a", min=0)
    with fails(r"'f' must be an integer <= 100"):
        params.int("f", max=100)
    with fails(r"'c' must be an integer \(got 5.5\)"):
        params.int("c")
    with fails(r"'d' must be an integer \(got true\)"):
        params.int("d")
    with fails(r"'e' must be an integer \(got '5'\)"):
        params.int("e")


def test_str_float_bool() -> None:
    params = named(name="ab", long="x" * 100, n=1, flag=False, ratio=0.5)
    assert params.str("name", min_length=2, max_length=2) == "ab"
    with fails(r"'long' must have at most 10 characters \(got 100\)"):
        params.str("long", max_length=10)
    with fails(r"'name' must have at least 3 characters"):
        params.str("name", min_length=3)
    with fails(r"'n' must be a string \(got 1\)"):
        params.str("n")
    assert params.bool("flag") is False
    assert params.bool("absent", default=True) is True
    with fails(r"'n' must be true or false \(got 1\)"):
        params.bool("n")
    assert params.float("ratio", min=0.0, max=1.0) == 0.5
    assert params.float("n") == 1.0
    with fails(r"'flag' must be a number"):
        params.float("flag")
    with fails(r"'ratio' must be >= 1"):
        params.float("ratio", min=1)


def test_hex_bytes() -> None:
    digest = bytes(range(32))
    params = named(
        d=digest.hex(),
        upper="0X" + digest.hex().upper(),
        short="abcd",
        odd="abc",
        bad="zz" * 32,
        spaced="ab cd",
        empty="",
        number=5,
    )
    assert params.hex_bytes("d", length=32) == digest
    assert params.hex_bytes("upper", length=32) == digest
    assert params.hex_bytes("empty") == b""
    with fails(r"'short' must be 32 bytes \(64 hex digits\) \(got 2 bytes, 4 hex digits\)"):
        params.hex_bytes("short", length=32)
    with fails(r"'odd' must be bytes as hex digits \(got 'abc'\)"):
        params.hex_bytes("odd")
    with fails(r"'bad' must be 32 bytes \(64 hex digits\) as hex digits"):
        params.hex_bytes("bad", length=32)
    with fails(r"'spaced' must be bytes as hex digits"):
        params.hex_bytes("spaced")
    with fails(r"'number' must be bytes as a hex string \(got 5\)"):
        params.hex_bytes("number")
    with fails(r"'d' must be at most 8 bytes \(got 32\)"):
        params.hex_bytes("d", max_length=8)
    assert params.hex_bytes("absent", default=None) is None


def test_dict_list_raw_has_only() -> None:
    params = named(obj={"k": 1}, items=[1, 2, 3], text="t")
    assert params.dict("obj") == {"k": 1}
    assert params.list("items", max_length=3) == [1, 2, 3]
    with fails(r"'items' must have at most 2 items \(got 3\)"):
        params.list("items", max_length=2)
    with fails(r"'text' must be an object \(got 't'\)"):
        params.dict("text")
    with fails(r"'obj' must be an array \(got an object\)"):
        params.list("obj")
    assert params.raw("text") == "t"
    assert params.has("obj") and not params.has("nothing") and not params.has(0)
    params.only("obj", "items", "text")
    with fails(r"unknown parameter 'text'; accepted: obj, items"):
        params.only("obj", "items")


def test_positional_params() -> None:
    params = Params("tx_get", ["ab", 3])
    assert params.str(0) == "ab" and params.int(1) == 3
    assert params.int(2, default=None) is None
    with fails(r"parameter 1 must be a string \(got 3\)"):
        params.str(1)
    with fails(r"takes named params \(an object\), not an array \(no 'id'\)"):
        params.str("id")
    with fails(r"expected an array of positional params, got an object"):
        named(a=1).raw(0)


def test_declared_names_map_arrays_and_refuse_unknowns() -> None:
    names = ("height", "verbose")
    mapped = Params.for_method("block_get", [7], names)
    assert mapped.value == {"height": 7}
    assert mapped.bool("verbose", default=False) is False
    with fails(r"takes at most 2 positional parameters \(height, verbose\), got 3"):
        Params.for_method("block_get", [1, 2, 3], names)
    with fails(r"unknown parameter 'hieght'; accepted: height, verbose"):
        Params.for_method("block_get", {"hieght": 1}, names)
    with fails(r"unknown parameter 'x'; accepted: no parameters"):
        Params.for_method("node_status", {"x": 1}, ())
    assert Params.for_method("node_status", None, ()).value == {}


def test_long_bad_values_are_shortened_in_messages() -> None:
    with pytest.raises(InvalidParamsError) as caught:
        named(n="y" * 10_000).int("n")
    assert len(caught.value.message) < 120
    assert "..." in caught.value.message
