"""Chain-WOR: forwarding head to tail, refusals, reads at the tail, and a shuffled-network run."""

from __future__ import annotations

import random

import pytest
from wormspace.impl.core import (
    Accept,
    BallotCounter,
    ChainCaptureOp,
    ChainCaptureWriteOp,
    ChainNode,
    ChainReadOp,
    ChainReply,
    ChainRequest,
    ChainWriteOp,
    InvalidMessage,
    Kind,
    Outcome,
    Prepare,
    PrepareRange,
    Read,
    Trim,
    WorId,
    WorRecord,
    replay,
)

W = WorId(3, Kind.DATA, 1)


def run_chain(nodes: list[ChainNode], op: object) -> list[str]:
    """Deliver in order; returns the path of hops taken ('n0', 'n1', ..., 'client')."""
    path: list[str] = []
    queue = [(i, m) for i, m in op.start()]  # type: ignore[attr-defined]
    while queue:
        i, msg = queue.pop(0)
        path.append(f"n{i}")
        out, _ = nodes[i].handle(msg)
        if isinstance(out, ChainRequest):
            queue.append((i + 1, out))
        else:
            path.append("client")
            queue.extend(op.on_reply(out.node, out))  # type: ignore[attr-defined]
    return path


def test_capture_and_write_travel_head_to_tail_and_read_hits_the_tail() -> None:
    nodes = [ChainNode(i, 3) for i in range(3)]
    cap = ChainCaptureOp(W, (1, 1), 3, client=7)
    assert run_chain(nodes, cap) == ["n0", "n1", "n2", "client"]
    assert cap.result is not None and cap.result.outcome is Outcome.OK
    wr = ChainWriteOp(W, b"v", (1, 1), 3, client=7)
    run_chain(nodes, wr)
    assert wr.result is not None and wr.result.outcome is Outcome.OK
    assert all(n.acceptor.state.get(W).value == b"v" for n in nodes)
    rd = ChainReadOp(W, 3, client=7)
    assert run_chain(nodes, rd) == ["n2", "client"]
    assert rd.result is not None and rd.result.value == b"v"


def test_a_refusing_node_answers_the_client_itself() -> None:
    nodes = [ChainNode(i, 3) for i in range(3)]
    nodes[1].acceptor.handle(Prepare(0, W, (5, 5)))
    cap = ChainCaptureOp(W, (1, 1), 3, client=1)
    assert run_chain(nodes, cap) == ["n0", "n1", "client"]
    assert cap.result is not None and (cap.result.outcome, cap.result.ballot) == (
        Outcome.PREEMPTED, (5, 5))


def test_capture_reveals_the_highest_value_anywhere_on_the_chain() -> None:
    nodes = [ChainNode(i, 3) for i in range(3)]
    nodes[0].acceptor.handle(Accept(0, W, (1, 1), b"old"))  # reached the head only
    nodes[0].acceptor.handle(Accept(0, W, (2, 1), b"newer"))
    nodes[1].acceptor.handle(Accept(0, W, (1, 1), b"old"))
    op = ChainCaptureWriteOp(W, b"mine", (3, 2), 3, client=2)
    run_chain(nodes, op)
    assert op.result is not None
    assert (op.result.outcome, op.result.value) == (Outcome.ALREADY_WRITTEN, b"newer")
    assert all(n.acceptor.state.get(W).value == b"newer" for n in nodes)


def test_a_value_not_at_the_tail_is_not_read() -> None:
    nodes = [ChainNode(i, 3) for i in range(3)]
    nodes[0].acceptor.handle(Accept(0, W, (1, 1), b"half"))
    rd = ChainReadOp(W, 3, client=1)
    run_chain(nodes, rd)
    assert rd.result is not None and rd.result.outcome is Outcome.EMPTY
    # A read delivered to a non-tail node is passed on untouched, never answered there.
    out, persist = nodes[0].handle(ChainRequest(1, Read(0, W)))
    assert isinstance(out, ChainRequest) and not persist


def test_trimmed_chain_answers_trimmed_and_completes_the_trim() -> None:
    nodes = [ChainNode(i, 3) for i in range(3)]
    nodes[2].acceptor.handle(Trim(0, 3))
    rd = ChainReadOp(W, 3, client=1)
    path = run_chain(nodes, rd)
    assert rd.result is not None and rd.result.outcome is Outcome.TRIMMED
    assert path == ["n2", "client", "n0", "n1", "n2", "client"]  # the trim went head to tail
    assert all(3 in n.acceptor.state.trimmed for n in nodes)


def test_chain_rejects_what_it_cannot_chain() -> None:
    with pytest.raises(InvalidMessage):
        ChainRequest(1, PrepareRange(0, 1, 0, 2, (1, 1)))  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage):
        ChainNode(3, 3)
    with pytest.raises(InvalidMessage):
        ChainNode(0, 3).handle(Prepare(0, W, (1, 1)))  # type: ignore[arg-type]


def test_shuffled_chain_chooses_one_value_per_wor_and_the_tail_reads_it() -> None:
    for seed in range(40):
        rng = random.Random(seed)
        n = rng.choice([2, 3])
        nodes = [ChainNode(i, n) for i in range(n)]
        durable: list[list] = [[] for _ in range(n)]
        votes: dict[tuple, set[int]] = {}
        chosen: dict[WorId, set[bytes]] = {}
        wors = [WorId(0, Kind.DATA, k) for k in range(2)]
        ops: list = []
        inflight: list[tuple[str, int, object]] = []
        for c in range(3):
            counter = BallotCounter(c + 1)
            for w in wors:
                op = ChainCaptureWriteOp(w, f"c{c}-{w.offset}".encode(), counter.next(), n, len(ops))
                ops.append((op, counter))
                inflight += [("node", i, m) for i, m in op.start()]
        reads: list = []
        for step in range(4000):
            if all(op.done and op.result.outcome is not Outcome.PREEMPTED for op, _ in ops):
                break
            if step == 150:  # reads join concurrently
                for w in wors:
                    rd = ChainReadOp(w, n, len(ops))
                    ops.append((rd, BallotCounter(99)))
                    reads.append(rd)
                    inflight += [("node", i, m) for i, m in rd.start()]
            if not inflight or rng.random() < 0.01:  # timeouts: resend, or restart after PREEMPTED
                for op, counter in ops:
                    res = op.result
                    if op.done and res.outcome is Outcome.PREEMPTED:
                        inflight += [("node", i, m) for i, m in op.retry(counter.next(res.ballot))]
                    elif not op.done:
                        inflight += [("node", i, m) for i, m in op.retry()]
                continue
            where, idx, msg = inflight.pop(rng.randrange(len(inflight)))
            if rng.random() < 0.15:
                inflight.append((where, idx, msg))  # duplicate
            if rng.random() < 0.15:
                continue  # lost
            if where == "client":
                op = ops[idx][0]
                inflight += [("node", i, m) for i, m in op.on_reply(msg.node, msg)]
                continue
            if rng.random() < 0.02:  # crash and restart from durable records
                nodes[idx] = ChainNode(idx, n, replay(durable[idx]))
            out, persist = nodes[idx].handle(msg)
            durable[idx].extend(persist)
            for r in persist:
                if isinstance(r, WorRecord) and r.state.accepted is not None:
                    key = (r.wor, r.state.accepted, r.state.value)
                    votes.setdefault(key, set()).add(idx)
                    if len(votes[key]) == n:  # the whole chain is the quorum
                        chosen.setdefault(r.wor, set()).add(r.state.value)
            if isinstance(out, ChainRequest):
                inflight.append(("node", idx + 1, out))
            else:
                assert isinstance(out, ChainReply)
                inflight.append(("client", out.client, out))
        for w in wors:
            assert len(chosen.get(w, ())) <= 1, f"seed {seed}: {chosen}"
        for op, _ in ops:
            res = op.result
            if op.done and res.outcome in (Outcome.OK, Outcome.ALREADY_WRITTEN) and res.value:
                assert chosen.get(op.wor) == {op.result.value}, f"seed {seed}"
        tail = nodes[-1].acceptor.state
        for w in wors:
            got = tail.get(w).value
            assert (got is None and not chosen.get(w)) or chosen.get(w) == {got}, f"seed {seed}"
        assert all(op.done for op, _ in ops), f"seed {seed}: an op never finished"
