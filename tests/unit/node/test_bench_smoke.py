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

from node.daemon.config import load_config
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
    run["idle"] = {"seconds": 10.0, "blocks": 5, "cores": 0.05, "node_cpu_s": 0.5}
    lat = {"p50": 90.0, "p99": 200.0}
    run["round_cost"] = {
        "rate_tps": 50.0,
        "idle_cores": 0.05,
        "runs": [
            {
                "batch_ms": 300,
                "offered_tps": 50,
                "blocks_per_s": 3.0,
                "node_cores": 0.3,
                "latency_ms": lat,
            },
            {
                "batch_ms": 100,
                "offered_tps": 50,
                "blocks_per_s": 8.0,
                "node_cores": 0.45,
                "latency_ms": lat,
            },
        ],
        "block_round_ms": 30.0,
        "block_round_ms_per_validator": 7.5,
        "tx_us": 200.0,
    }
    path = tmp_path / "b.json"
    report.save_results(path, {"quick": run})
    loaded = report.load_results(path)
    assert loaded["quick"]["ceiling_tps"] == 18000
    text = report.render(loaded, ["# Benchmarks", ""])
    assert "scripts/bench --quick" in text and "**3**" in text
    assert "one block round costs 30.0 ms of CPU over all validators (7.5 ms each)" in text
    assert "| 300 | 50 | 3.0 | 0.300 |" in text


# --- the signature facade: libsodium and OpenSSL give the same verdict ------------------------
# A little Ed25519 arithmetic (RFC 8032) to build the edge cases where the libraries' own
# rules differ: small-order keys and R, mixed-order keys, non-canonical encodings, S >= L.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, _P - 2, _P) % _P,
        (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P) % _P,
    )


def _mul(k: int, point: tuple[int, int]) -> tuple[int, int]:
    out = (0, 1)
    for _ in range(256):  # bounded: k < 2^256
        if not k:
            break
        if k & 1:
            out = _add(out, point)
        point = _add(point, point)
        k >>= 1
    return out


def _x(y: int, sign: int) -> int:
    xx = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    return _P - x if x % 2 != sign else x


def _enc(point: tuple[int, int]) -> bytes:
    return (point[1] | ((point[0] & 1) << 255)).to_bytes(32, "little")


def _dec(data: bytes) -> tuple[int, int]:
    y = int.from_bytes(data, "little") & ((1 << 255) - 1)
    return (_x(y, data[31] >> 7), y)


_BASE = (_x(4 * pow(5, _P - 2, _P) % _P, 0), 4 * pow(5, _P - 2, _P) % _P)
_T8 = _dec(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))


def _h(*parts: bytes) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little") % _L


def _sign_raw(a: int, public: bytes, message: bytes, r_extra: tuple[int, int] | None) -> bytes:
    r = _h(b"nonce", message)
    big_r = _mul(r, _BASE) if r_extra is None else _add(_mul(r, _BASE), r_extra)
    s = (r + _h(_enc(big_r), public, message) * a) % _L
    return _enc(big_r) + s.to_bytes(32, "little")


def _edge_vectors() -> list[tuple[bytes, bytes, bytes]]:
    from node.ledger import crypto

    key = crypto.SigningKey.from_seed(bytes(range(32)))
    message = b"chain-tx-v1\x00edge"
    good = key.sign(message)
    out = [(key.public_key, good, message)]
    identity = _enc((0, 1))
    small = [bytes.fromhex(h) for h in ("00" * 32, "01" + "00" * 31)] + [_enc(_T8)]
    small += [_enc(_mul(k, _T8)) for k in range(1, 8)]
    small += [s[:31] + bytes((s[31] | 0x80,)) for s in small]  # sign bit set
    for point in small:
        out.append((point, identity + bytes(32), message))  # R = O, S = 0
        out.append((point, point + bytes(32), message))
        out.append((key.public_key, point + good[32:], message))
    for y in range(_P, 2**255):  # the 19 non-canonical encodings of a public key
        for sign in (0, 0x80):
            raw = bytearray(y.to_bytes(32, "little"))
            raw[31] |= sign
            out.append((bytes(raw), identity + bytes(32), message))
    s = int.from_bytes(good[32:], "little")
    if s + _L < 2**256:
        out.append((key.public_key, good[:32] + (s + _L).to_bytes(32, "little"), message))
    a = 0x1234567890ABCDEF % _L
    pub = _enc(_mul(a, _BASE))
    r = _h(b"r", message)
    # Only the key is of small order (identity): sB - hA = rB = R holds for any message.
    out.append((identity, _enc(_mul(r, _BASE)) + r.to_bytes(32, "little"), message))
    # Only R is of small order (identity): s = h * a makes sB - hA = O = R.
    h = _h(identity, pub, message)
    out.append((pub, identity + (h * a % _L).to_bytes(32, "little"), message))
    mixed = _enc(_add(_mul(a, _BASE), _T8))  # a key with a torsion component
    for i in range(24):
        m = b"mixed %d" % i
        out.append((mixed, _sign_raw(a, mixed, m, None), m))
        out.append((pub, _sign_raw(a, pub, m, _T8), m))  # R with a torsion component
    return out


def test_libsodium_and_openssl_paths_agree_on_edge_cases() -> None:
    pytest.importorskip("nacl")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from node.ledger import crypto

    def raw_openssl(pk: bytes, sig: bytes, msg: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        except (InvalidSignature, ValueError):
            return False
        return True

    vectors = _edge_vectors()
    verdicts = [crypto.verify_sodium(*v) for v in vectors]
    assert verdicts == [crypto.verify_openssl(*v) for v in vectors]
    assert verdicts[0] is True and 0 < sum(verdicts) < len(vectors)
    # ... and the pre-checks matter: plain OpenSSL accepts some of what libsodium refuses.
    assert any(raw_openssl(*v) and not ok for v, ok in zip(vectors, verdicts, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 95), st.binary(max_size=40))
def test_libsodium_and_openssl_paths_agree_on_corruptions(
    seed: bytes, flip: int, message: bytes
) -> None:
    pytest.importorskip("nacl")
    from node.ledger import crypto

    key = crypto.SigningKey.from_seed(seed)
    blob = bytearray(key.public_key + key.sign(message))
    for candidate in (bytes(blob), None):
        if candidate is None:
            blob[flip] ^= 1 << (flip % 8)
            candidate = bytes(blob)
        pk, sig = candidate[:32], candidate[32:]
        assert crypto.verify_sodium(pk, sig, message) == crypto.verify_openssl(pk, sig, message)


# --- each node verifies each signature once ------------------------------------------------------


def _chain_node(tmp_path: Path, accounts: dict[str, Any]) -> Any:
    from support.chainkit import make_genesis, open_store

    from node.daemon.chain import Chain
    from node.daemon.mempool import Mempool

    genesis = make_genesis(accounts)
    store = open_store(tmp_path / "db", genesis)
    mempool = Mempool(
        chain_id=genesis.chain_id, account_of=lambda pk: store.get_state_obj(b"acct/" + pk)
    )
    return Chain(genesis, store, mempool)


def _count_verifies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from node.ledger import crypto

    calls = [0]
    real = crypto.verify

    def counting(public_key: bytes, signature: bytes, message: bytes) -> bool:
        calls[0] += 1
        return real(public_key, signature, message)

    monkeypatch.setattr(crypto, "verify", counting)
    return calls


async def test_admission_proposal_and_commit_verify_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.ledger import Account

    accounts = {"admin": Account("admin", 1), "maker": Account("maker", 2)}
    leader = _chain_node(tmp_path / "a", accounts)
    backup = _chain_node(tmp_path / "b", accounts)
    maker = accounts["maker"]
    raws = [maker.tx("notary.anchor", {"digest": bytes([i]) * 32}).raw for i in range(10)]
    calls = _count_verifies(monkeypatch)
    assert all(o.error is None for o in await leader.submit_raw(raws))
    assert calls[0] == 10
    block = leader.build_proposal(0, 0)
    # The backup has seen none of them: prepare_payloads checks them off the loop, validate and
    # commit check nothing again, and the same txs arriving later by gossip are not re-verified.
    await backup.prepare_payloads([block.payload])
    assert calls[0] == 20
    assert backup.validate(1, block.payload, view=0, leader=0)
    outcomes = await backup.submit_raw(raws[:3])
    assert [o.error for o in outcomes] == [None] * 3
    await backup.commit(block.payload, b"cert")
    await leader.commit(block.payload, b"cert")
    assert calls[0] == 20
    assert backup.store.head == leader.store.head


async def test_a_pending_tx_id_with_a_forged_signature_is_refused(tmp_path: Path) -> None:
    import dataclasses

    from support.chainkit import next_block
    from support.ledger import Account

    from node.ledger import encoding
    from node.ledger.tx import decode_tx

    accounts = {"admin": Account("admin", 1), "maker": Account("maker", 2)}
    node = _chain_node(tmp_path, accounts)
    good = accounts["maker"].tx("notary.anchor", {"digest": b"\x07" * 32})
    assert (await node.submit_raw([good.raw]))[0].error is None
    forged = decode_tx(encoding.pack([good.body, b"\x01" * 64]))
    assert forged.tx_id == good.tx_id and forged.tx_id in node.mempool
    assert dataclasses.replace(good, signature=b"\x01" * 64).verdict is None
    block = next_block(node.store, [forged], timestamp_ms=node.clock_ms())
    assert not node.validate(1, block.payload, view=0, leader=0)
    block = next_block(node.store, [good], timestamp_ms=node.clock_ms())
    assert node.validate(1, block.payload, view=0, leader=0)


async def test_committed_tx_reads_one_tx_of_a_stored_block(tmp_path: Path) -> None:
    from support.ledger import Account

    accounts = {"admin": Account("admin", 1), "maker": Account("maker", 2)}
    node = _chain_node(tmp_path, accounts)
    raws = [
        accounts["maker"].tx("notary.anchor", {"digest": bytes([i]) * 32}).raw for i in range(5)
    ]
    assert all(o.error is None for o in await node.submit_raw(raws))
    block = node.build_proposal(0, 0)
    await node.commit(block.payload, b"cert")
    node._decoded.clear()  # as on a long chain: the block is no longer cached
    for index, tx in enumerate(block.txs):
        got = node.committed_tx(1, index)
        assert got is not None and got.raw == tx.raw and got.tx_id == tx.tx_id
    assert node.committed_tx(1, 5) is None and node.committed_tx(1, -1) is None
    assert node.committed_tx(2, 0) is None


# --- the benchmark's phases against a real 1-validator testnet --------------------------------


def test_bench_phases_on_a_one_validator_testnet() -> None:
    """Grant, open loop, the block round cost (two restarts), saturation and the result
    check run end to end (a few seconds)."""
    net_mod = _load("bench_net")
    phases = _load("bench_phases")
    workload = _load("bench_workload")
    net = net_mod.bench_testnet(None, 1, prefix="bench-smoke")
    try:
        net.up()
        signed = workload.presign(
            run_seed=5, chain_id=net.chain_id, accounts=4, per_account=100, processes=1
        )
        keys = [workload.account_key(5, i).public_key for i in range(4)]
        phases.grant_accounts(net, keys, timeout_s=60)
        cursor = phases.StreamCursor.of(workload.node_streams(signed, 1))
        run = phases.open_loop(net, cursor, rate_tps=20, duration_s=2)
        assert run["txs"] == 40 and run["missing"] == 0 and not run["refused"]
        assert run["latency_ms"]["p50"] > 0 and run["drained"]
        cost = phases.round_cost(net, cursor, duration_s=2, idle_cores=0.0)
        assert [r["batch_ms"] for r in cost["runs"]] == [300, 100]
        assert all(r["missing"] == 0 and r["txs"] == 100 for r in cost["runs"])
        assert load_config(net.home(0)).consensus.batch_ms == 100  # left as the default
        sat = phases.saturate(net, cursor, warmup_s=0.5, window_s=2, in_flight_txs=40, batch_txs=20)
        assert not sat["refused"] and sat["committed_on_all_tps"] >= 0
        assert phases.drain(net, timeout_s=60)
        used = [t.tx_id for s, u in zip(cursor.streams, cursor.used, strict=True) for t in s[:u]]
        assert phases.check_results(net, used, sample=20) == {"committed": 20}
    finally:
        net.down()
    assert not net.dir.exists()
