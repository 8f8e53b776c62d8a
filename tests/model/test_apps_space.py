"""The application models' one-step WormSpace (model/apps/space.py) against the atomic specs.

Every sequence of one-step operations on a register, with silent settles in between, must give a
client history that the atomic WOR spec (``spec/wor.py``) accepts as linearizable: otherwise the
application models would be checked over behaviours the WOS interface cannot produce.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wormspace.model.apps import space as S
from wormspace.spec import wor

OPS = ("capture", "write", "read", "settle")
CLIENTS, VALUES = 2, 2

step = st.tuples(st.integers(0, CLIENTS - 1), st.sampled_from(OPS), st.integers(1, VALUES),
                 st.integers(0, 3))


def run(steps, flaky, space=S):
    sp = space.empty(1, 1)
    sp = space.alloc(sp, 0, 1)[0][1]
    history = []
    holds = [False] * CLIENTS  # the client's preceding op on the register was a capture
    for c, op, v, pick in steps:
        if op == "write" and not holds[c]:
            continue  # the WOR contract: a write uses the cid of the preceding capture
        if op == "settle":
            outs = [(None, t) for _p, t in space.settle(sp)]
            if outs:
                sp = outs[pick % len(outs)][1]
            continue
        if op == "capture":
            outs = space.capture(sp, 0, 0, c, flaky=flaky)
        elif op == "write":
            outs = space.write(sp, 0, 0, c, v, flaky=flaky)
        else:
            outs = space.read(sp, 0, 0, flaky=flaky)
        code, sp = outs[pick % len(outs)]
        holds[c] = op == "capture" and code == S.CAPTURED
        history.append((c, "invoke", op, v if op == "write" else 0))
        history.append((c, "return", wor.ret_name(code), 0))
    return history, sp


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=10), st.booleans())
def test_one_step_histories_are_linearizable(steps, flaky):
    history, _ = run(steps, flaky)
    assert wor.linearizable(history, CLIENTS, VALUES) is None, history


def test_a_write_without_the_capture_check_is_not_linearizable(monkeypatch):
    """Negative control: a space whose write ignores preemption yields a history the spec rejects."""
    real = S.write

    def careless(sp, s, off, p, v, *, flaky=False):
        val, _own, _prop = sp[s][2][off]
        if val == 0:
            return [(S.OK, S._reg(sp, s, off, (v, p + 1, 0)))]
        return real(sp, s, off, p, v, flaky=flaky)

    monkeypatch.setattr(S, "write", careless)
    steps = [(0, "capture", 1, 0), (1, "capture", 1, 0), (0, "write", 1, 0)]
    history, _ = run(steps, False)
    assert wor.linearizable(history, CLIENTS, VALUES) == 5


def test_segment_gates_and_trim():
    sp = S.empty(2, 1)
    assert S.capture(sp, 0, 0, 0) == [(S.NOT_ALLOCATED, sp)]
    (code, sp), = S.alloc(sp, 0, 2)
    assert code == S.META + 2
    assert S.alloc(sp, 0, 1)[0][0] == S.META + 2  # first allocation wins
    (_, sp), = S.capture(sp, 0, 0, 1)
    (code, sp), = S.write(sp, 0, 0, 1, 3)
    assert code == S.OK and S.value(sp, 0, 0) == 3
    (code, sp), = S.trim(sp, 0)
    assert code == S.TRIMMED and S.read(sp, 0, 0)[0][0] == S.TRIMMED
    assert S.check(sp, 0)[0][0] == S.TRIMMED and S.check(sp, 1)[0][0] == S.NOT_ALLOCATED
    with pytest.raises(ValueError, match="values are"):
        S.write(sp, 1, 0, 0, 0)


def test_preempted_value_may_land_later():
    sp = S.alloc(S.empty(1, 1), 0, 1)[0][1]
    sp = S.capture(sp, 0, 0, 0)[0][1]
    sp = S.capture(sp, 0, 0, 1)[0][1]
    (code, sp), = S.write(sp, 0, 0, 0, 1)
    assert code == S.PREEMPTED and S.value(sp, 0, 0) == 0
    [(where, landed)] = list(S.settle(sp))
    assert where == (0, 0, 1)
    assert S.value(landed, 0, 0) == 1
    assert S.write(landed, 0, 0, 1, 2)[0][0] == S.ALREADY_WRITTEN
