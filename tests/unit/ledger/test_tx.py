from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.ledger import crypto, encoding
from node.ledger import errors as E
from node.ledger.tx import TX_DOMAIN, decode_tx, make_tx

KEY = crypto.SigningKey.from_seed(b"\x07" * 32)


def test_round_trip_and_id() -> None:
    tx = make_tx(KEY, "c1", 1, "notary.anchor", {"digest": b"\x01" * 32, "meta": {"a": "b"}})
    again = decode_tx(tx.raw)
    assert again == tx
    assert tx.tx_id == crypto.sha256(tx.body)
    assert tx.signature_ok()
    assert crypto.verify(KEY.public_key, tx.signature, TX_DOMAIN + tx.body)
    assert not crypto.verify(KEY.public_key, tx.signature, tx.body)  # domain separation


def test_canonical_encoding_is_unique() -> None:
    a = encoding.pack({"b": 1, "a": [1, 2]})
    assert a == encoding.pack({"a": [1, 2], "b": 1})
    with pytest.raises(encoding.EncodingError):
        encoding.pack({"x": 1.5})
    # A map written with unsorted keys is not canonical and is refused.
    import msgpack

    unsorted = msgpack.packb({"b": 1, "a": 2}, use_bin_type=True)
    with pytest.raises(encoding.EncodingError):
        encoding.unpack(unsorted)


def test_forged_signature_detected() -> None:
    tx = make_tx(KEY, "c1", 1, "record.put", {"ns": "n", "key": "k", "value": "v"})
    other = crypto.SigningKey.from_seed(b"\x08" * 32)
    forged_raw = encoding.pack([tx.body, other.sign(TX_DOMAIN + tx.body)])
    assert not decode_tx(forged_raw).signature_ok()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\xc1", E.MALFORMED),
        (encoding.pack([b"x"]), E.MALFORMED),
        (encoding.pack([b"x", b"y" * 64]), E.MALFORMED),
        (encoding.pack([b"x", b"y"]), E.BAD_SIGNATURE),
        (b"\x00" * 20000, E.TOO_LARGE),
    ],
)
def test_malformed(raw: bytes, code: str) -> None:
    with pytest.raises(E.TxInvalid) as info:
        decode_tx(raw)
    assert info.value.code == code


def _signed(body: dict) -> bytes:
    b = encoding.pack(body)
    return encoding.pack([b, KEY.sign(TX_DOMAIN + b)])


BASE = {
    "v": 1,
    "chain_id": "c",
    "sender": KEY.public_key,
    "nonce": 1,
    "type": "record.put",
    "args": {"ns": "n", "key": "k", "value": 1},
}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"nonce": 0}, E.MALFORMED),
        ({"nonce": True}, E.MALFORMED),
        ({"v": 2}, E.MALFORMED),
        ({"sender": b"short"}, E.MALFORMED),
        ({"type": "nope"}, E.UNKNOWN_TYPE),
        ({"args": {"ns": "n"}}, E.BAD_ARGS),
        ({"args": {"ns": "n", "key": "k", "value": 1, "extra": 1}}, E.BAD_ARGS),
        ({"type": "item.transfer", "args": {"item": "i", "to": b"x"}}, E.BAD_ARGS),
        ({"type": "item.register", "args": {"item": "a\nb"}}, E.BAD_ARGS),
        ({"type": "account.grant", "args": {"account": b"k" * 32, "roles": ["king"]}}, E.BAD_ARGS),
    ],
)
def test_structural_rules(change: dict, code: str) -> None:
    with pytest.raises(E.TxInvalid) as info:
        decode_tx(_signed({**BASE, **change}))
    assert info.value.code == code


@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        decode_tx(data)
    except E.TxInvalid:
        pass
