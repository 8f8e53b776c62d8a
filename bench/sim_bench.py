"""Benchmark: the deterministic simulator and the checks of its traces.

* simulator schedules per second, for schedules of growing size (one call without faults up to
  the campaign's default: six calls over two clients with every fault kind), with the trace
  recorded (as campaigns run) and without;
* trace-checking events per second: the whole ``check_trace`` (trace validation against
  ``wor.paxos`` per WOR, the WOR value check, the exact spec check of small histories, the trim
  checks), and trace validation alone;
* a campaign as ``wormspace refine --sim`` runs it (simulate + check per run).

    python bench/sim_bench.py [--runs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

from wormspace.impl.sim import OpSpec, Schedule, random_schedule, simulate
from wormspace.refinement_tests import wor_events
from wormspace.refinement_tests.sim_checks import check_trace, run_campaign

SHAPES: dict[str, Callable[[int], Schedule]] = {
    "1 call, no faults": lambda i: Schedule(i, clients=1, ops=(OpSpec(1, "write", 0),),
                                           final_reads=False),
    "3 calls, 2 clients, no faults": lambda i: Schedule(
        i, ops=(OpSpec(1, "write", 0), OpSpec(2, "write", 0), OpSpec(2, "read", 0)),
        final_reads=False),
    "campaign default (6 calls, all faults)": lambda i: random_schedule(random.Random(i)),
}


def bench_simulator(runs: int) -> list[dict[str, Any]]:
    rows = []
    for name, make in SHAPES.items():
        schedules = [make(i) for i in range(runs)]
        simulate(schedules[0])  # warm up imports and caches
        row: dict[str, Any] = {"shape": name}
        for record in (True, False):
            t0, c0 = time.perf_counter(), time.process_time()
            events = sum(len(simulate(s, record=record).events) for s in schedules)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            key = "traced" if record else "untraced"
            row[f"{key}_per_s"] = runs / dt
            row[f"{key}_per_cpu_s"] = runs / cpu
            if record:
                row["events_per_run"] = events / runs
                row["sim_events_per_cpu_s"] = events / cpu
        rows.append(row)
    return rows


def bench_checks(runs: int) -> dict[str, Any]:
    traces = [simulate(random_schedule(random.Random(i))).events for i in range(runs)]
    events = sum(len(t) for t in traces)
    c0 = time.process_time()
    bad = sum(not check_trace(t).ok for t in traces)
    full = time.process_time() - c0
    c0 = time.process_time()
    model_events = 0
    for t in traces:
        for proj in wor_events.project(t).values():
            model_events += len(proj.events)
            bad += not wor_events.check_wor(proj).ok
    validation = time.process_time() - c0
    assert bad == 0, "the correct implementation failed a check"
    return {"traces": runs, "events": events, "model_events": model_events,
            "check_trace_events_per_s": events / full,
            "validation_events_per_s": events / validation,
            "validation_model_events_per_s": model_events / validation}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--json", help="write the numbers to this file")
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load:.2f} on {os.cpu_count()} CPUs)\n")
    sim = bench_simulator(args.runs)
    print("Rates per CPU second of this process (per wall second in parentheses: lower when "
          "other processes share the CPUs).\n")
    print("| schedule | events/run | schedules/s (traced) | schedules/s (no trace) | "
          "simulated events/s |")
    print("|---|---:|---:|---:|---:|")
    for r in sim:
        print(f"| {r['shape']} | {r['events_per_run']:.0f} | {r['traced_per_cpu_s']:,.0f} "
              f"({r['traced_per_s']:,.0f}) | {r['untraced_per_cpu_s']:,.0f} "
              f"({r['untraced_per_s']:,.0f}) | {r['sim_events_per_cpu_s']:,.0f} |")
    chk = bench_checks(args.runs)
    print(f"\nchecking {chk['traces']} campaign traces ({chk['events']:,} events, "
          f"{chk['model_events']:,} model events), per CPU second:")
    print(f"  check_trace (all four checks): {chk['check_trace_events_per_s']:,.0f} events/s")
    print(f"  trace validation vs wor.paxos alone: {chk['validation_events_per_s']:,.0f} "
          f"events/s ({chk['validation_model_events_per_s']:,.0f} model events/s)")
    camp = run_campaign(runs=args.runs, seed=1)
    c = camp.as_json()
    print(f"\ncampaign (refine --sim, {c['runs']} runs): {c['operations']:,} operations, "
          f"{sum(c['faults'].values()):,} faults, {c['events']:,} events checked, "
          f"{c['events_per_second']:,.0f} events/s checked, "
          f"{c['runs'] / c['seconds']:.0f} runs/s end to end, {len(c['violations'])} violations")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"load": load, "simulator": sim, "checks": chk,
                       "campaign": {k: v for k, v in c.items() if k != "violations"}}, f, indent=1)


if __name__ == "__main__":
    main()
