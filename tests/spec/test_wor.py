"""The atomic WOR spec: exhaustive check of its own invariants, and linearizability verdicts
on small hand-written histories."""

from wormspace.checker.explore import check
from wormspace.spec import wor
from wormspace.spec.wor import linearizable


def test_spec_explores_and_holds_its_invariants() -> None:
    r = check(wor.WOR(2, 2), deadlock=False)
    assert r.result == "ok" and r.distinct > 100


def test_symmetry_is_exact_and_reduces() -> None:
    plain = check(wor.WOR(2, 2), deadlock=False)
    sym = check(wor.WOR(2, 2), deadlock=False, symmetry=True)
    assert sym.result == "ok" and sym.distinct < plain.distinct


def test_write_after_capture_then_read_is_linearizable() -> None:
    h = [(0, "invoke", "capture", 0), (0, "return", "CAPTURED", 0),
         (0, "invoke", "write", 1), (0, "return", "OK", 0),
         (1, "invoke", "read", 0), (1, "return", "v1", 0)]
    assert linearizable(h, clients=2, values=2) is None


def test_read_cannot_return_empty_after_an_ok_write() -> None:
    h = [(0, "invoke", "capture", 0), (0, "return", "CAPTURED", 0),
         (0, "invoke", "write", 1), (0, "return", "OK", 0),
         (1, "invoke", "read", 0), (1, "return", "EMPTY", 0)]
    assert linearizable(h, clients=2, values=2) == 5


def test_write_preempted_by_a_completed_capture_cannot_succeed() -> None:
    h = [(0, "invoke", "capture", 0), (0, "return", "CAPTURED", 0),
         (1, "invoke", "capture", 0), (1, "return", "CAPTURED", 0),
         (0, "invoke", "write", 1), (0, "return", "OK", 0)]
    assert linearizable(h, clients=2, values=2) == 5


def test_preempted_write_may_still_take_effect() -> None:
    h = [(0, "invoke", "capture", 0), (0, "return", "CAPTURED", 0),
         (0, "invoke", "write", 2), (0, "return", "PREEMPTED", 0),
         (1, "invoke", "read", 0), (1, "return", "v2", 0)]
    assert linearizable(h, clients=2, values=2) is None


def test_value_never_written_cannot_be_read() -> None:
    h = [(0, "invoke", "unsafe_write", 1), (0, "return", "OK", 0),
         (1, "invoke", "read", 0), (1, "return", "v2", 0)]
    assert linearizable(h, clients=2, values=2) == 3


def test_write_once_second_value_is_already_written() -> None:
    h = [(0, "invoke", "unsafe_write", 1), (0, "return", "OK", 0),
         (1, "invoke", "unsafe_write", 2), (1, "return", "OK", 0)]
    assert linearizable(h, clients=2, values=2) == 3
    h[3] = (1, "return", "ALREADY_WRITTEN", 0)
    assert linearizable(h, clients=2, values=2) is None
