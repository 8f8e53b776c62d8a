"""Liveness: temporal properties under weak and strong fairness, with lasso counterexamples.

Small hand-made graphs whose answers are known, TwoPhase's "every RM decides", an independent
brute-force oracle on random graphs, and an independent validator for every lasso returned:
each step is a real model step, the cycle closes, the property fails along it and fairness holds
on it.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wormspace.checker.liveness import (
    ALWAYS_EVENTUALLY,
    EVENTUALLY,
    LEADS_TO,
    STRONG,
    Fairness,
    LivenessResult,
    Property,
    always_eventually,
    check_liveness,
    eventually,
    leads_to,
    strong,
    weak,
)
from wormspace.checker.liveness_output import format_lasso, run_liveness_cli
from wormspace.checker.model import Action, Model, ModelError, Params
from wormspace.model.examples.twophase import TwoPhase
from wormspace.spec.tcommit import ABORTED, COMMITTED

Edge = tuple[int, Params, int]


@dataclass
class Graph(Model[int]):
    """A model given as an explicit graph: states are ints, ``edges[action]`` its steps."""

    init: tuple[int, ...]
    edges: dict[str, list[Edge]]

    def __post_init__(self) -> None:
        self.name = "graph"

    def init_states(self) -> Iterable[int]:
        return list(self.init)

    def actions(self) -> Sequence[Action[int]]:
        def succ(steps: list[Edge]) -> Callable[[int], list[tuple[Params, int]]]:
            return lambda s: [(p, t) for u, p, t in steps if u == s]

        return [Action(name, succ(steps), ("i",)) for name, steps in self.edges.items()]


# -- an independent lasso validator ---------------------------------------------------------


def _enabled(model: Model[Any], s: Any) -> set[tuple[str, Params]]:
    """Action instances with a step that changes the state (TLA+'s ENABLED <<A>>_vars)."""
    return {(a.name, p) for a in model.actions() for p, t in a.successors(s) if t != s}


def assert_valid_lasso(model: Model[Any], r: LivenessResult, prop: Property,
                       fairness: Sequence[Fairness]) -> None:
    """Check the counterexample against the model directly, not against the checker's graph."""
    assert r.result == "liveness" and r.exit_code == 13 and r.violated == prop.name
    trace, loop = r.trace, r.loop
    assert loop is not None and 0 <= loop < len(trace)
    acts = {a.name: a for a in model.actions()}

    def params_of(name: str, shown: dict[str, Any], s: Any) -> Params:
        """The params tuple of a real step ``s -> ?`` by ``name`` shown as ``shown``."""
        a = acts[name]
        found = [p for p, _t in a.successors(s) if a.params_dict(p) == shown]
        assert found, f"{name}{shown} is not a step from {s!r}"
        return found[0]

    assert trace[0].state in list(model.init_states())
    taken: set[tuple[str, Params]] = set()
    for i, (prev, step) in enumerate(itertools.pairwise(trace), 1):
        assert step.action is not None
        p = params_of(step.action, step.params, prev.state)
        assert (p, step.state) in list(acts[step.action].successors(prev.state))
        if i > loop and step.state != prev.state:
            taken.add((step.action, p))
    if r.loop_action is None:
        assert r.loop_label == "Stuttering"
    else:
        p = params_of(r.loop_action, r.loop_params, trace[-1].state)
        assert (p, trace[loop].state) in list(acts[r.loop_action].successors(trace[-1].state))
        if trace[loop].state != trace[-1].state:
            taken.add((r.loop_action, p))
    states = [step.state for step in trace]
    cycle = states[loop:]
    if prop.kind == EVENTUALLY:
        assert not any(prop.p(s) for s in states)
    elif prop.kind == ALWAYS_EVENTUALLY:
        assert not any(prop.p(s) for s in cycle)
    else:
        assert prop.q is not None and r.trigger is not None and r.trigger <= loop
        assert prop.p(states[r.trigger])
        assert not any(prop.q(s) for s in states[r.trigger:])
    enabled = [_enabled(model, s) for s in cycle]
    for f in fairness:
        instances = {i for en in enabled for i in en
                     if i[0] == f.action and (f.where is None or f.where(i[1]))}
        groups = [{i} for i in instances] if f.per_params else [instances]
        for group in groups:
            if not group or group & taken:
                continue
            on = [bool(group & en) for en in enabled]
            ok = not any(on) if f.kind == STRONG else not all(on)
            assert ok, f"{f.describe()} is violated on the cycle ({group})"


def check_and_validate(model: Model[Any], prop: Property,
                       fairness: Sequence[Fairness]) -> LivenessResult:
    r = check_liveness(model, [prop], fairness)
    if not r.ok:
        assert_valid_lasso(model, r, prop, fairness)
    return r


# -- small models with known answers --------------------------------------------------------

RING = Graph((0,), {"Inc": [(i, (), (i + 1) % 4) for i in range(4)]})


def test_ring_without_fairness_stutters_before_reaching_the_goal() -> None:
    r = check_and_validate(RING, eventually("Reach2", lambda s: s == 2), [])
    assert [s.state for s in r.trace] == [0] and r.loop == 0 and r.loop_label == "Stuttering"
    assert "State 2: Stuttering" in format_lasso(r)


def test_ring_with_weak_fairness_reaches_every_state_infinitely_often() -> None:
    fair = [weak("Inc")]
    assert check_and_validate(RING, eventually("Reach2", lambda s: s == 2), fair).ok
    assert check_and_validate(RING, always_eventually("Zero", lambda s: s == 0), fair).ok
    assert check_and_validate(RING, leads_to("OneToThree", lambda s: s == 1,
                                             lambda s: s == 3), fair).ok


def test_ring_unreachable_goal_gives_a_real_cycle() -> None:
    r = check_and_validate(RING, eventually("Never", lambda s: s == 9), [weak("Inc")])
    assert [s.state for s in r.trace] == [0, 1, 2, 3]
    assert r.loop == 0 and r.loop_action == "Inc"
    assert format_lasso(r).rstrip().endswith("Back to state 1: <Inc>")


def test_always_eventually_fails_when_the_behaviour_may_stop() -> None:
    r = check_and_validate(RING, always_eventually("Zero", lambda s: s == 0), [])
    assert [s.state for s in r.trace] == [0, 1] and r.loop == 1 and r.loop_action is None


def test_terminal_state_stutters_forever() -> None:
    m = Graph((0,), {"Step": [(0, (), 1)]})
    assert check_and_validate(m, eventually("One", lambda s: s == 1), [weak("Step")]).ok
    r = check_and_validate(m, eventually("Two", lambda s: s == 2), [weak("Step")])
    assert [s.state for s in r.trace] == [0, 1] and r.loop_label == "Stuttering"


def test_a_step_to_the_same_state_is_stuttering_for_fairness() -> None:
    # WF(Spin) does not force anything: Spin never changes the state, so <<Spin>>_vars is
    # never enabled (TLA+ semantics), and the behaviour may stop in state 0.
    m = Graph((0,), {"Spin": [(0, (), 0)], "Step": [(0, (), 1)]})
    r = check_and_validate(m, eventually("One", lambda s: s == 1), [weak("Spin")])
    assert [s.state for s in r.trace] == [0] and r.loop_label == "Stuttering"
    assert check_and_validate(m, eventually("One", lambda s: s == 1), [weak("Step")]).ok


# Act is enabled only intermittently: in pc=1 of a pc 0 <-> 1 toggle (state = pc + 2*done).
FLICKER = Graph((0,), {"Toggle": [(0, (), 1), (1, (), 0), (2, (), 3), (3, (), 2)],
                       "Act": [(1, (), 3)]})
DONE = eventually("Done", lambda s: s >= 2)


def test_weak_fairness_allows_an_intermittently_enabled_action_to_starve() -> None:
    r = check_and_validate(FLICKER, DONE, [weak("Toggle"), weak("Act")])
    assert sorted(s.state for s in r.trace[r.loop or 0:]) == [0, 1]
    assert r.loop_action == "Toggle"


def test_strong_fairness_forces_an_intermittently_enabled_action() -> None:
    assert check_and_validate(FLICKER, DONE, [weak("Toggle"), strong("Act")]).ok


def test_strong_fairness_alone_allows_stopping_where_the_action_is_disabled() -> None:
    r = check_and_validate(FLICKER, DONE, [strong("Act")])
    assert [s.state for s in r.trace] == [0] and r.loop_label == "Stuttering"


def test_strong_fairness_refines_components_to_a_cycle_avoiding_the_enabled_state() -> None:
    # pc: 0 -> 1 -> 2 -> 0 (Toggle) and 0 -> 2 (Skip); Act from pc=1 to done (3). The component
    # {0,1,2} is unfair under SF(Act), but the cycle 0 -> 2 -> 0 never enables Act.
    m = Graph((0,), {"Toggle": [(0, (), 1), (1, (), 2), (2, (), 0)], "Skip": [(0, (), 2)],
                     "Act": [(1, (), 3)]})
    fair = [weak("Toggle"), weak("Skip"), strong("Act")]
    r = check_and_validate(m, eventually("Done", lambda s: s == 3), fair)
    cycle = [s.state for s in r.trace[r.loop or 0:]]
    assert 1 not in cycle and set(cycle) == {0, 2}
    # Without Skip there is no way around pc=1: the property holds.
    m.edges["Skip"] = []
    assert check_and_validate(m, eventually("Done", lambda s: s == 3), fair).ok


# Two bits, Flip(i) flips bit i: state = b0 + 2*b1.
BITS = Graph((0,), {"Flip": [(s, (i,), s ^ (1 << i)) for s in range(4) for i in range(2)]})
BIT0_SET = always_eventually("Bit0Set", lambda s: s & 1 == 1)


def test_fairness_per_parameter_value_versus_the_action_as_a_whole() -> None:
    r = check_and_validate(BITS, BIT0_SET, [weak("Flip", per_params=False)])
    cycle_steps = [s.params for s in r.trace[(r.loop or 0) + 1:]] + [r.loop_params]
    assert r.loop_action == "Flip" and all(p == {"i": 1} for p in cycle_steps)
    assert check_and_validate(BITS, BIT0_SET, [weak("Flip")]).ok


# Request/grant with a spin while waiting: state = req + 2*aux.
REQ = Graph((0,), {"Request": [(0, (), 1), (2, (), 3)], "Grant": [(1, (), 0), (3, (), 2)],
                   "Spin": [(1, (), 3), (3, (), 1)]})
SERVED = leads_to("Served", lambda s: s & 1 == 1, lambda s: s & 1 == 0)


def test_leads_to_holds_under_weak_fairness_of_the_grant() -> None:
    assert check_and_validate(REQ, SERVED, [weak("Grant")]).ok


def test_leads_to_is_violated_by_spinning_forever() -> None:
    r = check_and_validate(REQ, SERVED, [weak("Spin"), weak("Request")])
    assert r.loop_action == "Spin" and r.trigger == 1
    r = check_and_validate(REQ, SERVED, [])
    assert [s.state for s in r.trace] == [0, 1] and r.loop_label == "Stuttering"


# -- TwoPhase: every RM eventually decides --------------------------------------------------

TM_ONLY = [weak("TMCommit"), weak("TMAbort"), weak("TMRcvPrepared")]
RM_ONLY = [weak("RMRcvCommitMsg"), weak("RMRcvAbortMsg")]


def _decided(s: Any) -> bool:
    return all(x in (COMMITTED, ABORTED) for x in s[0])


@pytest.mark.parametrize("rm", [2, 3, 4])
def test_twophase_every_rm_decides_under_its_fairness(rm: int) -> None:
    m = TwoPhase(rm=rm)
    r = check_liveness(m)
    assert r.ok and r.exit_code == 0
    assert r.holds == ["EveryRMDecides", "CommitReachesEveryRM"]
    # The same graph as the safety check's (TLC's counts for 3 RMs: 288 / 1146 / 11).
    if rm == 3:
        assert (r.distinct, r.generated, r.depth) == (288, 1146, 11)


def test_twophase_without_fairness_stops_at_the_start() -> None:
    m = TwoPhase(rm=3)
    prop = m.properties()[0]
    r = check_and_validate(m, prop, [])
    assert r.exit_code == 13 and r.violated == "EveryRMDecides"
    assert len(r.trace) == 1 and r.loop_label == "Stuttering"


@pytest.mark.parametrize("fair, last", [(TM_ONLY, "TMAbort"), (RM_ONLY, None)])
def test_twophase_with_partial_fairness_is_violated(fair: list[Fairness],
                                                    last: str | None) -> None:
    m = TwoPhase(rm=3)
    r = check_and_validate(m, m.properties()[0], fair)
    assert r.loop_label == "Stuttering" and r.trace[-1].action == last
    assert not _decided(r.trace[-1].state)


def test_twophase_commit_reaches_every_rm_needs_the_rms_to_receive() -> None:
    m = TwoPhase(rm=3)
    prop = m.properties()[1]
    r = check_and_validate(m, prop, TM_ONLY)
    assert r.trace[r.trigger or 0].action == "TMCommit"
    assert len(r.trace) == 8  # 3 x (RMPrepare, TMRcvPrepared), TMCommit: the shortest way


# -- the CLI hook, JSON and ITF -------------------------------------------------------------


def test_run_liveness_cli_prints_a_tlc_lasso_and_writes_itf(tmp_path: Path) -> None:
    out = io.StringIO()
    itf = tmp_path / "cex.itf.json"
    args = argparse.Namespace(no_fairness=True, itf=str(itf), json=str(tmp_path / "r.json"),
                              symmetry=True)
    assert run_liveness_cli(TwoPhase(rm=2), args, out) == 13
    text = out.getvalue()
    assert "Warning: symmetry is not used" in text
    assert "Error: Temporal properties were violated." in text
    assert "State 1: <Initial predicate>" in text and "State 2: Stuttering" in text
    doc = json.loads(itf.read_text())
    assert doc["loop"] == 0 and doc["#meta"]["loop"] == 0 and len(doc["states"]) == 1
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["result"] == "liveness" and result["loop_step"]["label"] == "Stuttering"


def test_run_liveness_cli_with_the_models_fairness_and_chosen_fairness() -> None:
    out = io.StringIO()
    assert run_liveness_cli(TwoPhase(rm=2), argparse.Namespace(), out) == 0
    assert "No error has been found" in out.getvalue()
    assert "\\A rm: WF_vars(RMRcvCommitMsg(rm))" in out.getvalue()
    args = argparse.Namespace(wf=["TMCommit", "TMAbort", "TMRcvPrepared"],
                              property=["EveryRMDecides"])
    assert run_liveness_cli(TwoPhase(rm=2), args, io.StringIO()) == 13
    with pytest.raises(ModelError, match="no temporal property Nope"):
        run_liveness_cli(TwoPhase(rm=2), argparse.Namespace(property=["Nope"]), io.StringIO())


# -- errors a user can act on ---------------------------------------------------------------


def test_bad_requests_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ModelError, match="unknown action 'Nope'"):
        check_liveness(RING, [DONE], [weak("Nope")])
    with pytest.raises(ModelError, match="symmetry"):
        check_liveness(TwoPhase(rm=2), symmetry=True)
    with pytest.raises(ModelError, match="more than 2 states"):
        check_liveness(RING, [DONE], [], max_states=2)
    with pytest.raises(ModelError, match="duplicate"):
        check_liveness(RING, [DONE, DONE], [])
    with pytest.raises(ModelError, match="predicate Boom"):
        check_liveness(RING, [eventually("Boom", lambda s: 1 // (s - 1) > 0)], [])


# -- an independent oracle: brute force over edge sets on random small graphs ---------------


def _oracle_violated(m: Graph, prop: Property, fair: Sequence[Fairness]) -> bool:
    """Whether some reachable set of edges forms a fair, strongly connected cycle (or a single
    stuttering state) on which the property fails: by enumeration, not by SCCs."""
    nodes = sorted({u for es in m.edges.values() for u, _p, t in es} | {t for es in m.edges.values()
                                                                     for _u, _p, t in es} | set(m.init))
    steps = [(u, (name, p), t) for name, es in m.edges.items() for u, p, t in es if u != t]
    q = prop.q if prop.kind == LEADS_TO else prop.p
    assert q is not None
    bad = {u for u in nodes if not q(u)}

    def closure(starts: set[int], allowed: set[int] | None) -> set[int]:
        seen, todo = set(starts), list(starts)
        while todo:
            u = todo.pop()
            for a, _i, b in steps:
                if a == u and b not in seen and (allowed is None or b in allowed):
                    seen.add(b)
                    todo.append(b)
        return seen

    if prop.kind == EVENTUALLY:
        region = closure({u for u in m.init if u in bad}, bad)
    else:
        trig = {u for u in closure(set(m.init), None)
                if u in bad and (prop.kind != LEADS_TO or prop.p(u))}
        region = closure(trig, bad)
    enabled = {u: {i for a, i, _b in steps if a == u} for u in nodes}

    def fair_on(cyc: set[int], taken: set[tuple[str, Params]]) -> bool:
        for f in fair:
            insts = {i for u in cyc for i in enabled[u] if i[0] == f.action}
            for group in ([{i} for i in insts] if f.per_params else [insts]):
                if not group or group & taken:
                    continue
                on = [bool(group & enabled[u]) for u in cyc]
                if any(on) if f.kind == STRONG else all(on):
                    return False
        return True

    if any(fair_on({u}, set()) for u in region):
        return True
    inner = [e for e in steps if e[0] in region and e[2] in region]
    for k in range(1, len(inner) + 1):
        for subset in itertools.combinations(inner, k):
            cyc = {a for a, _i, _b in subset} | {b for _a, _i, b in subset}
            if all(closure({u}, cyc) >= cyc for u in cyc) and fair_on(
                    cyc, {i for _a, i, _b in subset}):
                return True
    return False


def test_random_graphs_agree_with_a_brute_force_oracle() -> None:
    rng = random.Random(7)
    disagreements = []
    for trial in range(400):
        n = rng.randint(1, 5)
        edges: dict[str, list[Edge]] = {"A": [], "B": [], "C": []}
        if rng.random() < 0.5:  # a ring through every state, so that real cycles are common
            for i in range(n):
                edges[rng.choice("ABC")].append((i, (rng.randrange(2),), (i + 1) % n))
        for _ in range(rng.randint(0, 10 - len(edges["A"] + edges["B"] + edges["C"]))):
            edges[rng.choice("ABC")].append((rng.randrange(n), (rng.randrange(2),),
                                             rng.randrange(n)))
        m = Graph((0,), edges)
        goal = frozenset(rng.sample(range(n), rng.randint(0, n)))
        other = frozenset(rng.sample(range(n), rng.randint(0, n)))
        prop = rng.choice([
            eventually("P", lambda s, g=goal: s in g),
            always_eventually("P", lambda s, g=goal: s in g),
            leads_to("P", lambda s, o=other: s in o, lambda s, g=goal: s in g),
        ])
        fair = [Fairness(rng.choice(["WF", "SF"]), a, rng.random() < 0.5)
                for a in "ABC" if rng.random() < 0.85]
        r = check_and_validate(m, prop, fair)
        if (not r.ok) != _oracle_violated(m, prop, fair):
            disagreements.append((trial, edges, sorted(goal), sorted(other), prop.kind, fair))
    assert not disagreements, disagreements[:3]


# -- applied: Paxos-WOR availability (issue #9) ------------------------------------------------


def _paxos(**kw: Any) -> Any:
    from wormspace.model.wor.paxos import PaxosWOR

    return PaxosWOR(values=1, unsafe=False, **kw)


def test_paxos_capture_and_write_completes_with_a_live_majority_and_patient_clients() -> None:
    m = _paxos(give_up="preempted")
    r = check_liveness(m, m.properties(), m.fairness())
    assert r.ok and sorted(r.holds) == ["CaptureWriteCompletes_c0", "CaptureWriteCompletes_c1"]
    # Not vacuous: every client reaches "capturing at the top ballot" (P) in the state graph.
    graph_states = _reachable(m)
    for prop in m.properties():
        assert any(prop.p(s) for s in graph_states), prop.name


def _reachable(m: Any) -> set[Any]:
    seen = set(m.init_states())
    todo = list(seen)
    acts = m.actions()
    while todo:
        s = todo.pop()
        for a in acts:
            for _p, t in a.successors(s):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
    return seen


@pytest.mark.parametrize("kw, why", [
    ({"give_up": "any"}, "a client gives up without being preempted"),
    ({"give_up": "preempted", "live": 1}, "only a minority of acceptors is live"),
])
def test_paxos_availability_fails_for_a_plausible_mistake(kw: dict[str, Any], why: str) -> None:
    m = _paxos(**kw)
    props, fair = m.properties(), m.fairness()
    r = check_liveness(m, props, fair)
    assert not r.ok, why
    prop = next(p for p in props if p.name == r.violated)
    assert_valid_lasso(m, r, prop, fair)


def test_paxos_availability_needs_fairness() -> None:
    m = _paxos(give_up="preempted")
    prop = m.properties()[0]
    r = check_liveness(m, [prop], [])
    assert not r.ok and r.loop_label == "Stuttering"
    assert_valid_lasso(m, r, prop, [])
