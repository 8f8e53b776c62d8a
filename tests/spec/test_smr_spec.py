"""The atomic SMR spec (``spec/smr.py``): its state space and invariants, what the
linearizable option forbids, and the history checker on good and bad recorded histories."""

import random

import pytest
from wormspace.checker.explore import check
from wormspace.checker.model import ParameterError
from wormspace.spec.smr import DONE, IDLE, OK, PENDING, SMR, Proposal, check_history


def test_spec_explores_with_its_invariants() -> None:
    for lin, distinct in ((True, 312), (False, 316)):
        r = check(SMR(linearizable=lin))
        assert r.result == "ok", r.message
        assert r.distinct == distinct


def test_linearizable_respond_needs_every_lower_position_decided() -> None:
    m = SMR(replicas=1, commands=2, positions=2)
    s = ((0, 2), (IDLE, PENDING), ((),))  # c2 decided at position 1, position 0 undecided
    respond = {a.name: a for a in m.actions()}["Respond"]
    assert list(respond.successors(s)) == []
    loose = SMR(replicas=1, commands=2, positions=2, linearizable=False)
    [(params, t)] = {a.name: a for a in loose.actions()}["Respond"].successors(s)
    assert params == (2,) and t[1] == (IDLE, DONE)


def test_decide_may_invoke_but_never_decides_a_done_or_logged_command() -> None:
    m = SMR(replicas=1, commands=2, positions=2)
    decide = {a.name: a for a in m.actions()}["Decide"]
    s = ((1, 0), (DONE, IDLE), ((),))
    got = {p for p, _t in decide.successors(s)}
    assert got == {(1, "noop"), (1, "c2")}  # c1 is done and logged: not again
    [t] = [t for p, t in decide.successors(s) if p == (1, "c2")]
    assert t[1] == (DONE, PENDING)  # invoked by its decision


def test_apply_follows_the_log_in_order() -> None:
    m = SMR(replicas=2, commands=1, positions=2)
    apply = {a.name: a for a in m.actions()}["Apply"]
    s = ((0, 1), (PENDING,), ((), ()))
    assert list(apply.successors(s)) == []  # position 0 undecided: nobody may apply
    s = ((2, 1), (PENDING,), ((2,), ()))
    assert {p: t[2] for p, t in apply.successors(s)} == {(0,): ((2, 1), ()), (1,): ((2,), (2,))}


def test_bad_parameters() -> None:
    with pytest.raises(ParameterError, match="at least 1"):
        SMR(positions=0)


# -- the history checker -----------------------------------------------------------------------

def good_history() -> tuple[list[Proposal], dict[str, list[tuple[int, str]]]]:
    props = [Proposal("a", "x", 0, 2, OK), Proposal("b", "y", 3, 5, OK),
             Proposal("a", "z", 4, None, None)]
    applies = {"r1": [(0, "x"), (2, "y"), (3, "z")], "r2": [(0, "x"), (2, "y")], "r3": []}
    return props, applies  # index 1 is a NO-OP, left out


def test_a_good_history_passes_both_ways() -> None:
    props, applies = good_history()
    assert check_history(props, applies) == []
    assert check_history(props, applies, linearizable=True) == []


def test_dicts_are_accepted() -> None:
    props = [{"client": 1, "command": (7, 1), "invoke": 0.5, "response": 1.0, "result": "OK"}]
    assert check_history(props, {0: [(0, (7, 1))]}, linearizable=True) == []


@pytest.mark.parametrize(("change", "word"), [
    (lambda p, a: a["r2"].__setitem__(1, (2, "z")), "agreement"),
    (lambda p, a: a["r2"].reverse(), "order"),
    (lambda p, a: a["r2"].__setitem__(1, (3, "z")), "prefix"),
    (lambda p, a: a["r1"].append((4, "w")), "proposed"),
    (lambda p, a: a["r1"].append((4, "x")), "once"),
    (lambda p, a: p.append(Proposal("c", "v", 6, 7, OK)), "acknowledged"),
])
def test_each_violation_is_named(change: object, word: str) -> None:
    props, applies = good_history()
    change(props, applies)  # type: ignore[operator]
    out = check_history(props, applies)
    assert out and all(v.startswith(word) for v in out), out


@pytest.mark.parametrize(("change", "shown"), [
    (lambda p, a: a["r2"].__setitem__(1, (2, "z")), "index 0.2"),
    (lambda p, a: a["r2"].reverse(), "index 0.0 after index 0.2"),
    (lambda p, a: a["r2"].__setitem__(1, (3, "z")), "applied index 0.3 but skipped index 0.2"),
    (lambda p, a: a["r1"].append((4, "x")), "at index 0.0 and again at 0.4"),
])
def test_indices_are_written_by_show(change: object, shown: str) -> None:
    props, applies = good_history()
    change(props, applies)  # type: ignore[operator]
    out = check_history(props, applies, show=lambda i: f"{i // 100}.{i % 100}")
    assert any(shown in v for v in out), out


def test_real_time_order_only_with_the_option() -> None:
    # y was acknowledged at 2, z invoked at 3, but z sits below y.
    props = [Proposal("a", "y", 0, 2, OK), Proposal("b", "z", 3, 4, OK)]
    applies = {"r": [(0, "z"), (1, "y")]}
    assert check_history(props, applies) == []
    [v] = check_history(props, applies, linearizable=True)
    assert v.startswith("real time") and "'y'" in v and "'z'" in v and "index 1" in v


def test_a_retry_counts_from_its_first_invocation() -> None:
    # x's first proposal failed before y was acknowledged; its retry after: x may go first.
    props = [Proposal("a", "x", 0, 1, "TIMEOUT"), Proposal("b", "y", 0, 2, OK),
             Proposal("a", "x", 3, 4, OK)]
    assert check_history(props, {"r": [(0, "x"), (1, "y")]}, linearizable=True) == []


@pytest.mark.parametrize(("props", "applies", "match"), [
    ([{"client": 1, "invoke": 0}], {}, "needs keys"),
    ([Proposal(1, "x", 5, 4, OK)], {}, "response time"),
    ([Proposal(1, "x", "t0")], {}, "invoke time"),
    ([Proposal(1, ["x"], 0)], {}, "not hashable"),
    ([], {"r": [(-1, "x")]}, "index must be"),
    ([], {"r": ["x"]}, "expected \\(index, command\\)"),
])
def test_malformed_input_is_named(props: list, applies: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_history(props, applies)


def test_a_large_history() -> None:
    """20,000 proposals on 3 replicas that stopped at different points; then two acknowledged
    commands swapped: the one moved up is reported against each command invoked after its
    acknowledgement that now lies below it, and nothing else."""
    rnd = random.Random(5)
    n = 20_000
    props = [Proposal(i % 7, i, 2 * i, 2 * i + 1, OK) for i in range(n)]
    log = [(i, i) for i in range(n)]
    applies = {r: log[:n - rnd.randrange(100)] for r in range(3)}
    applies[0] = log
    assert check_history(props, applies, linearizable=True) == []
    log[10], log[20] = (10, 20), (20, 10)
    out = check_history(props, {0: log}, linearizable=True)
    assert len(out) == 10 and all(v.startswith("real time: 10 was acknowledged") for v in out)
