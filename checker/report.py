"""Reports for people: a Markdown page for the repository and one self-contained HTML page.

The input is a plain dict (also written as ``report.json``), so the numbers a reader sees are
the numbers a script can check:

``title``, ``generated``, ``profile``, ``command``, ``environment`` (versions, machine),
``checks`` (one row per model check: ``layer``, ``module``, ``params``, ``options``, ``expect``,
``command`` to reproduce, and ``result`` = the ``--json`` document), ``proofs`` (Z3 suites:
``name``, ``command``, ``ok``, ``seconds``, ``obligations`` with ``name``/``verdict``/
``seconds``/``detail``, ``conformance``), ``comparisons`` (tables with ``title``, ``columns``,
``rows``, ``note``) and ``campaigns`` (trace-test campaigns: ``layer``, ``runs``,
``operations``, ``faults``, ``events``, ``violations``, ``command``).

This module knows nothing of WormSpace: the project's ``wormspace report`` builds the dict.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from .svg import growth_chart, sequence_chart, trace_steps_from_json


def verdict(row: dict[str, Any]) -> str:
    """``pass`` when the result is what the row expects (``ok``, or a violation for a mutant)."""
    result = row["result"]["result"]
    if row.get("expect", "ok") == "ok":
        return "pass" if result == "ok" else f"FAIL ({result})"
    return "caught" if result != "ok" else "MISSED (no violation found)"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def row_id(row: dict[str, Any]) -> str:
    """A stable id for a check row (used for anchors and SVG file names)."""
    params = "-".join(f"{k}{v}" for k, v in row["result"]["params"].items())
    opts = "-".join(k for k, v in sorted(row.get("options", {}).items()) if v is True)
    return _slug(f"{row['module']}-{params}-{opts}")


def _config(row: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in row["result"]["params"].items() if v != "")
    opts = [k for k, v in row.get("options", {}).items() if v is True]
    return params + (f" ({', '.join(opts)})" if opts else "")


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|")


def render_markdown(report: dict[str, Any], *, svg_dir: str = "svg") -> str:
    """The report as Markdown; charts are referenced as files in ``svg_dir``."""
    out: list[str] = [f"# {report['title']}", ""]
    out.append(f"Generated {report['generated']} by `{report['command']}` "
               f"(profile `{report['profile']}`).")
    env = report.get("environment", {})
    if env:
        out.append("")
        out.append("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()) + ".")
    checks = report.get("checks", [])
    out += ["", "## Summary", "",
            "| layer | module | configuration | distinct | generated | depth | seconds | verdict |",
            "|---|---|---|---:|---:|---:|---:|---|"]
    for row in checks:
        r = row["result"]
        out.append(f"| {row['layer']} | [{row['module']}](#{row_id(row)}) | {_cell(_config(row))} "
                   f"| {r['distinct']:,} | {r['generated']:,} | {r['depth']} "
                   f"| {r['seconds']:.2f} | {verdict(row)} |")
    proofs = report.get("proofs", [])
    if proofs:
        out += ["", "| proof suite | obligations | proved | seconds | conformance | verdict |",
                "|---|---:|---:|---:|---|---|"]
        for p in proofs:
            n = len(p["obligations"])
            proved = sum(1 for o in p["obligations"] if o["verdict"] == "proved")
            conf = p.get("conformance", {}).get("summary", "-")
            out.append(f"| {p['name']} | {n} | {proved} | {p['seconds']:.2f} | {conf} "
                       f"| {'pass' if p['ok'] else 'FAIL'} |")
    for comp in report.get("comparisons", []):
        out += ["", f"## {comp['title']}", ""]
        out.append("| " + " | ".join(comp["columns"]) + " |")
        out.append("|" + "---|" * len(comp["columns"]))
        for r in comp["rows"]:
            out.append("| " + " | ".join(str(x) for x in r) + " |")
        if comp.get("note"):
            out += ["", comp["note"]]
    campaigns = report.get("campaigns", [])
    if campaigns:
        out += ["", "## Trace-test campaigns", "",
                "| layer | where | runs | operations | faults injected | events checked | "
                "violations | command |",
                "|---|---|---:|---:|---|---:|---:|---|"]
        for c in campaigns:
            out.append(f"| {c['layer']} | {c.get('where', '')} | {c['runs']} | "
                       f"{c['operations']:,} | {c['faults']} | {c['events']:,} | "
                       f"{c['violations']} | `{c['command']}` |")
    out += ["", "## Checks in detail"]
    for row in checks:
        out += _markdown_row(row, svg_dir)
    for p in proofs:
        out += ["", f"### Proof: {p['name']}", "", f"Reproduce: `{p['command']}`", "",
                "| obligation | verdict | seconds |", "|---|---|---:|"]
        for o in p["obligations"]:
            out.append(f"| {o['name']} | {o['verdict']} | {o['seconds']:.3f} |")
        for o in p["obligations"]:
            if o["verdict"] != "proved" and o.get("detail"):
                out += ["", f"Counterexample to induction for {o['name']}:", "", "```text",
                        o["detail"], "```"]
    out.append("")
    return "\n".join(out)


def _markdown_row(row: dict[str, Any], svg_dir: str) -> list[str]:
    r = row["result"]
    rid = row_id(row)
    out = ["", f'<a id="{rid}"></a>', "", f"### {row['module']} — {_config(row)}", "",
           f"Reproduce: `{row['command']}`", "",
           f"Result: **{verdict(row)}** ({r['result']}"
           + (f": {r['violated']}" if r.get("violated") else "") + "); "
           f"{r['distinct']:,} distinct / {r['generated']:,} generated states, depth "
           f"{r['depth']}, {r['seconds']:.2f} s; collision probability "
           f"{r['collision_probability']:.1E}.", ""]
    invs = row.get("invariants", [])
    if invs:
        held = r["result"] not in ("invariant",)
        out.append("Invariants: " + ", ".join(
            f"{name} ({'held' if held or name != r.get('violated') else 'VIOLATED'})"
            for name in invs) + ".")
    if r.get("refinement"):
        ref_ok = r["result"] != "refinement"
        out.append(f"Refinement of `{r['refinement']}`: {'held' if ref_ok else 'VIOLATED'}.")
    out += ["", "| action | distinct | generated | |", "|---|---:|---:|---|"]
    for name, (d, g) in r["coverage"].items():
        flag = "**never enabled**" if g == 0 else ""
        out.append(f"| {name} | {d:,} | {g:,} | {flag} |")
    if r.get("levels"):
        out += ["", f"![state growth]({svg_dir}/growth-{rid}.svg)"]
    if r.get("trace"):
        out += ["", f"![counterexample]({svg_dir}/trace-{rid}.svg)"]
    return out


_CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;
padding:3px 8px}th{background:#f2f4f7}td.num{text-align:right}.pass,.caught{color:#1e7b34;
font-weight:bold}.fail{color:#b02a2a;font-weight:bold}code{background:#f4f4f4;padding:1px 3px}
pre{background:#f7f7f7;padding:8px;overflow:auto}.never{color:#b02a2a}"""


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    h: list[str] = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                    f"<title>{escape(report['title'])}</title><style>{_CSS}</style></head><body>",
                    f"<h1>{escape(report['title'])}</h1>",
                    f"<p>Generated {escape(report['generated'])} by <code>"
                    f"{escape(report['command'])}</code> (profile <code>"
                    f"{escape(report['profile'])}</code>).</p>"]
    env = report.get("environment", {})
    if env:
        h.append("<p>Environment: " + escape(", ".join(f"{k} {v}" for k, v in env.items()))
                 + ".</p>")
    checks = report.get("checks", [])
    h.append("<h2>Summary</h2><table><tr><th>layer</th><th>module</th><th>configuration</th>"
             "<th>distinct</th><th>generated</th><th>depth</th><th>seconds</th>"
             "<th>verdict</th></tr>")
    for row in checks:
        r = row["result"]
        v = verdict(row)
        cls = "pass" if v in ("pass", "caught") else "fail"
        h.append(f'<tr><td>{escape(row["layer"])}</td><td><a href="#{row_id(row)}">'
                 f'{escape(row["module"])}</a></td><td>{escape(_config(row))}</td>'
                 f'<td class="num">{r["distinct"]:,}</td><td class="num">{r["generated"]:,}</td>'
                 f'<td class="num">{r["depth"]}</td><td class="num">{r["seconds"]:.2f}</td>'
                 f'<td class="{cls}">{escape(v)}</td></tr>')
    h.append("</table>")
    proofs = report.get("proofs", [])
    if proofs:
        h.append("<table><tr><th>proof suite</th><th>obligations</th><th>proved</th>"
                 "<th>seconds</th><th>conformance</th><th>verdict</th></tr>")
        for p in proofs:
            n = len(p["obligations"])
            proved = sum(1 for o in p["obligations"] if o["verdict"] == "proved")
            conf = p.get("conformance", {}).get("summary", "-")
            cls = "pass" if p["ok"] else "fail"
            h.append(f"<tr><td>{escape(p['name'])}</td><td class='num'>{n}</td>"
                     f"<td class='num'>{proved}</td><td class='num'>{p['seconds']:.2f}</td>"
                     f"<td>{escape(str(conf))}</td><td class='{cls}'>"
                     f"{'pass' if p['ok'] else 'FAIL'}</td></tr>")
        h.append("</table>")
    for comp in report.get("comparisons", []):
        h.append(f"<h2>{escape(comp['title'])}</h2><table><tr>"
                 + "".join(f"<th>{escape(c)}</th>" for c in comp["columns"]) + "</tr>")
        for r in comp["rows"]:
            h.append("<tr>" + "".join(f"<td>{escape(str(x))}</td>" for x in r) + "</tr>")
        h.append("</table>")
        if comp.get("note"):
            h.append(f"<p>{escape(comp['note'])}</p>")
    campaigns = report.get("campaigns", [])
    if campaigns:
        h.append("<h2>Trace-test campaigns</h2><table><tr><th>layer</th><th>where</th>"
                 "<th>runs</th><th>operations</th><th>faults injected</th><th>events checked</th>"
                 "<th>violations</th><th>command</th></tr>")
        for c in campaigns:
            h.append(f"<tr><td>{escape(c['layer'])}</td><td>{escape(c.get('where', ''))}</td>"
                     f"<td class='num'>{c['runs']}</td>"
                     f"<td class='num'>{c['operations']:,}</td><td>{escape(str(c['faults']))}</td>"
                     f"<td class='num'>{c['events']:,}</td><td class='num'>{c['violations']}</td>"
                     f"<td><code>{escape(c['command'])}</code></td></tr>")
        h.append("</table>")
    h.append("<h2>Checks in detail</h2>")
    for row in checks:
        h += _html_row(row)
    for p in proofs:
        h.append(f"<h3>Proof: {escape(p['name'])}</h3><p>Reproduce: <code>"
                 f"{escape(p['command'])}</code></p><table><tr><th>obligation</th>"
                 "<th>verdict</th><th>seconds</th></tr>")
        for o in p["obligations"]:
            cls = "pass" if o["verdict"] == "proved" else "fail"
            h.append(f"<tr><td>{escape(o['name'])}</td><td class='{cls}'>"
                     f"{escape(o['verdict'])}</td><td class='num'>{o['seconds']:.3f}</td></tr>")
        h.append("</table>")
        for o in p["obligations"]:
            if o["verdict"] != "proved" and o.get("detail"):
                h.append(f"<p>Counterexample to induction for {escape(o['name'])}:</p>"
                         f"<pre>{escape(o['detail'])}</pre>")
    h.append("</body></html>")
    return "\n".join(h)


def _html_row(row: dict[str, Any]) -> list[str]:
    r = row["result"]
    v = verdict(row)
    cls = "pass" if v in ("pass", "caught") else "fail"
    h = [f'<h3 id="{row_id(row)}">{escape(row["module"])} — {escape(_config(row))}</h3>',
         f"<p>Reproduce: <code>{escape(row['command'])}</code></p>",
         f"<p>Result: <span class='{cls}'>{escape(v)}</span> ({escape(r['result'])}"
         + (f": {escape(str(r['violated']))}" if r.get("violated") else "") + "); "
         f"{r['distinct']:,} distinct / {r['generated']:,} generated states, depth {r['depth']}, "
         f"{r['seconds']:.2f} s.</p>"]
    if r.get("refinement"):
        ref_ok = r["result"] != "refinement"
        h.append(f"<p>Refinement of <code>{escape(r['refinement'])}</code>: "
                 f"{'held' if ref_ok else 'VIOLATED'}.</p>")
    h.append("<table><tr><th>action</th><th>distinct</th><th>generated</th><th></th></tr>")
    for name, (d, g) in r["coverage"].items():
        flag = "<span class='never'>never enabled</span>" if g == 0 else ""
        h.append(f"<tr><td>{escape(name)}</td><td class='num'>{d:,}</td>"
                 f"<td class='num'>{g:,}</td><td>{flag}</td></tr>")
    h.append("</table>")
    if r.get("levels"):
        h.append(growth_chart(r["levels"], title=f"{row['module']}: states per BFS level"))
    if r.get("trace"):
        h.append(sequence_chart(trace_steps_from_json(r["trace"]),
                                title=f"counterexample ({r['result']}: {r.get('violated')})"))
    return h


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``index.md``, ``index.html``, ``report.json`` and the charts; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    svg_dir = out_dir / "svg"
    svg_dir.mkdir(exist_ok=True)
    for old in svg_dir.glob("*.svg"):
        old.unlink()
    for row in report.get("checks", []):
        r, rid = row["result"], row_id(row)
        if r.get("levels"):
            (svg_dir / f"growth-{rid}.svg").write_text(
                growth_chart(r["levels"], title=f"{row['module']}: states per BFS level"))
        if r.get("trace"):
            (svg_dir / f"trace-{rid}.svg").write_text(
                sequence_chart(trace_steps_from_json(r["trace"]),
                               title=f"counterexample ({r['result']}: {r.get('violated')})"))
    paths = [out_dir / "index.md", out_dir / "index.html", out_dir / "report.json"]
    paths[0].write_text(render_markdown(report))
    paths[1].write_text(render_html(report))
    paths[2].write_text(json.dumps(report, indent=1, default=str) + "\n")
    return paths
