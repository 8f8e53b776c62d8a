"""Trace validation and linearizability checking, on traces whose verdict is known."""

from __future__ import annotations

import random
from typing import Any

import pytest
from wormspace.checker.linearizability import Operation, check_history
from wormspace.checker.tracecheck import EventMap, validate_trace
from wormspace.model.examples.twophase import TwoPhase
from wormspace.spec.wor_history import check_values

# -- trace validation --------------------------------------------------------------------------


def _events_of(trace: list[Any]) -> list[dict[str, Any]]:
    """What an implementation of TwoPhase would log: the action, its rm, the new rm states."""
    return [{"action": s.action, "params": s.params, "rmState": s.state[0]} for s in trace[1:]]


EMAP = EventMap(
    action=lambda e: e["action"],
    params_match=lambda e, p: tuple(e["params"].values()) == p,
    observed_match=lambda e, s: s[0] == e["rmState"],
)


def _random_walk(m: TwoPhase, steps: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    s = next(iter(m.init_states()))
    events = []
    for _ in range(steps):
        options = [(a, p, t) for a in m.actions() for p, t in a.successors(s)]
        if not options:
            break
        a, p, s = rng.choice(options)
        events.append({"action": a.name, "params": a.params_dict(p), "rmState": s[0]})
    return events


@pytest.mark.parametrize("seed", range(5))
def test_real_behaviours_are_explained(seed: int) -> None:
    m = TwoPhase(rm=3)
    events = _random_walk(m, 15, seed)
    out = validate_trace(m, events, EMAP)
    assert out.ok and out.checked == len(events)


def test_hidden_steps_are_allowed_only_when_declared_silent() -> None:
    m = TwoPhase(rm=2)
    # RMPrepare(r1), then the TM commits after hearing both (TMRcvPrepared not logged).
    events = [
        {"action": "RMPrepare", "params": {"rm": "r1"}, "rmState": (1, 0)},
        {"action": "RMPrepare", "params": {"rm": "r2"}, "rmState": (1, 1)},
        {"action": "TMCommit", "params": {}, "rmState": (1, 1)},
        {"action": "RMRcvCommitMsg", "params": {"rm": "r1"}, "rmState": (2, 1)},
    ]
    strict = validate_trace(m, events, EMAP)
    assert not strict.ok and strict.failed_index == 2
    assert "TMCommit is not enabled" in strict.reason
    silent = EventMap(EMAP.action, EMAP.params_match, EMAP.observed_match,
                      silent=frozenset({"TMRcvPrepared"}), max_silent=2)
    assert validate_trace(m, events, silent).ok


def test_first_unexplained_event_is_reported_with_possible_states() -> None:
    m = TwoPhase(rm=2)
    events = [
        {"action": "RMPrepare", "params": {"rm": "r1"}, "rmState": (1, 0)},
        {"action": "RMChooseToAbort", "params": {"rm": "r2"}, "rmState": (1, 3)},
        {"action": "RMRcvCommitMsg", "params": {"rm": "r1"}, "rmState": (2, 3)},
    ]
    out = validate_trace(m, events, EMAP)
    assert not out.ok and out.failed_index == 2
    assert out.possible_before and "rmState" in out.possible_before[0]


def test_wrong_observation_is_caught() -> None:
    m = TwoPhase(rm=2)
    events = [{"action": "RMPrepare", "params": {"rm": "r1"}, "rmState": (3, 0)}]
    out = validate_trace(m, events, EMAP)
    assert not out.ok and "observed" in out.reason


# -- linearizability ---------------------------------------------------------------------------


def register_spec(state: Any, op: Operation) -> list[tuple[Any, Any]]:
    """A plain read/write register."""
    if op.op == "write":
        return [(op.arg, "ok")]
    return [(state, state)]


def test_wgl_accepts_and_rejects_register_histories() -> None:
    good = [Operation("a", "x", "write", 1, 0, 2, "ok"), Operation("b", "x", "read", None, 1, 3, 1),
            Operation("c", "x", "read", None, 1.5, 4, 0)]  # overlapping read may see 0
    assert check_history(good, register_spec, 0).ok
    bad = [Operation("a", "x", "write", 1, 0, 1, "ok"), Operation("b", "x", "read", None, 2, 3, 0)]
    r = check_history(bad, register_spec, 0)
    assert not r.ok and r.failed_key == "x" and r.unexplained[0].client == "b"


def test_pending_operations_are_optional() -> None:
    h = [Operation("a", "x", "write", 7, 0, None), Operation("b", "x", "read", None, 5, 6, 7),
         Operation("c", "x", "read", None, 7, 8, 7)]
    assert check_history(h, register_spec, 0).ok


def _wor_history(n_regs: int, ops_per_reg: int, rng: random.Random) -> list[Operation]:
    """A valid history: each register is written at moment T by one of its writers."""
    out = []
    for r in range(n_regs):
        t_write = rng.uniform(10, 90)
        v = rng.randint(1, 3)
        out.append(Operation("w0", r, "write", v, t_write - rng.uniform(0, 5),
                             t_write + rng.uniform(0, 5), "OK"))
        for k in range(ops_per_reg - 1):
            start = rng.uniform(0, 100)
            end = start + rng.uniform(0.1, 3)
            if rng.random() < 0.3:
                other = v % 3 + 1
                res = "ALREADY_WRITTEN" if start > t_write else "PREEMPTED"
                out.append(Operation(f"w{k}", r, "write", other, start, end, res))
            else:
                res = v if end > t_write and (start > t_write or rng.random() < 0.5) else "EMPTY"
                if res == "EMPTY" and start > t_write:
                    res = v
                out.append(Operation(f"r{k}", r, "read", None, start, end, res))
    return out


def test_wor_value_check_accepts_valid_histories() -> None:
    rng = random.Random(5)
    assert check_values(_wor_history(200, 20, rng)) == []


def test_wor_value_check_finds_planted_violations() -> None:
    rng = random.Random(6)
    h = _wor_history(50, 10, rng)
    # A read after the write's return that sees EMPTY.
    w = next(o for o in h if o.key == 7 and o.op == "write" and o.result == "OK")
    bad = [*h, Operation("late", 7, "read", None, w.end + 1, w.end + 2, "EMPTY")]
    v = check_values(bad)
    assert len(v) == 1 and v[0].key == 7 and "no moment" in v[0].reason
    # Two values observed.
    other = w.arg % 3 + 1
    v = check_values([*h, Operation("x", 7, "read", None, 200, 201, other)])
    assert v and "two values" in v[0].reason
    # A value nobody wrote.
    v = check_values([Operation("r", 1, "read", None, 0, 1, 9)])
    assert v and "never written" in v[0].reason
    # ALREADY_WRITTEN with the register's own value.
    v = check_values([Operation("a", 1, "write", 2, 0, 1, "OK"),
                      Operation("b", 1, "write", 2, 2, 3, "ALREADY_WRITTEN")])
    assert v and "ALREADY_WRITTEN" in v[0].reason


def test_preempted_write_may_take_effect_after_it_returned() -> None:
    h = [Operation("a", 1, "write", 4, 0, 1, "PREEMPTED"),
         Operation("b", 1, "read", None, 2, 3, "EMPTY"),
         Operation("c", 1, "read", None, 4, 5, 4)]
    assert check_values(h) == []


@pytest.mark.parametrize("n", [100_000])
def test_a_large_history_is_checked_quickly(n: int) -> None:
    rng = random.Random(1)
    h = _wor_history(n // 10, 10, rng)
    assert check_values(h) == []
    assert len(h) == n
