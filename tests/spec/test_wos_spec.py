"""The atomic WormSpace interface: address mapping, workload parsing, an exhaustive check of its
own invariants, and hand-driven behaviours (trim is final, a seal rejects old requests)."""

from typing import Any

import pytest
from wormspace.checker.explore import check
from wormspace.checker.model import ParameterError
from wormspace.spec import wos
from wormspace.spec.wos import WOS, locate, replica_set


def test_addresses_map_to_segments_offsets_and_replica_sets() -> None:
    assert locate(0, 4) == (0, 0)
    assert locate(7, 4) == (1, 3)
    assert locate(8, 4) == (2, 0)
    assert [replica_set(s, 3) for s in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ValueError):
        locate(-1, 4)


def test_workload_parsing_and_errors() -> None:
    script = wos.parse_workload("alloc1,write2@1/check,read", 2, 2, 3)
    assert script == (((wos.ALLOC, 0, 0, 0, 1), (wos.WRITE, 1, 0, 3, 2)),
                      ((wos.CHECK, 0, 0, 0, 0), (wos.READ, 0, 0, 3, 0)))
    assert wos.parse_workload("", 2, 1, 1) is None
    assert wos.parse_workload("listen@1/alloc1", 2, 2, 1) == (((wos.LISTEN, 1, 0, 0, 0),),
                                                            ((wos.ALLOC, 0, 0, 0, 1),))
    for bad in ("alloc1", "alloc/check", "frob/check", "alloc1@5/check", "listen1/check"):
        with pytest.raises(ParameterError):
            wos.parse_workload(bad, 2, 2, 1)
    with pytest.raises(ParameterError):
        WOS(menu="alloc,frob")


def test_spec_explores_and_holds_its_invariants() -> None:
    r = check(WOS(workload="alloc1,capture,write1/alloc2,trim,read", epochs=1))
    assert r.result == "ok", r.message
    assert r.distinct > 1000


def _step(m: WOS, st: Any, action: str, *params: Any) -> Any:
    """The successor of ``st`` by ``action`` with exactly ``params`` (which must exist)."""
    act = next(a for a in m.actions() if a.name == action)
    nexts = [t for p, t in act.successors(st) if p == params]
    assert nexts, f"{action}{params} is not enabled"
    return nexts[0]


def _answers(m: WOS, st: Any, c: int) -> set[str]:
    return {wos.code_name(x) for x in m.answers(st, c)}


def test_first_alloc_wins_and_trim_is_final() -> None:
    m = WOS(menu="alloc,check,trim,read", ops=3)
    st = next(iter(m.init_states()))
    st = _step(m, st, "InvokeAlloc", 0, 0, 1)
    st = _step(m, st, "InvokeAlloc", 1, 0, 2)
    st = _step(m, st, "MetaTakesEffect", 0, 2)  # c1's proposal takes effect first
    assert _answers(m, st, 0) == {"meta2", "PREEMPTED"}  # c0 learns who won
    st = _step(m, st, "Respond", 0, "meta2")
    st = _step(m, st, "InvokeTrim", 0, 0)
    st = _step(m, st, "TrimTakesEffect", 0)
    # c1's pending alloc, and any new operation, can now only be told TRIMMED.
    assert _answers(m, st, 1) == {"TRIMMED", "PREEMPTED"}
    st = _step(m, st, "Respond", 1, "TRIMMED")
    st = _step(m, st, "InvokeRead", 1, 0, 0, 1)
    dispatch = next(a for a in m.actions() if a.name == "Dispatch")
    assert not dispatch.successors(st)  # a trimmed segment serves no data
    assert _answers(m, st, 1) == {"TRIMMED"}


def test_seal_rejects_requests_of_the_old_configuration() -> None:
    m = WOS(menu="alloc,read", ops=2)
    st = next(iter(m.init_states()))
    st = _step(m, st, "InvokeAlloc", 0, 0, 1)
    st = _step(m, st, "MetaTakesEffect", 0, 1)
    st = _step(m, st, "Seal", 1)
    assert _answers(m, st, 0) == {"SEALED", "PREEMPTED"}
    st = _step(m, st, "Respond", 0, "SEALED")
    assert st[2][0][8] == 1  # the client learnt the new configuration
    st = _step(m, st, "InvokeRead", 0, 0, 0, 1)
    st = _step(m, st, "Dispatch", 0)  # served in the new configuration; nothing was lost
    st = _step(m, st, "Data.Respond", 0, 0, (0, "EMPTY"))
    assert _answers(m, st, 0) == {"(EMPTY)"}
    assert st[1][0][0] == 1


#: The listen workload: client 0 subscribes while client 1 allocates, captures and writes.
LISTEN = "listen/alloc1,capture,write1"


def test_listen_workload_notifies_and_holds_the_notification_invariants() -> None:
    for size in (1, 2):
        r = check(WOS(workload=LISTEN, size=size))
        assert r.result == "ok", r.message
        assert r.coverage["Notify"][0] > 0
    # Listening adds nothing to the default configuration's state (its notes stay empty).
    assert "listen" not in WOS().menu


def _write(m: WOS, st: Any, c: int) -> Any:
    """Client ``c`` allocates segment 0 with meta1, captures and writes v1 at offset 0."""
    st = _step(m, st, "InvokeAlloc", c, 0, 1)
    st = _step(m, st, "MetaTakesEffect", 0, 1)
    st = _step(m, st, "Respond", c, "meta1")
    st = _step(m, st, "InvokeCapture", c, 0, 0, 1)
    st = _step(m, st, "Dispatch", c)
    st = _step(m, st, "Data.CaptureReturns", 0, 0, (c,))
    st = _step(m, st, "Respond", c, "(CAPTURED)")
    st = _step(m, st, "InvokeWrite", c, 0, 0, 1, 1)
    st = _step(m, st, "Dispatch", c)
    return _step(m, st, "Data.WriteTakesEffect", 0, 0, (c,))


def test_listen_delivers_each_write_once_in_order_without_replay() -> None:
    m = WOS(menu="alloc,capture,write,listen,trim", ops=4, epochs=1)
    st = next(iter(m.init_states()))
    st = _step(m, st, "InvokeListen", 0, 0)
    assert _answers(m, st, 0) == {"OK"}  # no NOT_ALLOCATED: one may listen to a new segment
    st = _step(m, st, "Respond", 0, "OK")
    assert st[3][0] == (1, (), ())
    st = _write(m, st, 1)
    assert st[3][0] == (1, ((0, 0, 1),), ())  # queued when the write took effect
    assert st[3][1] == (0, (), ())  # client 1 does not listen
    notify = next(a for a in m.actions() if a.name == "Notify")
    [(params, st)] = notify.successors(st)
    assert params == (0, 0, 0, 1) and st[3][0] == (1, (), ((0, 0, 1),))
    assert not notify.successors(st)  # never twice
    # A client subscribing after the write is not told about it (no replay).
    st = _step(m, st, "Data.Respond", 0, 0, (1, "OK"))
    st = _step(m, st, "Respond", 1, "(OK)")
    st = _step(m, st, "InvokeListen", 1, 0)
    st = _step(m, st, "Respond", 1, "OK")
    assert st[3][1] == (1, (), ()) and not notify.successors(st)


def test_trim_discards_pending_notifications() -> None:
    m = WOS(menu="alloc,capture,write,listen,trim", ops=5, epochs=1)
    st = next(iter(m.init_states()))
    st = _step(m, st, "InvokeListen", 0, 0)
    st = _step(m, st, "Respond", 0, "OK")
    st = _write(m, st, 1)
    assert st[3][0][1] == ((0, 0, 1),)
    st = _step(m, st, "Data.Respond", 0, 0, (1, "OK"))
    st = _step(m, st, "Respond", 1, "(OK)")
    st = _step(m, st, "InvokeTrim", 1, 0)
    st = _step(m, st, "TrimTakesEffect", 0)
    assert st[3][0] == (1, (), ())  # the trimmed segment's data is never revealed again


def test_notification_invariants_reject_bad_notifications() -> None:
    m = WOS(workload=LISTEN)
    inv = m.invariants()
    st = next(iter(m.init_states()))
    bad = [(1, ((0, 0, 1),), ()),  # the address is not written
           (0, (), ((0, 0, 1),))]  # and the client does not even listen
    for note in bad:
        t = (*st[:3], (note, st[3][1]))
        assert not inv["NotifiedIsWritten"](t)
    written = _seg_written(st, 1)
    assert inv["NotifiedIsWritten"]((*written[:3], ((1, ((0, 0, 1),), ()), written[3][1])))
    assert not inv["NotifiedIsWritten"]((*written[:3], ((1, ((0, 0, 2),), ()), written[3][1])))
    twice = (1, ((0, 0, 1),), ((0, 0, 1),))
    assert not inv["NotifiedOnce"]((*written[:3], (twice, written[3][1])))


def _seg_written(st: Any, v: int) -> Any:
    """``st`` with segment 0's offset 0 holding ``v`` (nothing else changed)."""
    meta, mprop, tr, tp, data = st[1][0]
    w = data[0]
    return (st[0], ((meta, mprop, tr, tp, ((v, *w[1:]),)),), *st[2:])
