"""Wire framing and the message codec: round trips, every kind of bad frame, and fuzzing."""

from __future__ import annotations

import struct
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wor_strategies import requests
from wormspace.impl.core import (
    Accept,
    Accepted,
    AcceptedRange,
    Acceptor,
    ChainReply,
    ChainRequest,
    Kind,
    Prepare,
    Promise,
    PromiseRange,
    ReadReply,
    SealReply,
    Status,
    TrimReply,
    WorId,
)
from wormspace.impl.core.codec import from_plain, to_plain
from wormspace.impl.core.messages import REQUEST_TYPES
from wormspace.impl.net import (
    MAX_FRAME,
    BadAuthentication,
    DecoderFailed,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    FrameTooShort,
    MalformedMessage,
    MalformedPayload,
    MessageDecoder,
    TruncatedFrame,
    encode_frame,
    encode_message,
)
from wormspace.impl.storage import DurableStore, MemoryStore

KEY = b"k" * 32
W = WorId(4, Kind.DATA, 2)
REPLIES = [
    Promise(Status.OK, W, (2, 1), (2, 1), (1, 1), b"v"),
    Accepted(Status.PREEMPTED, W, (2, 1), (3, 3)),
    ReadReply(Status.OK, W, (0, 0)),
    TrimReply(Status.OK, 4),
    SealReply(Status.OK, 2),
    PromiseRange(Status.TRIMMED, 4, 0, 2, (1, 1)),
    AcceptedRange(Status.OK, 4, 0, 1, (1, 1), (Accepted(Status.OK, WorId(4, Kind.DATA, 0), (1, 1), (1, 1)),)),
    ChainRequest(9, Prepare(0, W, (1, 1)), ((0, 0), b"x")),
    ChainReply(9, 2, Promise(Status.OK, W, (1, 1), (1, 1))),
]


def test_replies_and_chain_messages_round_trip() -> None:
    dec = MessageDecoder(KEY)
    stream = b"".join(encode_message(KEY, m) for m in REPLIES)
    assert dec.feed(stream) == REPLIES


@settings(max_examples=200, deadline=None)
@given(st.lists(requests, min_size=1, max_size=5), st.integers(1, 50))
def test_requests_round_trip_through_frames_in_any_chunking(reqs: list, chunk: int) -> None:
    stream = b"".join(encode_message(KEY, r) for r in reqs)
    dec = MessageDecoder(KEY, allowed=REQUEST_TYPES)
    got = []
    for i in range(0, len(stream), chunk):
        got += dec.feed(stream[i : i + chunk])
    dec.eof()
    assert got == reqs and dec.frames.buffered == 0


def test_wrong_key_and_altered_bytes_fail_authentication() -> None:
    frame = encode_message(KEY, Prepare(0, W, (1, 1)))
    with pytest.raises(BadAuthentication):
        FrameDecoder(b"x" * 32).feed(frame)
    for at in (4, 10, 36, len(frame) - 1):  # in the tag, and in the payload
        bad = bytearray(frame)
        bad[at] ^= 1
        with pytest.raises(BadAuthentication):
            FrameDecoder(KEY).feed(bytes(bad))


def test_oversized_length_fails_at_once_without_buffering_the_body() -> None:
    dec = FrameDecoder(KEY, max_frame=1000)
    with pytest.raises(FrameTooLarge, match="1001"):
        dec.feed(struct.pack(">I", 1001))
    with pytest.raises(DecoderFailed):
        dec.feed(b"more")
    with pytest.raises(FrameTooLarge):
        encode_frame(KEY, b"x" * 2000, max_frame=1000)


def test_too_short_and_truncated_frames() -> None:
    with pytest.raises(FrameTooShort):
        FrameDecoder(KEY).feed(struct.pack(">I", 31) + bytes(31))
    dec = FrameDecoder(KEY)
    frame = encode_frame(KEY, {"a": 1})
    assert dec.feed(frame[:-1]) == []
    with pytest.raises(TruncatedFrame):
        dec.eof()
    FrameDecoder(KEY).eof()  # a clean end is fine


def authentic(payload: bytes) -> bytes:
    """A correctly authenticated frame around arbitrary payload bytes (a hostile peer that
    knows the key, or a bug)."""
    import hashlib
    import hmac

    header = struct.pack(">I", 32 + len(payload))
    return header + hmac.new(KEY, header + payload, hashlib.sha256).digest() + payload


def test_authenticated_garbage_payloads_are_malformed() -> None:
    for payload in (b"", b"\xc1", msgpack.packb(1) + b"\x00", msgpack.packb(msgpack.ExtType(5, b"x")),
                    b"\x91" * 5000):  # deep nesting
        with pytest.raises(MalformedPayload):
            FrameDecoder(KEY).feed(authentic(payload))


def test_valid_msgpack_that_is_no_message_is_malformed_message() -> None:
    good = to_plain(Prepare(0, W, (1, 1)))
    cases = [
        [1, 2],
        {"t": "nope"},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "ballot"},
        {**good, "ballot": [0, 0]},
        {**good, "ballot": [1, -1]},
        {**good, "epoch": 1.5},
        {**good, "wor": [1, "data"]},
        {**good, "wor": [1, "meta", 3]},
        {**good, "ballot": [True, 1]},
    ]
    for obj in cases:
        with pytest.raises(MalformedMessage):
            MessageDecoder(KEY).feed(authentic(msgpack.packb(obj, use_bin_type=True)))
    with pytest.raises(MalformedMessage, match="unexpected"):
        MessageDecoder(KEY, allowed=REQUEST_TYPES).feed(encode_message(KEY, REPLIES[0]))


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(b"short")


# -- fuzzing: garbage never crashes, and never reaches the acceptor's state ---------------------

plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5),
    max_leaves=20,
)
FIELDS = ["t", "epoch", "wor", "ballot", "value", "segment", "lo", "hi", "values", "status",
          "promised", "accepted", "results", "client", "request", "seen", "node", "extra"]


@st.composite
def hostile_objects(draw: st.DrawFn) -> object:
    """Mostly near-valid messages with one field broken; sometimes arbitrary data."""
    if draw(st.booleans()):
        return draw(plain)
    obj = to_plain(draw(requests))
    key = draw(st.sampled_from(FIELDS))
    if draw(st.booleans()) and key in obj:
        del obj[key]
    else:
        obj[key] = draw(plain)
    return obj


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.integers(1, 64))
def test_random_bytes_only_raise_frame_errors(data: bytes, chunk: int) -> None:
    dec = MessageDecoder(KEY)
    try:
        for i in range(0, len(data), chunk):
            dec.feed(data[i : i + chunk])
        dec.eof()
    except FrameError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_objects(), min_size=1, max_size=4))
def test_hostile_frames_are_rejected_cleanly_and_leave_state_untouched(objs: list) -> None:
    acc = Acceptor()
    store, _, _ = MemoryStore.open()
    acc.handle(Accept(0, W, (1, 1), b"seed"))  # some state to protect
    dec = MessageDecoder(KEY, allowed=REQUEST_TYPES)
    for obj in objs:
        try:
            frame = encode_frame(KEY, obj)
        except (TypeError, ValueError, OverflowError):
            continue  # not even msgpack-able (e.g. huge ints): nothing a peer could send
        state_before, records_before = acc.state.copy(), list(store.records)
        try:
            msgs = dec.feed(frame)
        except FrameError:
            assert acc.state == state_before and store.records == records_before
            return  # the connection is closed after the first bad frame
        for msg in msgs:
            reply, persist = acc.handle(msg)  # a valid request never makes the acceptor raise
            store.persist(persist.records)
            assert from_plain(to_plain(reply)) == reply


def test_rejected_frames_leave_the_durable_log_byte_for_byte_unchanged(tmp_path: Path) -> None:
    store, state, _ = DurableStore.open(str(tmp_path))
    acc = Acceptor(state)
    store.persist(acc.handle(Accept(0, W, (1, 1), b"v"))[1].records)
    before = (tmp_path / "acceptor.log").read_bytes()
    good = encode_message(KEY, Accept(0, W, (9, 9), b"evil"))
    hostile = [
        encode_message(b"z" * 32, Accept(0, W, (9, 9), b"evil")),  # wrong key
        good[:-3] + b"abc",  # altered payload
        authentic(msgpack.packb({**to_plain(Accept(0, W, (9, 9), b"x")), "value": 5})),
        struct.pack(">I", 2**31) + b"\x00" * 8,
    ]
    for frame in hostile:
        dec = MessageDecoder(KEY, allowed=REQUEST_TYPES)
        with pytest.raises(FrameError):
            for msg in dec.feed(frame):
                store.persist(acc.handle(msg)[1].records)
    assert (tmp_path / "acceptor.log").read_bytes() == before
    assert acc.state.get(W).value == b"v"
    store.close()


def test_codec_rejects_non_messages_on_encode() -> None:
    from wormspace.impl.core import InvalidMessage

    with pytest.raises(InvalidMessage):
        to_plain(object())  # type: ignore[arg-type]


@given(key=st.binary(min_size=16, max_size=80), header=st.binary(max_size=8),
       payload=st.binary(max_size=300))
def test_frame_tags_are_plain_hmac_sha256(key: bytes, header: bytes, payload: bytes) -> None:
    """The cached, copied HMAC state gives exactly HMAC-SHA256(key, header || payload), for any
    key (and after other keys were used), so the wire format is unchanged."""
    import hashlib
    import hmac

    from wormspace.impl.net import framing

    want = hmac.digest(key, header + payload, hashlib.sha256)
    assert framing._tag(key, header, payload) == want
    assert framing._tag(b"another key of 16+ bytes", header, payload) != want or key == \
        b"another key of 16+ bytes"
    assert framing._tag(key, header, payload) == want  # the cached state is not consumed


# -- batch frames ----------------------------------------------------------------------------------


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(st.dictionaries(st.sampled_from(["i", "m", "r", "x"]),
                                       st.integers(0, 5) | st.binary(max_size=300),
                                       min_size=1, max_size=3), min_size=1, max_size=40),
       max_frame=st.sampled_from([200, 700, 5000, MAX_FRAME]), chunk=st.integers(1, 500))
def test_batched_payloads_arrive_in_order_within_the_frame_limit(bodies, max_frame, chunk):
    """encode_payloads puts queued envelopes into as few frames as fit in max_frame (batch
    frames for several), and decoding + unbatch gives back exactly the envelopes, in order."""
    from wormspace.impl.net.framing import TAG_SIZE, encode_payloads, pack_body, unbatch

    key = b"k" * 32
    payloads = []
    for b in bodies:
        try:
            payloads.append(pack_body(b, max_frame))
        except FrameTooLarge:
            assert TAG_SIZE + len(msgpack.packb(b)) > max_frame
    if not payloads:
        return
    data = encode_payloads(key, payloads, max_frame)
    dec, got = FrameDecoder(key, max_frame), []
    for i in range(0, len(data), chunk):
        for obj in dec.feed(data[i : i + chunk]):
            items = unbatch(obj)
            got += [obj] if items is None else items
    assert got == [msgpack.unpackb(p) for p in payloads]
    frames = 0
    pos = 0
    while pos < len(data):  # every frame is within the limit
        (length,) = struct.unpack_from(">I", data, pos)
        assert length <= max_frame
        pos += 4 + length
        frames += 1
    assert frames <= len(payloads)
    if len(payloads) > 1 and max_frame == MAX_FRAME:
        assert frames == 1  # small envelopes: one batch frame


@pytest.mark.parametrize("obj", [{"b": "x"}, {"b": []}, {"b": None}, {"b": [{}] * 4097}])
def test_malformed_batches_are_named(obj):
    from wormspace.impl.net.framing import MalformedPayload, unbatch

    with pytest.raises(MalformedPayload, match="batch frame"):
        unbatch(obj)


@pytest.mark.parametrize("obj", [{"i": 1, "m": {}}, {"b": [1], "i": 2}, [1], "b", {"c": 1}])
def test_non_batches_pass_through(obj):
    from wormspace.impl.net.framing import unbatch

    assert unbatch(obj) is None


@given(reqs=st.lists(requests, min_size=1, max_size=4), rid=st.integers(1, 2**63 - 1))
def test_a_request_packed_once_is_byte_identical_to_packing_its_envelope(reqs, rid):
    """The client packs a message once for all acceptors and splices the request id in front:
    the bytes are exactly msgpack of {"i": rid, "m": plain} (so servers see no difference),
    and the one-entry memo never hands out another message's bytes."""
    from wormspace.impl.net.connection import (
        _ENVELOPE_I,
        _ENVELOPE_M,
        _pack_uint,
        _packed_message,
    )

    for req in reqs + reqs[::-1]:
        spliced = _ENVELOPE_I + _pack_uint(rid) + _ENVELOPE_M + _packed_message(req)
        assert spliced == msgpack.packb({"i": rid, "m": to_plain(req)}, use_bin_type=True)


@given(st.integers(0, 2**64 - 1))
def test_request_ids_pack_as_msgpack_does(n):
    from wormspace.impl.net.connection import _pack_uint

    assert _pack_uint(n) == msgpack.packb(n)
