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
    for bad in ("alloc1", "alloc/check", "frob/check", "alloc1@5/check"):
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
