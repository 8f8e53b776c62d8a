"""The symbolic encoding of Chain-WOR (``chain.py``) and its inductive invariant.

Proved for unbounded values, capture ids and clients, for a fixed chain length: each node's
state is a pair of constants (``cap_i``, ``val_i``) and a flag ``down_i``, so the per-position
reasoning is unrolled over the chain (as the explicit model's positions are), while clients,
ids and values stay uninterpreted. Capture ids are totally ordered by an axiomatized ``le``;
no arithmetic. As in ``paxos_z3``, the same encoding is compared with the explicit model on
bounded instances (:func:`conformance`).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

from wormspace.checker.conformance import ConformanceReport, Universe, check_conformance
from wormspace.checker.prove import Formula, ProofSuite, Transition, View, Vocab, lazy_transitions, suite
from wormspace.model.wor import chain as ch
from wormspace.model.wor.client_encoding import ClientEncoding
from wormspace.spec import wor as spec

ID, V_, C = "cid", "value", "client"
PHASES = ("IDLE", "HOLD", "CAPTURING", "WRITING", "WRITTEN", "READING")
RETS = ("NONE", "CAPTURED", "PREEMPTED", "OK", "ALREADY_WRITTEN", "EMPTY", "TIMEOUT", "VALUE")
CLIENT = ("phase", "cur", "arg", "pos", "carried", "retc", "retv")


class ChainEncoding(ClientEncoding):
    """Sorts, symbols, axioms, init, actions, invariant and safety of Chain-WOR over ``V``."""

    def __init__(self, V: Vocab, nodes: int = 2, crashes: int = 1) -> None:
        self.V, self.L, self.crashes = V, nodes, crashes
        for s in (ID, V_, C):
            V.sort(s)
        self.ph = dict(zip(PHASES, V.enum("phase", PHASES)))
        self.rc = dict(zip(RETS, V.enum("ret", RETS)))
        self.at_node = V.enum(f"pos{nodes}", [f"at_n{i}" for i in range(nodes)])
        self.zero = V.const("zero", ID)
        self.none = V.const("none", V_)
        self.le = V.rigid("le", ID, ID)
        self.owns = V.rigid("owns", C, ID)
        self.cap = [V.function(f"cap{i}", [], ID) for i in range(nodes)]
        self.val = [V.function(f"val{i}", [], V_) for i in range(nodes)]
        self.down = [V.relation(f"down{i}") for i in range(nodes)]
        self.phase = V.function("phase", [C], "phase")
        self.cur = V.function("cur", [C], ID)
        self.arg = V.function("arg", [C], V_)
        self.pos = V.function("pos", [C], f"pos{nodes}")
        self.carried = V.function("carried", [C], V_)
        self.retc = V.function("retc", [C], "ret")
        self.retv = V.function("retv", [C], V_)
        self.state = [*self.cap, *self.val, *self.down, self.phase, self.cur, self.arg,
                      self.pos, self.carried, self.retc, self.retv]
        self.sym = {s.name: s for s in self.state}

    # -- helpers ---------------------------------------------------------------------------

    def field_value(self, name: str, val: Any) -> Any:
        """As the base class, and a chain position given as an int becomes its constant."""
        if name == "pos" and isinstance(val, int):
            return self.at_node[val]
        return super().field_value(name, val)

    def const_body(self, val: Any) -> Callable[[], Any]:
        return lambda: val

    # -- axioms, init ----------------------------------------------------------------------

    def axioms(self) -> list[Formula]:
        V, le = self.V, self.le
        return [
            V.forall([ID], lambda x: le(x, x)),
            V.forall([ID] * 3, lambda x, y, z: V.Implies(V.And(le(x, y), le(y, z)), le(x, z))),
            V.forall([ID] * 2, lambda x, y: V.Implies(V.And(le(x, y), le(y, x)), V.eq(x, y))),
            V.forall([ID] * 2, lambda x, y: V.Or(le(x, y), le(y, x))),
            V.forall([ID], lambda x: le(self.zero, x)),
            V.forall([C], lambda c: V.Not(self.owns(c, self.zero))),
            V.forall([C, C, ID], lambda c1, c2, i: V.Implies(
                V.And(self.owns(c1, i), self.owns(c2, i)), V.eq(c1, c2))),
        ]

    def init(self) -> Formula:
        V = self.V
        return V.And(
            *[V.eq(c.pre(), self.zero) for c in self.cap],
            *[V.eq(v.pre(), self.none) for v in self.val],
            *[V.Not(d.pre()) for d in self.down],
            V.forall([C], lambda c: V.And(
                V.eq(self.phase.pre(c), self.ph["IDLE"]), V.eq(self.cur.pre(c), self.zero),
                V.eq(self.arg.pre(c), self.none), V.eq(self.pos.pre(c), self.at_node[0]),
                V.eq(self.carried.pre(c), self.none), V.eq(self.retc.pre(c), self.rc["NONE"]),
                V.eq(self.retv.pre(c), self.none))))

    # -- actions (one per action of ChainWOR, same names) ------------------------------------

    def transitions(self) -> dict[str, Callable[[], Transition]]:
        caps = tuple(c.name for c in self.cap)
        vals = tuple(v.name for v in self.val)
        acts: dict[str, tuple[tuple[str, ...], Callable[[], Formula]]] = {
            "Capture": (CLIENT, self._capture),
            "CaptureStep": ((*caps, *CLIENT), self._capture_step),
            "Write": (CLIENT, self._write),
            "WriteStep": ((*vals, *CLIENT), self._write_step),
            "WriteReturn": (CLIENT, self._write_return),
            "Read": (CLIENT, self._read),
            "ReadTail": (CLIENT, self._read_tail),
            "Timeout": (CLIENT, self._timeout),
            "Crash": (tuple(d.name for d in self.down), self._crash),
        }
        self._mod = {name: mod for name, (mod, _f) in acts.items()}
        return lazy_transitions(acts)

    def _idle_client(self, c: Any, phase: str, ret: Any, arg: Any = None, **more: Any
                     ) -> dict[str, Callable[..., Any]]:
        """Client ``c`` back at position 0 carrying nothing (the explicit model's reset)."""
        fields = dict(phase=phase, arg=self.arg.pre(c) if arg is None else arg, pos=0,
                      carried=self.none, retc=ret, retv=self.none)
        fields.update(more)
        return self.client(c, **fields)

    def _capture(self) -> Formula:
        V = self.V
        return V.exists([C, ID], lambda c, i: V.when(
            V.And(self.in_phase(c, "IDLE", "HOLD"), self.owns(c, i), self.lt(self.cur.pre(c), i),
                  V.forall([ID], lambda j: V.Implies(V.And(self.owns(c, j),
                                                           self.lt(self.cur.pre(c), j)),
                                                     self.le(i, j)))),
            lambda: self.step(CLIENT, **self._idle_client(c, "CAPTURING", "NONE", self.none,
                                                          cur=i))))

    def _at(self, c: Any, p: int) -> Formula:
        return self.V.And(self.V.eq(self.pos.pre(c), self.at_node[p]),
                          self.V.Not(self.down[p].pre()))

    def _capture_step(self) -> Formula:
        V, L = self.V, self.L
        mod = (*[c.name for c in self.cap], *CLIENT)

        def at(c: Any, p: int) -> Formula:
            i, cap = self.cur.pre(c), self.cap[p].pre()
            preempted = V.when(self.le(i, cap), lambda: self.step(
                mod, **self._idle_client(c, "IDLE", "PREEMPTED", self.none)))
            nxt = self._idle_client(c, "HOLD", "CAPTURED", self.none) if p == L - 1 else \
                self.client(c, pos=p + 1)
            passed = V.when(self.lt(cap, i), lambda: self.step(
                mod, **{f"cap{p}": self.const_body(i)}, **nxt))
            return V.Or(preempted, passed)

        return V.exists([C], lambda c: V.when(self.in_phase(c, "CAPTURING"), lambda: V.Or(
            *[V.when(self._at(c, p), lambda p=p: at(c, p)) for p in range(L)])))

    def _write(self) -> Formula:
        V = self.V
        return V.exists([C, V_], lambda c, v: V.when(
            V.And(self.in_phase(c, "HOLD"), self.real(v)),
            lambda: self.step(CLIENT, **self._idle_client(c, "WRITING", "NONE", v))))

    def _write_step(self) -> Formula:
        V, L = self.V, self.L
        mod = (*[v.name for v in self.val], *CLIENT)

        def at(c: Any, p: int) -> Formula:
            val, cap = self.val[p].pre(), self.cap[p].pre()
            # The head decides the value carried: its own if it has one.
            car = V.If(self.real(val), val, self.arg.pre(c)) if p == 0 else self.carried.pre(c)
            ok = V.And(V.eq(cap, self.cur.pre(c)), V.Or(V.eq(val, self.none), V.eq(val, car)))
            preempted = V.when(V.Not(ok), lambda: self.step(
                mod, **self._idle_client(c, "IDLE", "PREEMPTED")))
            nxt = self.client(c, phase="WRITTEN", pos=0, carried=car) if p == L - 1 else \
                self.client(c, pos=p + 1, carried=car)
            passed = V.when(ok, lambda: self.step(mod, **{f"val{p}": self.const_body(car)},
                                                  **nxt))
            return V.Or(preempted, passed)

        return V.exists([C], lambda c: V.when(self.in_phase(c, "WRITING"), lambda: V.Or(
            *[V.when(self._at(c, p), lambda p=p: at(c, p)) for p in range(L)])))

    def _write_return(self) -> Formula:
        V = self.V
        return V.exists([C], lambda c: V.when(self.in_phase(c, "WRITTEN"), lambda: self.step(
            CLIENT, **self._idle_client(c, "IDLE", V.If(
                V.eq(self.carried.pre(c), self.arg.pre(c)), self.rc["OK"],
                self.rc["ALREADY_WRITTEN"])))))

    def _read(self) -> Formula:
        V = self.V
        return V.exists([C], lambda c: V.when(self.in_phase(c, "IDLE", "HOLD"), lambda: self.step(
            CLIENT, **self._idle_client(c, "READING", "NONE", self.none))))

    def _read_tail(self) -> Formula:
        V, tail = self.V, self.val[-1].pre()
        return V.exists([C], lambda c: V.when(
            V.And(self.in_phase(c, "READING"), V.Not(self.down[-1].pre())), lambda: self.step(
                CLIENT, **self._idle_client(
                    c, "IDLE", V.If(self.real(tail), self.rc["VALUE"], self.rc["EMPTY"]),
                    self.none, retv=tail))))

    def _timeout(self) -> Formula:
        V = self.V
        return V.exists([C], lambda c: V.when(
            self.in_phase(c, "CAPTURING", "WRITING", "WRITTEN", "READING"),
            lambda: self.step(CLIENT, **self._idle_client(c, "IDLE", "TIMEOUT"))))

    def _crash(self) -> Formula:
        V = self.V
        mod = tuple(d.name for d in self.down)
        # Fewer than ``crashes`` nodes are down: no set of ``crashes`` nodes is all down.
        room = V.And(*[V.Not(V.And(*[self.down[i].pre() for i in s]))
                       for s in combinations(range(self.L), self.crashes)])
        return V.Or(*[V.when(V.And(room, V.Not(self.down[n].pre())), lambda n=n: self.step(
            mod, **{f"down{n}": self.const_body(True)})) for n in range(self.L)])

    # -- the inductive invariant and the safety properties ---------------------------------

    def invariant(self, at: View) -> dict[str, Formula]:
        V, L, none = self.V, self.L, self.none
        cap = [at(c)() for c in self.cap]
        val = [at(v)() for v in self.val]
        phase, cur, arg, pos, car, retc, retv = (at(self.sym[n]) for n in CLIENT)
        imp, conj, eq = V.Implies, V.And, V.eq

        def real(v: Any) -> Formula:
            return V.Not(eq(v, none))

        inv = {
            "written_prefix": conj(*[imp(real(val[i + 1]), real(val[i])) for i in range(L - 1)]),
            "one_value": conj(*[imp(conj(real(val[i]), real(val[j])), eq(val[i], val[j]))
                                for i in range(L) for j in range(i + 1, L)]),
            "captures_descend": conj(*[self.le(cap[i + 1], cap[i]) for i in range(L - 1)]),
            "capture_passed": V.forall([C], lambda c: conj(*[imp(
                conj(eq(phase(c), self.ph["CAPTURING"]), eq(pos(c), self.at_node[p])),
                conj(*[self.le(cur(c), cap[q]) for q in range(p)])) for p in range(L)])),
            "writer_carries": V.forall([C], lambda c: conj(*[imp(
                conj(eq(phase(c), self.ph["WRITING"]), eq(pos(c), self.at_node[p])),
                conj(real(car(c)), eq(val[p - 1], car(c)))) for p in range(1, L)])),
            "writer_has_value": V.forall([C], lambda c: imp(
                V.Or(eq(phase(c), self.ph["WRITING"]), eq(phase(c), self.ph["WRITTEN"])),
                real(arg(c)))),
            "written_carries": V.forall([C], lambda c: imp(
                eq(phase(c), self.ph["WRITTEN"]), conj(real(car(c)), eq(val[-1], car(c))))),
            "ok_is_written": V.forall([C], lambda c: imp(
                eq(retc(c), self.rc["OK"]), conj(real(arg(c)), eq(val[-1], arg(c))))),
            "read_is_written": V.forall([C], lambda c: imp(
                eq(retc(c), self.rc["VALUE"]), conj(real(retv(c)), eq(val[-1], retv(c))))),
        }
        return inv

    def safety(self) -> dict[str, Formula]:
        """At most one value anywhere in the chain (the explicit model's ``Theorem1``)."""
        V, val = self.V, [v.pre() for v in self.val]
        return {"AtMostOneValue": V.And(*[V.Implies(V.And(self.real(a), self.real(b)), V.eq(a, b))
                                          for a in val for b in val])}

    def steps(self, at: View) -> dict[str, Formula]:
        """Theorem 1: the tail's value, once written, never changes."""
        V, tail = self.V, self.val[-1]
        return {"Theorem1": V.Implies(self.real(tail.pre()), V.eq(at(tail)(), tail.pre()))}


def proof_suite(nodes: int = 2, crashes: int = 1) -> ProofSuite:
    """The obligations of Chain-WOR's inductive invariant for a chain of ``nodes`` nodes."""
    return suite(f"wor.chain[nodes={nodes}]", lambda V: ChainEncoding(V, nodes, crashes))


# -- conformance with the explicit model -------------------------------------------------------

def universe(m: ch.ChainWOR) -> Universe:
    """Bounded sorts for ``m``: capture ids 0..rounds*clients, values 0 (none)..V, clients."""
    ids = range(m.rounds * m.clients + 1)
    return Universe(sizes={ID: len(ids), V_: m.values + 1, C: m.clients},
                    consts={"zero": 0, "none": 0},
                    rigid={"le": {(a, b) for a in ids for b in ids if a <= b},
                           "owns": {(c, m.cid(c, r + 1)) for c in range(m.clients)
                                    for r in range(m.rounds)}})


def project(m: ch.ChainWOR, s: ch.State) -> dict[str, Any]:
    """The explicit state in the encoding's symbols (ghost variables left out)."""
    nodes, down, cl, _ghost = s
    out: dict[str, Any] = {}
    for i, (cap, val) in enumerate(nodes):
        out[f"cap{i}"] = {(): cap}
        out[f"val{i}"] = {(): val}
        out[f"down{i}"] = {()} if down >> i & 1 else set()
    fields: dict[str, Callable[[int, Any], Any]] = {"phase": lambda c, x: x[0], "cur": lambda c, x: m.cid(c, x[1]),
              "arg": lambda c, x: x[2], "pos": lambda c, x: x[3], "carried": lambda c, x: x[4],
              "retc": lambda c, x: min(x[5], RETS.index("VALUE")),
              "retv": lambda c, x: x[5] - spec.VALUE if x[5] >= spec.VALUE else 0}
    for name, f in fields.items():
        out[name] = {(c,): f(c, x) for c, x in enumerate(cl)}
    return out


def conformance(nodes: int = 2, clients: int = 1, values: int = 2, rounds: int = 1,
                crashes: int = 1, max_states: int | None = None) -> ConformanceReport:
    """Compare the encoding with ``ChainWOR`` on every reachable state of a bounded instance
    (the first ``max_states`` in BFS order if given)."""
    m = ch.ChainWOR(nodes=nodes, clients=clients, values=values, rounds=rounds, crashes=crashes)
    return check_conformance(m, lambda V: ChainEncoding(V, nodes, crashes), universe(m),
                             lambda s: project(m, s), max_states=max_states)
