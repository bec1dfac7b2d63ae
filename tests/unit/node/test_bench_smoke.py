"""The benchmark's pieces work, and its speed-ups change no byte.

- the fast canonical encoder gives exactly the bytes and verdicts of the plain reference
  implementation it replaced (hypothesis over arbitrary values and arbitrary msgpack);
- scripts/bench's workload signs valid transactions, its statistics and report writer work.
No speed is asserted anywhere.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.ledger import encoding
from node.ledger.tx import decode_tx

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = ROOT / "scripts"


def _load(name: str) -> Any:
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- the reference canonical encoding (the original, plain implementation) --------------------


def _ref_normalise(value: Any, depth: int) -> Any:
    if depth > encoding.MAX_DEPTH:
        raise encoding.EncodingError("depth")
    if value is None or isinstance(value, bool | bytes | str):
        return value
    if isinstance(value, int):
        if not encoding.INT_MIN <= value <= encoding.INT_MAX:
            raise encoding.EncodingError("int")
        return value
    if isinstance(value, list | tuple):
        return [_ref_normalise(v, depth + 1) for v in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise encoding.EncodingError("key")
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return {k: _ref_normalise(value[k], depth + 1) for k in keys}
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise encoding.EncodingError("type")


def ref_pack(value: Any) -> bytes:
    return msgpack.packb(_ref_normalise(value, 0), use_bin_type=True)


def ref_unpack_ok(data: bytes) -> bool:
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception:
        return False
    try:
        return ref_pack(value) == data
    except encoding.EncodingError:
        return False


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args))
    except encoding.EncodingError:
        return ("error", None)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.binary(max_size=8)
    | st.text(max_size=6)
    | st.floats(allow_nan=False)
)
keys = st.text(max_size=4) | st.sampled_from(["a", "b", "é", "z", "\U0001f600", "A", ""])
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(keys | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_pack_gives_the_reference_bytes_and_verdicts(value: Any) -> None:
    assert outcome(encoding.pack, value) == outcome(ref_pack, value)


@settings(max_examples=400, deadline=None)
@given(values)
def test_unpack_accepts_exactly_what_the_reference_accepts(value: Any) -> None:
    # Raw msgpack of arbitrary values: unsorted maps, floats, non-str keys, big ints ...
    try:
        data = msgpack.packb(value, use_bin_type=True)
    except (OverflowError, TypeError, ValueError):
        return
    expected = ref_unpack_ok(data)
    got = outcome(encoding.unpack, data)
    assert (got[0] == "ok") == expected
    if expected:
        assert encoding.pack(got[1]) == data


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [31, 32, 33, 34])
@pytest.mark.parametrize("leaf", [1, b"x", None, [], {}, bytearray(b"y")])
def test_depth_limit_is_where_it_was(depth: int, leaf: Any) -> None:
    value = _nested(depth, leaf)
    assert outcome(encoding.pack, value) == outcome(ref_pack, value)
    data = msgpack.packb(_ref_normalise(_nested(min(depth, 30), leaf), 0), use_bin_type=True)
    assert (outcome(encoding.unpack, data)[0] == "ok") == ref_unpack_ok(data)


def test_extension_types_duplicates_and_subclasses() -> None:
    ext = msgpack.packb(msgpack.ExtType(5, b"abc"))
    assert outcome(encoding.unpack, ext)[0] == "error"
    duplicate = b"\x82\xa1a\x01\xa1a\x02"  # {"a": 1, "a": 2}
    assert outcome(encoding.unpack, duplicate)[0] == "error"
    unsorted = b"\x82\xa1b\x01\xa1a\x02"
    assert outcome(encoding.unpack, unsorted)[0] == "error"

    class Key(str):
        pass

    class Number(int):
        pass

    value = {Key("b"): Number(3), "a": (1, memoryview(b"m"))}
    assert encoding.pack(value) == ref_pack(value)
    assert encoding.pack({"b": 1, "a": 2}) == encoding.pack({"a": 2, "b": 1})


# --- the benchmark's own pieces ----------------------------------------------------------------


def test_presigned_mix_is_valid_and_nonce_ordered() -> None:
    workload = _load("bench_workload")
    signed = workload.presign(
        run_seed=3, chain_id="bench-test", accounts=4, per_account=30, processes=1
    )
    kinds = set()
    for index, txs in enumerate(signed):
        assert [t.nonce for t in txs] == list(range(1, 31))
        for t in txs:
            tx = decode_tx(t.raw)
            assert tx.signature_ok()
            assert tx.tx_id == t.tx_id and tx.sender == workload.account_key(3, index).public_key
            kinds.add(tx.type)
    assert kinds == {kind for _, kind in workload.MIX}
    streams = workload.node_streams(signed, 3)
    assert sum(len(s) for s in streams) == 120
    for node, stream in enumerate(streams):
        assert all(t.sender_index % 3 == node for t in stream)
    order = [t for _, t in workload.interleave(streams)]
    assert len(order) == 120 and len({t.tx_id for t in order}) == 120


def test_statistics_and_report_writer(tmp_path: Path) -> None:
    report = _load("bench_report")
    assert report.percentiles([], (50,)) == {}
    values = list(range(1, 101))
    assert report.percentiles(values, (50, 99, 100)) == {"p50": 50, "p99": 99, "p100": 100}
    assert report.slope_per_s([0, 1, 2, 3], [10, 12, 14, 16]) == pytest.approx(2.0)
    assert report.slope_per_s([1], [5]) == 0.0
    run = {
        "command": "scripts/bench --quick",
        "date": "2026-01-01 00:00",
        "machine": {"cores": 2, "cpu": "test", "python": "3.11", "memory_gb": 1},
        "validators": 1,
        "accounts": 4,
        "mix": "100% notary.anchor",
        "verify_per_s": {
            "facade": 9000,
            "facade_backend": "x",
            "cryptography": 9000,
            "libsodium": None,
        },
        "ceiling_tps": 18000,
        "latency": [
            {
                "offered_tps": 100,
                "duration_s": 2,
                "txs": 200,
                "latency_ms": {"p50": 1, "p95": 2, "p99": 3, "p100": 4},
                "missing": 0,
                "refused": {},
            }
        ],
    }
    path = tmp_path / "b.json"
    report.save_results(path, {"quick": run})
    loaded = report.load_results(path)
    assert loaded["quick"]["ceiling_tps"] == 18000
    text = report.render(loaded, ["# Benchmarks", ""])
    assert "scripts/bench --quick" in text and "**3**" in text
