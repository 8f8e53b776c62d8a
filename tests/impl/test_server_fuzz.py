"""Hypothesis sends hostile bytes to a live in-process server on 127.0.0.1.

Properties: the server never crashes and keeps answering; unauthenticated input never changes
the acceptor's state; every authentic frame gets exactly one answer (an error or a reply).
"""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inproc_server import ServerThread, make_config
from wormspace.impl.core.codec import TAGS
from wormspace.impl.net.framing import FrameDecoder, FrameError, encode_frame, unbatch

settings.register_profile("server_fuzz", max_examples=120, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = make_config(str(tmp_path_factory.mktemp("fuzz")), 1)
    st_ = ServerThread(cfg)
    # Some state to protect: a promise and an accepted value.
    with socket.create_connection(_addr(st_)) as s:
        s.sendall(encode_frame(cfg.key(), {"i": 1, "m": {"t": "accept", "epoch": 0,
                  "wor": [0, "data", 1], "ballot": [2, 5], "value": b"v"}}))
        s.shutdown(socket.SHUT_WR)
        assert _read_all(s, cfg.key())[0][0]["m"]["status"] == "ok"
    yield st_
    st_.close()


def _addr(st_: ServerThread) -> tuple[str, int]:
    spec = st_.config.servers["s0"]
    return spec.host, spec.port


def _read_all(s: socket.socket, key: bytes) -> tuple[list[dict], bool]:
    """Frames until EOF; (frames, whether our decoder had to give up on the stream)."""
    s.settimeout(5)
    dec, frames = FrameDecoder(key), []
    while chunk := s.recv(65536):
        try:
            for o in dec.feed(chunk):  # batch frames ({"b": [...]}) unpacked
                items = unbatch(o)
                frames += [o] if items is None else items
        except FrameError:
            return frames, True
    return frames, False


def _send(st_: ServerThread, data: bytes) -> tuple[list[dict], bool]:
    with socket.create_connection(_addr(st_), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # EOF: the server must close, whatever it got
        try:
            return _read_all(s, st_.config.key())
        except ConnectionResetError:
            return [], True


def _state(st_: ServerThread) -> object:
    srv = st_.servers["s0"]
    return st_.sync(lambda: (srv.acceptor.state.copy(), len(srv.store.records)))


def _alive(st_: ServerThread) -> None:
    frames, _ = _send(st_, encode_frame(st_.config.key(), {"i": 9, "c": "ping", "a": {}}))
    assert frames == [{"i": 9, "r": frames[0]["r"]}] and frames[0]["r"]["id"] == "s0"


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.text(max_size=8),
                    st.binary(max_size=8), st.floats(allow_nan=False))
plain = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
fields = st.sampled_from(["epoch", "wor", "ballot", "value", "segment", "lo", "hi", "values",
                          "client", "request", "seen"])
near_messages = st.builds(
    lambda tag, extra: {"t": tag, **extra},
    st.sampled_from(sorted(TAGS.values()) + ["nope"]),
    st.dictionaries(fields, plain, max_size=4),
)
envelopes = st.one_of(
    plain,
    st.builds(lambda i, m: {"i": i, "m": m}, st.integers(-1, 3), near_messages),
    st.builds(lambda i, c, a: {"i": i, "c": c, "a": a}, st.integers(1, 3),
              st.sampled_from(["ping", "listen", "unlisten", "status", "drop"]),
              st.dictionaries(st.sampled_from(["segment", "x"]), plain, max_size=2)),
)


@settings(settings.get_profile("server_fuzz"))
@given(data=st.binary(min_size=1, max_size=300))
def test_random_bytes(server, data):
    before = _state(server)
    frames, _ = _send(server, data)
    assert all(f.get("e") == "bad_frame" for f in frames)
    assert _state(server) == before
    _alive(server)


@settings(settings.get_profile("server_fuzz"))
@given(obj=envelopes, flip=st.integers(0, 10_000), key=st.binary(min_size=16, max_size=40))
def test_altered_or_foreign_frames(server, obj, flip, key):
    real = server.config.key()
    frame = bytearray(encode_frame(real, obj))
    frame[flip % len(frame)] ^= 1 << (flip % 8)  # one flipped bit anywhere
    foreign = encode_frame(key, obj) if key != real else b""
    before = _state(server)
    for data in (bytes(frame), foreign):
        if data:
            frames, _ = _send(server, data)
            assert all(f.get("e") == "bad_frame" for f in frames)
    assert _state(server) == before
    _alive(server)


@settings(settings.get_profile("server_fuzz"))
@given(objs=st.lists(envelopes, min_size=1, max_size=5))
def test_authentic_garbage_gets_one_answer_per_frame(server, objs):
    key = server.config.key()
    frames, gave_up = _send(server, b"".join(encode_frame(key, o) for o in objs))
    assert not gave_up
    assert len(frames) == len(objs)
    for f in frames:
        assert set(f) in ({"i", "e", "d"}, {"i", "m"}, {"i", "r"}), f
    _alive(server)


def test_good_frames_before_a_bad_one_in_the_same_read_are_answered(server):
    """A valid request followed, in the same segment of bytes, by a bad frame: the request is
    handled and answered, then the connection gets the bad-frame error and is closed."""
    key = server.config.key()
    ping = encode_frame(key, {"i": 7, "c": "ping", "a": {}})
    bad = bytearray(encode_frame(key, {"i": 8, "c": "ping", "a": {}}))
    bad[-1] ^= 1
    frames, _ = _send(server, ping + bytes(bad))
    assert [f.get("i") for f in frames] == [7, 0]
    assert frames[0]["r"]["id"] == "s0" and frames[1]["e"] == "bad_frame"
    _alive(server)


@settings(settings.get_profile("server_fuzz"))
@given(objs=st.lists(envelopes, min_size=1, max_size=6))
def test_a_batch_frame_gets_one_answer_per_envelope_in_order(server, objs):
    """A batch frame ({"b": [envelope, ...]}) is handled envelope by envelope, as if each had
    come in a frame of its own: one answer each, in order, hostile ones included."""
    key = server.config.key()
    before = _state(server)
    single, _ = _send(server, b"".join(encode_frame(key, o) for o in objs))
    batched, gave_up = _send(server, encode_frame(key, {"b": objs}))
    assert not gave_up and len(batched) == len(objs)
    assert [set(f) for f in batched] == [set(f) for f in single]
    assert [f.get("i") for f in batched] == [f.get("i") for f in single]
    assert _state(server) == before or any(isinstance(o, dict) and "m" in o for o in objs)
    _alive(server)


@pytest.mark.parametrize("batch", [{"b": []}, {"b": "x"}, {"b": [{"b": [{"i": 1, "c": "ping"}]}]}])
def test_malformed_or_nested_batches_get_an_error_and_the_connection_stays(server, batch):
    key = server.config.key()
    ping = encode_frame(key, {"i": 5, "c": "ping", "a": {}})
    frames, gave_up = _send(server, encode_frame(key, batch) + ping)
    assert not gave_up
    assert frames[0]["e"] == "malformed" and frames[-1]["i"] == 5 and "r" in frames[-1]
    _alive(server)
