"""Implementation-level model checking of ``impl/core``: the real cores explored exhaustively.

The default configuration must pass; each planted bug must be caught on a small configuration
(named in ``BUG_CONFIGS``) with a short trace, by the refinement check and by the model's own
invariants; the model's encodings and reductions must not change what the search finds.
"""

from __future__ import annotations

from typing import Any

import pytest
from wormspace.checker.explore import check
from wormspace.checker.fingerprint import validate_state
from wormspace.checker.model import ModelError, ParameterError
from wormspace.checker.registry import Param, instantiate
from wormspace.impl.core import acceptor as acceptor_module
from wormspace.impl.core.messages import Accepted, Kind, Promise, ReadReply, Status, WorId
from wormspace.impl.core.ops import CaptureWriteOp, ReadOp
from wormspace.impl.core.records import WorRecord, WorState
from wormspace.refinement_tests.core_model import BUGS, WOR, CoreWOR, PlainCodec, parse_workload
from wormspace.spec import wor as spec

#: Where each planted bug is caught, and the longest shortest trace we accept (steps + initial).
BUG_CONFIGS: dict[str, tuple[dict[str, Any], int]] = {
    # A read meets a half-written quorum and returns the value without completing it.
    "read_without_repair": (dict(workload="write1/read", crashes=0, timeouts=False), 12),
    # A write returns OK, an acceptor of its quorum restarts without the unpersisted accept, and
    # the same client's next read returns EMPTY.
    "ack_before_persist": (dict(clients=1, workload="write1,read", crashes=1, timeouts=False), 14),
    # One client, two writes: the second reuses the first's ballot and both values get chosen.
    "reuse_capture_id": (dict(clients=1, workload="write1,write2", crashes=0), 16),
    # b chosen at (1,2) over a at (1,1); the retry at (2,1) adopts a, the lower-ballot value.
    "arbitrary_adopt": (dict(workload="write1/write2", rounds=2, crashes=0, timeouts=False), 24),
}
#: The bug whose configuration takes tens of seconds (about 190,000 states): run with -m slow.
SLOW_BUGS = {"arbitrary_adopt"}


def _bug_params() -> list[Any]:
    return [pytest.param(b, marks=pytest.mark.slow) if b in SLOW_BUGS else b for b in sorted(BUGS)]


def test_default_configuration_passes_and_refines_the_atomic_wor() -> None:
    m = CoreWOR()
    r = check(m)
    assert r.result == "ok", r.message
    assert r.refinement_checked == "wor"
    assert r.distinct > 10_000 and r.depth > 10
    # Every client and network behaviour of the default configuration happened somewhere.
    for action in ("Invoke", "Deliver", "SendWrite", "Return", "Timeout", "EndPreempted"):
        assert r.coverage[action][0] > 0, action
    assert r.coverage["Finished"][1] > 0  # the end of the workload is a stutter, not a deadlock
    assert r.coverage["Persist"] == [0, 0]  # a correct acceptor never defers persisting


@pytest.mark.parametrize("bug", _bug_params())
def test_planted_bug_is_caught_with_a_short_trace(bug: str) -> None:
    params, longest = BUG_CONFIGS[bug]
    m = CoreWOR(bug=bug, **params)
    r = check(m)
    assert r.result in ("invariant", "refinement"), (bug, r.result)
    assert 4 <= len(r.trace) <= longest, (bug, len(r.trace))
    # The trace is readable: real messages and results, not encodings.
    labels = " ".join(step.label for step in r.trace)
    assert "Invoke(c=0, op=write b'a'" in labels


@pytest.mark.parametrize("bug", [b for b in sorted(BUGS) if b not in SLOW_BUGS])
def test_bug_configuration_passes_with_the_bug_off(bug: str) -> None:
    # (arbitrary_adopt's configuration has 3 million states: see bench/core_model_bench.py.)
    params, _ = BUG_CONFIGS[bug]
    assert check(CoreWOR(**params)).result == "ok"


@pytest.mark.parametrize("bug", [b for b in sorted(BUGS) if b not in SLOW_BUGS])
def test_planted_bug_breaks_an_invariant_too(bug: str) -> None:
    params, _ = BUG_CONFIGS[bug]
    m = CoreWOR(bug=bug, **params)
    r = check(m, refinement=False)
    assert r.result == "invariant" and r.violated is not None, (bug, r.result)
    assert not m.invariants()[r.violated](r.trace[-1].state)


def test_reused_capture_id_chooses_two_values_at_one_ballot() -> None:
    params, _ = BUG_CONFIGS["reuse_capture_id"]
    m = CoreWOR(bug="reuse_capture_id", **params)
    r = check(m, refinement=False)
    assert r.violated == "OneValueChosen"
    chosen = m.chosen(r.trace[-1].state)
    assert len({b for b, _v in chosen}) == 1 and {v for _b, v in chosen} == {1, 2}


def test_a_bug_planted_in_the_real_acceptor_code_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model runs the acceptor module's code: break it there (accept below the promise)."""
    real = acceptor_module.Acceptor._accept

    def accept_anything(self: Any, wor: Any, ballot: Any, value: bytes, records: list[Any]) -> Any:
        st = self.state.get(wor)
        if ballot < st.promised:  # the planted flaw: take it anyway
            records.append(WorRecord(wor, WorState(st.promised, ballot, value)))
            return Accepted(Status.OK, wor, ballot, ballot)
        return real(self, wor, ballot, value, records)

    monkeypatch.setattr(acceptor_module.Acceptor, "_accept", accept_anything)
    r = check(CoreWOR(workload="write1/write2", crashes=0, timeouts=False))
    assert r.result in ("invariant", "refinement")
    assert any("accept" in step.label for step in r.trace)


def test_cache_and_pruning_do_not_change_the_search() -> None:
    small: dict[str, Any] = dict(clients=1, workload="write1,read", rounds=1, crashes=0)
    base = check(CoreWOR(**small))
    uncached = check(CoreWOR(cache=False, **small))
    assert base.result == uncached.result == "ok"
    assert (base.distinct, base.generated, base.depth) == (
        uncached.distinct, uncached.generated, uncached.depth)
    unpruned = check(CoreWOR(prune=False, **small))
    assert unpruned.result == "ok" and unpruned.distinct >= base.distinct
    params, _ = BUG_CONFIGS["read_without_repair"]
    found = [check(CoreWOR(bug="read_without_repair", prune=p, **params)) for p in (True, False)]
    assert found[0].result == found[1].result != "ok"
    assert len(found[0].trace) == len(found[1].trace)


def test_states_are_plain_values_and_the_mapping_starts_at_the_spec_init() -> None:
    m = CoreWOR()
    (s,) = m.init_states()
    assert m.to_spec(s) == next(iter(spec.WOR(2, 2).init_states()))
    frontier = [s]
    for _ in range(6):  # a few levels of real successors
        frontier = [t for x in frontier for a in m.actions() for _p, t in a.successors(x)][:200]
        for t in frontier:
            validate_state(t)
            m.to_spec(t)
    assert frontier


def test_codec_round_trips_live_ops_and_messages() -> None:
    plain = PlainCodec((b"a", b"b"), CoreWOR().bugs, {"n": 3, "epoch": 0, "quorum": 2, "wor": WOR})
    op = CaptureWriteOp(WOR, b"a", (1, 1), 3)
    op.start()
    op.on_reply(0, Promise(Status.OK, WOR, (1, 1), (1, 1)))
    op.on_reply(1, Promise(Status.OK, WOR, (1, 1), (1, 1), (1, 2), b"b"))
    assert op.write is not None and op.write.sent == b"b"  # adopted the revealed value
    enc = plain.freeze(op)
    back = plain.thaw(enc)
    assert plain.freeze(back) == enc and hash(enc) == hash(plain.freeze(back))
    # The decoded op is a working op: it finishes on a quorum of acceptances.
    back.on_reply(0, Accepted(Status.OK, WOR, (1, 1), (1, 1)))
    back.on_reply(2, Accepted(Status.OK, WOR, (1, 1), (1, 1)))
    assert back.done and back.result.outcome.value == "already_written"
    read = ReadOp(WOR, (1, 2), 3)
    read.on_reply(2, ReadReply(Status.OK, WOR, (0, 0)))
    assert plain.freeze(plain.thaw(plain.freeze(read))) == plain.freeze(read)
    # Dict order does not leak into the encoding.
    other = ReadOp(WOR, (1, 2), 3)
    other.replies = {2: read.replies[2]}
    read.replies = dict(reversed(list(read.replies.items())))
    assert plain.freeze(other) == plain.freeze(read)


def test_codec_rejects_what_it_cannot_encode() -> None:
    plain = PlainCodec((b"a",), CoreWOR().bugs)
    with pytest.raises(ModelError, match="b'zz' is not one of the model's values"):
        plain.freeze(b"zz")
    with pytest.raises(ModelError, match="not in the encoding vocabulary"):
        plain.freeze("surprise")
    with pytest.raises(ModelError, match="cannot encode a float"):
        plain.freeze(1.5)
    op = ReadOp(WorId(1, Kind.DATA, 0), (1, 1), 3)
    op.extra = 1  # type: ignore[attr-defined]  # an attribute the encoding was not built for
    # must not be dropped silently
    with pytest.raises(ModelError, match=r"attributes \['extra'\]"):
        plain.freeze(op)


@pytest.mark.parametrize("kwargs, message", [
    (dict(bug="serve_trimmed"), "never trims"),
    (dict(bug="nonsense"), "unknown bug 'nonsense'"),
    (dict(acceptors=0), "acceptors must be an integer >= 1"),
    (dict(crashes=-1), "crashes must be an integer >= 0"),
    (dict(workload="write1"), "1 client scripts for clients=2"),
    (dict(workload="write1/write3"), "'write3' is not read or write1..write2"),
    (dict(workload="write1/ , "), "gives a client no operation"),
])
def test_bad_parameters_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        CoreWOR(**kwargs)


def test_workload_alternatives_and_free_menu() -> None:
    assert parse_workload("write1,read/write2|read", 2, 2) == (((1,), (0,)), ((2, 0),))
    assert parse_workload("", 3, 2) is None
    menu = CoreWOR(clients=1, workload="", ops=1, values=2)
    (s,) = menu.init_states()
    invoked = [p[1] for a in menu.actions() if a.name == "Invoke" for p, _t in a.successors(s)]
    assert invoked == ["write b'a'", "write b'b'", "read"]


def test_catalog_entry_builds_the_model_from_command_line_strings() -> None:
    params = {
        "acceptors": Param(3), "clients": Param(2), "values": Param(2), "rounds": Param(1),
        "crashes": Param(1), "ops": Param(1), "workload": Param("write1/write2|read"),
        "timeouts": Param(True), "bug": Param("", choices=("", *sorted(BUGS))),
    }
    m = instantiate("wormspace.refinement_tests.core_model:CoreWOR", params,
                    {"bug": "read_without_repair", "workload": "write1/read", "timeouts": "false"},
                    "impl.core")
    assert isinstance(m, CoreWOR) and m.bug == "read_without_repair" and m.timeouts is False
    with pytest.raises(ParameterError, match="one of"):
        instantiate("wormspace.refinement_tests.core_model:CoreWOR", params, {"bug": "x"},
                    "impl.core")
