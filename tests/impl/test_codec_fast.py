"""The codec's fast decoding path agrees with its general path on every input.

:func:`codec.from_plain` tries a hand-written fast decoder for the request path's messages
(prepare, accept, read, promise, accepted, read_reply) before the general, field-by-field one.
Here the two are compared on valid messages, on valid messages with one field replaced by a
hostile value, and on random plain data: both accept and return equal objects (of the exact
class, with exactly the same field values and types), or both raise InvalidMessage.
"""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wor_strategies import ballots, requests, values, wors
from wormspace.impl.core import codec
from wormspace.impl.core.messages import (
    Accepted,
    InvalidMessage,
    Kind,
    Promise,
    PromiseRange,
    ReadReply,
    Status,
    WorId,
)

FAST_TAGS = sorted(codec._FAST)

replies = st.one_of(
    st.builds(Promise, st.sampled_from(Status), wors, ballots, ballots,
              st.none(), st.none()),
    st.builds(lambda s, w, b, p, a, v: Promise(s, w, b, p, a, v),
              st.sampled_from(Status), wors, ballots, ballots, ballots, values),
    st.builds(Accepted, st.sampled_from(Status), wors, ballots, ballots),
    st.builds(ReadReply, st.sampled_from(Status), wors, ballots, st.none(), st.none()),
    st.builds(ReadReply, st.sampled_from(Status), wors, ballots, ballots, values),
)
messages = requests | replies

hostile = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(2**63, 2**64),
    st.text(max_size=5), st.sampled_from(["data", "meta", "trim", "ok", "preempted"]),
    st.binary(max_size=4), st.floats(allow_nan=False),
    st.lists(st.one_of(st.integers(-1, 3), st.booleans(), st.text(max_size=4),
                       st.sampled_from(["data", "meta", "trim"])), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _general(obj: object, allowed: tuple[type, ...] | None = None) -> object:
    return codec._from_plain(obj, allowed)


def _same(a: object, b: object) -> bool:
    """Equal, of the same class, and every field of the same type (a bool is not an int)."""
    if type(a) is not type(b) or a != b:
        return False
    for f in fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        if type(x) is not type(y):
            return False
        if isinstance(x, tuple) and [type(v) for v in x] != [type(v) for v in y]:
            return False
        if isinstance(x, WorId) and not _same(x, y):
            return False
    return True


def _outcome(decode, obj, allowed=None):
    try:
        return True, decode(obj, allowed)
    except InvalidMessage:
        return False, None


def _check(obj: object, allowed: tuple[type, ...] | None = None) -> None:
    ok_fast, fast = _outcome(codec.from_plain, obj, allowed)
    ok_gen, gen = _outcome(_general, obj, allowed)
    assert ok_fast == ok_gen, (obj, fast, gen)
    if ok_fast:
        assert _same(fast, gen), (obj, fast, gen)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_valid_messages_decode_the_same(msg):
    plain = codec.to_plain(msg)
    assert plain["t"] in codec.CLASSES
    _check(plain)
    assert _same(codec.from_plain(plain), msg)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_one_hostile_field(msg, data):
    plain = codec.to_plain(msg)
    key = data.draw(st.sampled_from(sorted(plain) + ["extra"]))
    if data.draw(st.booleans()):
        plain.pop(key, None)
    else:
        plain[key] = data.draw(hostile)
    _check(plain)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_hostile_nested_values(msg, data):
    """Replace one element inside the WOR id or a ballot (the lists the fast path unpacks)."""
    plain = codec.to_plain(msg)
    lists = [k for k, v in plain.items() if isinstance(v, list)]
    if not lists:
        return
    key = data.draw(st.sampled_from(lists))
    inner = list(plain[key])
    i = data.draw(st.integers(0, len(inner) - 1))
    inner[i] = data.draw(hostile)
    plain[key] = inner
    _check(plain)


@pytest.mark.parametrize("allowed", [None, (Promise,), (Accepted, ReadReply), (PromiseRange,)])
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_allowed_classes_are_respected(allowed, msg):
    _check(codec.to_plain(msg), allowed)


@pytest.mark.parametrize("tag", FAST_TAGS)
def test_each_fast_decoder_really_takes_the_fast_path(tag, monkeypatch):
    """A valid message of each fast tag is decoded without the general path (so the fast
    path is not silently dead), and an invalid one still gets the general path's error."""
    samples = {
        "prepare": {"t": "prepare", "epoch": 0, "wor": [1, "data", 2], "ballot": [1, 1]},
        "accept": {"t": "accept", "epoch": 0, "wor": [1, "data", 2], "ballot": [0, 0],
                   "value": b"x"},
        "read": {"t": "read", "epoch": 3, "wor": [1, "meta", 0]},
        "promise": {"t": "promise", "status": "ok", "wor": [1, "data", 2], "ballot": [1, 1],
                    "promised": [1, 1], "accepted": [1, 0], "value": b"v"},
        "accepted": {"t": "accepted", "status": "preempted", "wor": [1, "trim", 0],
                     "ballot": [1, 1], "promised": [2, 1]},
        "read_reply": {"t": "read_reply", "status": "ok", "wor": [1, "data", 2],
                       "promised": [0, 0], "accepted": None, "value": None},
    }
    plain = samples[tag]
    expected = codec._from_plain(plain, None)

    def boom(obj, allowed):
        raise AssertionError("general path used")

    monkeypatch.setattr(codec, "_from_plain", boom)
    assert _same(codec.from_plain(plain), expected)
    monkeypatch.undo()
    bad = {**plain, "wor": [1, "data", -1]}
    with pytest.raises(InvalidMessage, match="offset"):
        codec.from_plain(bad)


def test_a_meta_wor_with_an_offset_is_rejected_by_both():
    plain = {"t": "read", "epoch": 0, "wor": [1, "meta", 3]}
    _check(plain)
    with pytest.raises(InvalidMessage):
        codec.from_plain(plain)
    assert Kind.META.value == "meta"


def test_a_zero_ballot_prepare_is_rejected_by_both():
    plain = {"t": "prepare", "epoch": 0, "wor": [1, "data", 0], "ballot": [0, 0]}
    _check(plain)
    with pytest.raises(InvalidMessage, match="non-zero"):
        codec.from_plain(plain)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_fast_encoders_give_the_general_dict_in_the_same_key_order(msg):
    """to_plain's hand-written encoders equal the general field-by-field one, key order and
    element types included (so the packed bytes are the same)."""
    fast, general = codec.to_plain(msg), codec._to_plain(msg)
    assert list(fast.items()) == list(general.items())
    assert repr(fast) == repr(general)  # e.g. "ok", not Status.OK; lists, not tuples


@pytest.mark.parametrize("tag", FAST_TAGS)
def test_every_fast_decoder_has_a_fast_encoder(tag):
    assert codec.CLASSES[tag] in codec._FAST_PLAIN
