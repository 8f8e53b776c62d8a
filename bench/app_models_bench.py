"""The application models (issue #5): states and time per application and configuration, and
the lines of model code per application.

    python bench/app_models_bench.py [--json bench/results/app_models.json]

Each configuration is checked (invariants and the refinement to its spec, as ``wormspace
check`` does) once in this process. Lines are *code lines*: not blank, not comment-only, not
part of a docstring (counted with ``tokenize``), the rule the layer docs use.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import tokenize
from pathlib import Path

from wormspace.catalog import BY_NAME
from wormspace.checker.explore import check
from wormspace.checker.registry import instantiate

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = [
    ("apps.wormpaxos", {}),
    ("apps.wormpaxos", {"policy": "rotating", "size": 1}),
    ("apps.wormlog", {}),
    ("apps.wormlog", {"size": 1}),
    ("apps.wormtx", {}),
    ("apps.wormtx", {"precaptured": True}),
    ("apps.wormtx", {"variant": "A8"}),
    ("apps.wormtx", {"variant": "A8", "rm": 5, "tms": 3}),
]
FILES = {
    "WormPaxos": ("model/apps/wormpaxos.py", "model/apps/wormpaxos_z3.py", "spec/smr.py",
                  "impl/apps/wormpaxos.py"),
    "WormLog": ("model/apps/wormlog.py", "model/apps/wormlog_z3.py", "spec/sharedlog.py",
                "impl/apps/wormlog.py"),
    "WormTX": ("model/apps/wormtx.py", "model/apps/wormtx_z3.py", "spec/tcommit.py",
               "impl/apps/wormtx.py"),
}


def code_lines(path: Path) -> int:
    """Lines holding code: no blank lines, comments or docstrings."""
    src = path.read_text()
    lines: set[int] = set()
    prev = tokenize.INDENT
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.STRING and prev in (tokenize.INDENT, tokenize.DEDENT,
                                                    tokenize.NEWLINE, tokenize.NL):
            prev = tok.type  # a docstring (a string statement on its own)
            continue
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):
            lines.update(range(tok.start[0], tok.end[0] + 1))
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            prev = tok.type
    return len(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "app_models.json")
    args = ap.parse_args()
    rows = []
    print("| model | parameters | distinct | generated | depth | seconds | verdict |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, params in CONFIGS:
        e = BY_NAME[name]
        model = instantiate(e.target, e.params, {k: str(v) for k, v in params.items()}, name)
        t0 = time.perf_counter()
        r = check(model)
        secs = time.perf_counter() - t0
        shown = " ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
        rows.append(dict(model=name, params=params, distinct=r.distinct, generated=r.generated,
                         depth=r.depth, seconds=round(secs, 2), result=r.result))
        print(f"| {name} | {shown} | {r.distinct:,} | {r.generated:,} | {r.depth} | {secs:.2f} "
              f"| {r.result} |", flush=True)
    print("\n| application | model | proof encoding | spec | implementation |")
    print("|---|---:|---:|---:|---:|")
    lines = {}
    for app, files in FILES.items():
        counts = [code_lines(ROOT / f) for f in files]
        lines[app] = dict(zip(("model", "proof", "spec", "impl"), counts))
        print(f"| {app} | " + " | ".join(str(c) for c in counts) + " |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"checks": rows, "code_lines": lines}, indent=1) + "\n")


if __name__ == "__main__":
    main()
