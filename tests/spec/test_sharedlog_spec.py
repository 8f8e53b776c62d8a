"""The shared-log spec (spec/sharedlog.py): an exhaustive check of its own invariants, its
guarantees driven by hand, and the history checker: every behaviour of the spec is accepted,
each kind of violation is caught with a readable message, malformed input is refused, and the
benchmark's generated histories (valid, and each corruption) are judged right."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

import pytest
from wormspace.checker.explore import check
from wormspace.checker.model import ParameterError
from wormspace.spec import sharedlog as sl
from wormspace.spec.sharedlog import LogOp, SharedLog, check_history

# -- the atomic spec --------------------------------------------------------------------------


def test_spec_explores_and_holds_its_invariants() -> None:
    r = check(SharedLog(clients=1, addresses=2))
    assert r.result == "ok", r.message
    assert (r.distinct, r.generated, r.depth) == (1434, 10280, 11)
    assert all(gen > 0 for _new, gen in r.coverage.values()), r.coverage


def _step(m: SharedLog, st: Any, action: str, *params: Any) -> Any:
    act = next(a for a in m.actions() if a.name == action)
    nexts = [t for p, t in act.successors(st) if p == params]
    assert nexts, f"{action}{params} is not enabled"
    return nexts[0]


def _enabled(m: SharedLog, st: Any, action: str) -> set[Any]:
    act = next(a for a in m.actions() if a.name == action)
    return {p for p, _t in act.successors(st)}


def test_two_appends_never_get_one_address_and_entries_are_final() -> None:
    m = SharedLog(clients=2, values=1, addresses=2)
    st = next(iter(m.init_states()))
    st = _step(m, st, "InvokeAppend", 0, 1)
    st = _step(m, st, "InvokeAppend", 1, 1)
    st = _step(m, st, "AppendReturns", 0, 0)
    # Same value, but address 0 is taken: only address 1 is left for the second append.
    assert _enabled(m, st, "AppendReturns") == {(1, 1)}
    st = _step(m, st, "InvokeTail", 0)
    assert _enabled(m, st, "TailReturns") == {(0, 1), (0, 2)}  # above the completed append
    st = _step(m, st, "TailReturns", 0, 1)
    st = _step(m, st, "InvokeFill", 0, 0)
    assert _enabled(m, st, "FillReturns") == {(0, "v1")}  # the value survives the fill


def test_a_lost_fill_or_append_may_land_later_and_trim_is_final() -> None:
    m = SharedLog(clients=1, values=1, addresses=2)
    st = next(iter(m.init_states()))
    assert _enabled(m, st, "Land") == set()  # nothing invoked: nothing may land
    st = _step(m, st, "InvokeFill", 0, 1)
    assert _enabled(m, st, "Land") == {(1, "JUNK")}
    st = _step(m, st, "Land", 1, "JUNK")
    st = _step(m, st, "FillReturns", 0, "JUNK")
    st = _step(m, st, "InvokeTrim", 0, 2)
    # Address 0 is empty, so the trim may also report the log does not reach its prefix.
    assert _enabled(m, st, "TrimReturns") == {(0, "TRIMMED"), (0, "NOT_ALLOCATED")}
    st = _step(m, st, "TrimReturns", 0, "TRIMMED")
    assert st[1] == 0b11 and st[0] == (sl.EMPTY, sl.EMPTY)
    assert _enabled(m, st, "Read") == {(0, 0), (0, 1)}
    st = _step(m, st, "Read", 0, 1)
    assert st[6][0][3] == (sl.READ, 1, sl.TRIMMED)


def test_spec_parameters_are_checked() -> None:
    with pytest.raises(ParameterError):
        SharedLog(clients=0)
    with pytest.raises(ParameterError):
        SharedLog(values=sl.JUNK)


# -- every behaviour of the spec is an accepted history ----------------------------------------

_INVOKE = {"InvokeAppend": "append", "InvokeFill": "fill", "InvokeTail": "check_tail",
           "InvokeTrim": "trim"}
_RETURN = ("AppendReturns", "AppendFails", "FillReturns", "TailReturns", "TrimReturns")


def _status(x: int) -> tuple[str, Any]:
    names = {sl.EMPTY: "empty", sl.JUNK: "junk", sl.TRIMMED: "trimmed"}
    return (names[x], None) if x in names else ("data", x)


def spec_history(m: SharedLog, steps: int, rng: random.Random) -> list[LogOp]:
    """A random behaviour of the spec, as the history a client library would record: step ``i``
    happens at time ``i``; operations still pending at the end never answered."""
    st = next(iter(m.init_states()))
    acts = m.actions()
    pending: dict[int, tuple[str, Any, int]] = {}
    ops = []
    for i in range(steps):
        choices = [(a.name, p, t) for a in acts for p, t in a.successors(st)]
        name, p, st = rng.choice(choices)
        if name == "Read":
            ops.append(LogOp(p[0], "read", p[1], _status(st[6][p[0]][3][2]), i, i))
        elif name in _INVOKE:
            pending[p[0]] = (_INVOKE[name], p[1] if len(p) > 1 else None, i)
        elif name in _RETURN:
            c = p[0]
            op, arg, start = pending.pop(c)
            _kind, a, x = st[6][c][3]
            result: Any = {"append": a if x != sl.FAILED else "failed",
                           "fill": _status(x), "check_tail": a,
                           "trim": "ok" if x == sl.TRIMMED else "not_allocated"}[op]
            ops.append(LogOp(c, op, arg, result, start, i))
    ops += [LogOp(c, op, arg, None, start, None) for c, (op, arg, start) in pending.items()]
    return ops


def test_every_behaviour_of_the_spec_is_an_accepted_history() -> None:
    rng = random.Random(5)
    m = SharedLog(clients=3, values=2, addresses=3)
    kinds = set()
    for _ in range(300):
        h = spec_history(m, 40, rng)
        kinds |= {(o.op, o.result[0] if o.op in ("read", "fill") and o.end is not None else "")
                  for o in h}
        # The spec's trim answers TRIMMED once everything below it is: segments of one address.
        assert check_history(h, segment_size=1) == [], h
    # The walks met every kind of answer (so the acceptance above means something).
    assert {("read", s) for s in sl.STATUSES} <= kinds
    assert {("fill", "junk"), ("fill", "data"), ("fill", "trimmed"), ("check_tail", ""),
            ("trim", ""), ("append", "")} <= kinds


def _answer(op: str, result: Any) -> Any:
    """A recorded result in the spec's terms (the last answer's entry, or address/tail)."""
    if op in ("read", "fill"):
        status, value = result
        return {"empty": sl.EMPTY, "junk": sl.JUNK, "trimmed": sl.TRIMMED}.get(status, value)
    if op == "append":
        return sl.FAILED if result == "failed" else result
    if op == "trim":
        return sl.TRIMMED if result == "ok" else sl.NOT_ALLOCATED
    return result


def explained_by_spec(m: SharedLog, h: list[LogOp]) -> bool:
    """Exact check by search: is there a behaviour of the spec with these invocations (at their
    start) and answers, each answer given at some point before its recorded end (a response
    is received after it is decided), silent steps (Land, TrimTakesEffect) anywhere?"""
    acts = {a.name: a for a in m.actions()}
    invoke = {"append": "InvokeAppend", "fill": "InvokeFill", "check_tail": "InvokeTail",
              "trim": "InvokeTrim"}
    answer = {"append": ("AppendReturns", "AppendFails"), "fill": ("FillReturns",),
              "check_tail": ("TailReturns",), "trim": ("TrimReturns",), "read": ("Read",)}

    def answered(o: LogOp, s: Any) -> set[Any]:
        """The spec states after ``o``'s answer, given in state ``s``."""
        x, out = _answer(o.op, o.result), set()
        for name in answer[o.op]:
            for p, t in acts[name].successors(s):
                _kind, a, e = t[6][o.client][3]
                got = a if o.op == "check_tail" or (o.op == "append" and e != sl.FAILED) else e
                if p[0] == o.client and (o.op != "read" or p[1] == o.arg) and got == x:
                    out.add(t)
        return out

    events = sorted([(o.start, "invoke", i) for i, o in enumerate(h)]
                    + [(o.end, "end", i) for i, o in enumerate(h) if o.end is not None])
    frontier: set[tuple[Any, frozenset[int]]] = {(s, frozenset()) for s in m.init_states()}
    started: set[int] = set()
    for _t, kind, i in events:
        o = h[i]
        # Close under the silent steps and under giving any started operation its answer.
        todo, seen = list(frontier), set(frontier)
        while todo:
            s, done = todo.pop()
            nxt = [(t, done) for name in ("Land", "TrimTakesEffect")
                   for _p, t in acts[name].successors(s)]
            nxt += [(t, done | {j}) for j in started - done
                    if h[j].end is not None and h[j].op != "read" for t in answered(h[j], s)]
            for x in nxt:
                if x not in seen:
                    seen.add(x)
                    todo.append(x)
        if kind == "invoke" and o.op == "read":  # reads are atomic: answered right here
            frontier = {(t, done) for s, done in seen for t in answered(o, s)}
        elif kind == "invoke":
            want = (o.client,) if o.op == "check_tail" else (o.client, o.arg)
            frontier = {(t, done) for s, done in seen
                        for p, t in acts[invoke[o.op]].successors(s) if p == want}
            started.add(i)
        else:  # its answer must have been given by now
            frontier = {x for x in seen if o.op == "read" or i in x[1]}
        if not frontier:
            return False
    return True


def _corrupt(h: list[LogOp], rng: random.Random, m: SharedLog) -> list[LogOp]:
    """``h`` with one answer replaced by another the API could give (trim answers excepted:
    the fast check deliberately reads nothing into a trim that did not answer "ok")."""
    done = [i for i, o in enumerate(h) if o.end is not None and o.op != "trim"]
    if not done:
        return h
    i = rng.choice(done)
    o = h[i]
    if o.op in ("read", "fill"):
        new: Any = rng.choice([("empty", None), ("junk", None), ("trimmed", None)]
                              + [("data", v) for v in range(1, m.values + 1)])
    elif o.op == "append":
        new = rng.choice(["failed", *range(m.addresses)])
    else:
        new = rng.randrange(m.addresses + 1)
    return h[:i] + [LogOp(o.client, o.op, o.arg, new, o.start, o.end)] + h[i + 1:]


def test_fast_check_agrees_with_an_exact_search_of_the_spec() -> None:
    rng = random.Random(11)
    m = SharedLog(clients=2, values=2, addresses=3)
    verdicts = {True: 0, False: 0}
    for _ in range(250):
        h = _corrupt(spec_history(m, 16, rng), rng, m)
        exact = explained_by_spec(m, h)
        fast = check_history(h, segment_size=1)
        assert exact == (fast == []), (exact, fast, h)
        verdicts[exact] += 1
    assert min(verdicts.values()) > 40, verdicts  # both kinds of history were met


# -- each violation is caught -----------------------------------------------------------------


def ops(*rows: tuple[Any, ...]) -> list[LogOp]:
    return [LogOp(*r) for r in rows]


APPEND_X = ("w", "append", "x", 0, 0, 1)  # "x" at address 0, done by t=1

VIOLATIONS = {
    "returned to two appends": [APPEND_X, ("w2", "append", "x", 0, 2, 3)],
    "holds both value 'x' and value 'y'": [APPEND_X, ("w2", "append", "y", 5, 0, 1),
                                           ("r", "read", 0, ("data", "y"), 2, 3)],
    "holds both value 'x' and JUNK": [APPEND_X, ("f", "fill", 0, ("junk", None), 0.5, 3)],
    "which no append ever carried": [("r", "read", 3, ("data", "ghost"), 0, 1)],
    "no fill of it was invoked": [("r", "read", 3, ("junk", None), 0, 1)],
    "which ended before": [APPEND_X, ("r", "read", 0, ("empty", None), 2, 3)],
    "first operation that could write it": [("r", "read", 0, ("data", "x"), 0, 1),
                                            ("w", "append", "x", 7, 2, 3)],
    "a fill answered EMPTY": [("f", "fill", 0, ("empty", None), 0, 1)],
    "no trim covering it": [("t", "trim", 1, "ok", 5, 6), ("r", "read", 4, ("trimmed", None), 7, 8)],
    "but it started after it was trimmed": [("r", "read", 0, ("trimmed", None), 0, 1),
                                            ("t", "trim", 1, "ok", 0, 0.5),
                                            ("r", "read", 0, ("empty", None), 2, 3)],
    "check_tail answered 0": [APPEND_X, ("t", "check_tail", None, 0, 2, 3)],
}


@pytest.mark.parametrize("what", sorted(VIOLATIONS))
def test_each_violation_is_caught_and_named(what: str) -> None:
    out = check_history(ops(*VIOLATIONS[what]))
    assert len(out) == 1 and what in out[0], out


def test_a_completed_trim_bounds_later_reads_given_the_segment_size() -> None:
    h = ops(APPEND_X, ("t", "trim", 4, "ok", 2, 3), ("r", "read", 0, ("data", "x"), 4, 5))
    assert check_history(h) == []  # without segment sizes a trim promises nothing at its end
    out = check_history(h, segment_size=4)
    assert len(out) == 1 and "started after it was trimmed" in out[0]
    assert check_history(h, segment_size=8) == []  # prefix 4 covers no whole segment of 8
    failed = ops(APPEND_X, ("t", "trim", 4, "error", 2, 3), ("r", "read", 0, ("data", "x"), 4, 5))
    assert check_history(failed, segment_size=4) == []


def test_junk_from_a_sequencer_takeover_is_accepted_when_asked() -> None:
    h = ops(("r", "read", 3, ("junk", None), 0, 1))
    assert check_history(h) and check_history(h, junk_needs_fill=False) == []


def test_concurrent_and_uncertain_operations_are_explained() -> None:
    h = ops(
        ("w", "append", "x", 0, 0, 10),  # long append, overlapping everything below
        ("r", "read", 0, ("empty", None), 1, 2),  # before it took effect
        ("r2", "read", 0, ("data", "x"), 3, 4),  # after
        ("t", "check_tail", None, 0, 5, 6),  # the append had not completed when this started
        ("w2", "append", "y", None, 0, None),  # never answered, but landed at 1
        ("r", "read", 1, ("data", "y"), 7, 8),
        ("w3", "append", "z", "failed", 0, 1),  # failed, but a retried attempt landed at 2
        ("w3", "append", "z", 3, 2, 7),
        ("r2", "read", 2, ("data", "z"), 4, 5),
        ("f", "fill", 4, ("junk", None), 4, 5),
        ("r", "read", 4, ("junk", None), 4.5, 9),
        ("t", "check_tail", None, 4, 11, 12),
    )
    assert check_history(h) == []
    # Ties may be ordered either way: a read starting when the append ends may see it.
    assert check_history(ops(APPEND_X, ("r", "read", 0, ("empty", None), 1, 2))) == []


def test_histories_may_be_dicts_or_tuples() -> None:
    as_dict = {"client": "w", "op": "append", "arg": "x", "result": 0, "start": 0, "end": 1}
    assert check_history([as_dict, ("r", "read", 0, ["data", "x"], 2, 3)]) == []


@pytest.mark.parametrize("bad, why", [
    (("c", "frob", 0, None, 0, 1), "unknown operation"),
    (("c", "read", 0, ("data", 1), 2, 1), "ends (1) before it starts (2)"),
    (("c", "read", -1, ("empty", None), 0, 1), "address/prefix must be an int >= 0"),
    (("c", "read", True, ("empty", None), 0, 1), "address/prefix must be an int >= 0"),
    (("c", "read", 0, "empty", 0, 1), "result must be (status, value)"),
    (("c", "fill", 0, ("gone", None), 0, 1), "result must be (status, value)"),
    (("c", "append", ["x"], 0, 0, 1), "must be hashable"),
    (("c", "check_tail", None, "3", 0, 1), "the tail must be an int"),
    (("c", "read", 0, ("empty", None), "0", 1), "start and end must be numbers"),
    ({"client": "c", "op": "read"}, "missing field(s) start"),
    ("read", "expected a LogOp"),
])
def test_malformed_operations_are_refused_by_index(bad: Any, why: str) -> None:
    with pytest.raises(ValueError) as err:
        check_history([APPEND_X, bad])
    assert "operation 1" in str(err.value) and why in str(err.value)


def test_bad_segment_size_is_refused() -> None:
    with pytest.raises(ValueError, match="segment_size"):
        check_history([], segment_size=0)


# -- the benchmark's histories ----------------------------------------------------------------


def _bench() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "sharedlog_history_bench.py"
    spec = importlib.util.spec_from_file_location("sharedlog_history_bench", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_histories_are_valid_and_each_corruption_is_caught() -> None:
    bench = _bench()
    h = bench.valid_history(2000, seed=1)
    assert {o.op for o in h} == set(sl.HISTORY_OPS)
    assert any(o.end is None for o in h) and any(o.op == "fill" for o in h)
    assert check_history(h, segment_size=bench.SEGMENT) == []
    for name, corrupt in bench.CORRUPTIONS.items():
        assert check_history(corrupt(h), segment_size=bench.SEGMENT), name
