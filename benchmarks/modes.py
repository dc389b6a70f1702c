"""The precision modes on the AMI excerpts: what `--precision fast` costs, against the
exact port and pyannote.audio, for both pipelines.

    .venv/bin/python benchmarks/modes.py [--audio DIR] [--pipeline community-1 3.1] [--json PATH] [--docs PATH]

For each pipeline it runs `verify.py run --precision fast` on every excerpt (default
../shared/audio/ami: nine 30 s AMI excerpts, each with its reference RTTM), with the exact
pretrained segmentation (`--segmentation pretrained`) and the fixture embedding, on the
CPU. That run judges the fast port against pyannote stage by stage, as any candidate,
and times the exact port beside it (verify.py: mode_cost). The pooled figures go to
benchmarks/results/modes-<cpu>.json and, between the `modes` markers, to
docs/performance.md. verify.py exits 1 when a stage fails, as the fast mode is expected to.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import AMI, REPO

RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- modes:begin (benchmarks/modes.py writes this table) -->", "<!-- modes:end -->"
# the stages whose drift the table shows (the models' outputs and the embeddings' input)
SHOWN = ("03-segmentation", "06-fbank", "08-embeddings")


def cpu_name() -> str:
    from port.machine import cpu_name as name

    return name()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def run_pipeline(pipeline: str, audio: list[Path], work: Path) -> dict:
    """`verify.py run --precision fast` on `audio`; its report.json, the time it took and its exit status."""
    report = work / f"{pipeline}.json"
    command = [sys.executable, str(REPO / "verify.py"), "run", *map(str, audio), "--precision", "fast",
               "--segmentation", "pretrained", "--pipeline", pipeline, "--device", "cpu",
               "--dumps", str(work / f"dumps-{pipeline}"), "--json", str(report)]
    began = time.perf_counter()
    run = subprocess.run(command, cwd=REPO, env={**os.environ, "PYANNOTE_METRICS_ENABLED": "false"})
    seconds = time.perf_counter() - began
    if run.returncode not in (0, 1) or not report.is_file():
        raise SystemExit(f"verify.py run --pipeline {pipeline} failed (exit {run.returncode})")
    return {"report": json.loads(report.read_text()), "seconds": seconds, "exit": run.returncode}


def summarise(pipeline: str, run: dict) -> dict:
    """The pooled cost and the per-recording rows of one pipeline's run."""
    report = run["report"]
    recordings = [r for r in report["recordings"] if r.get("cost")]
    cost = report["cost"]
    first = recordings[0]["cost"]
    return {
        "pipeline": pipeline,
        "verify_seconds": run["seconds"],
        "verify_exit": run["exit"],
        "models": report.get("models"),
        "formulations": {"exact": {"segmentation": "exact-lstm", "embedding-trunk": "float32", "embedding-head": "float32"},
                         "fast": first["formulations"]},
        "pooled": cost,
        "recordings": [{"name": r["name"], "passed": r["passed"], "first_failure": r["first_failure"], **r["cost"]}
                       for r in recordings],
    }


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def render(results: dict) -> str:
    """The modes table in Markdown, one block per pipeline."""
    lines = [f"Measured {results['date']} on {results['cpu']} ({results['cores']} cores), `benchmarks/modes.py` "
             f"({results['seconds_taken'] / 60:.0f} min for both pipelines"
             + (f"; {results['note']}" if results.get("note") else "") + "): "
             f"the {results['recordings']} AMI excerpts of `{'/'.join(Path(results['audio']).parts[-3:])}`, "
             "the exact pretrained segmentation and the fixture embedding, CPU. "
             "Seconds are the port alone, summed over the excerpts (best of 2, exact and fast in turns, "
             "same process). DER is pooled over the excerpts against their reference RTTMs, no collar, "
             "overlap scored.", ""]
    for pipeline, p in results["pipelines"].items():
        c = p["pooled"]
        n = c["recordings"]
        fast = p["formulations"]["fast"]
        failing = [f"{stage} ({len(v['failed_on'])})" for stage, v in c["stages"].items() if not v["passed"]]
        drift = " / ".join(f"{c['stages'][s]['noise_ratio']:.2g}x" if c["stages"].get(s, {}).get("noise_ratio") is not None
                           else "-" for s in SHOWN)
        lines += [
            f"**{pipeline}** ({n} excerpts; the fast mode ran segmentation {fast['segmentation']}, "
            f"trunk {fast['embedding-trunk']}, head {fast['embedding-head']}):",
            "",
            "| mode | port s | speed-up | stages failing the verdict (excerpts) | drift / noise, worst: "
            + " / ".join(SHOWN) + " | RTTM lines differing from pyannote's | seconds differing | speakers as pyannote's "
            "| DER pyannote | DER port |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
            f"| exact | {c['seconds']['exact']:.1f} | 1.00x | judged by `verify.py run` (not here) | - "
            f"| {c['exact_rttm']['lines_differ']} of {c['exact_rttm']['lines']} "
            f"| {c['exact_rttm']['seconds_differ']:.1f} of {c['exact_rttm']['speech_seconds']:.1f} "
            f"| {c['exact_speakers_equal_to_pyannote']}/{n} | {_pct(c['der']['pyannote'])} | {_pct(c['der']['exact'])} |",
            f"| fast | {c['seconds']['mode']:.1f} | {c['speed_up']:.2f}x | {', '.join(failing) or 'none'} | {drift} "
            f"| {c['rttm']['lines_differ']} of {c['rttm']['lines']} "
            f"| {c['rttm']['seconds_differ']:.1f} of {c['rttm']['speech_seconds']:.1f} "
            f"| {c['speakers_equal_to_pyannote']}/{n} | {_pct(c['der']['pyannote'])} | {_pct(c['der']['mode'])} |",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def write_docs(path: Path, table: str) -> bool:
    """Put `table` between the markers of `path`; False when the page has no markers."""
    if not path.is_file():
        return False
    text = path.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=AMI, help="folder of excerpts (*.wav with *.rttm beside)")
    parser.add_argument("--pipeline", nargs="+", choices=["community-1", "3.1"], default=["community-1", "3.1"])
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/modes-<cpu>.json")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the page whose modes table is replaced ('' for none)")
    parser.add_argument("--work", type=Path, help="keep dumps and reports here (default: a temporary folder)")
    parser.add_argument("--note", help="a note on how it was measured (for instance the machine's load), kept with the figures")
    args = parser.parse_args()

    audio = sorted(args.audio.glob("*.wav"))
    if not audio:
        raise SystemExit(f"no *.wav under {args.audio}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        pipelines = {pipeline: summarise(pipeline, run_pipeline(pipeline, audio, work)) for pipeline in args.pipeline}
    cpu = cpu_name()
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "audio": str(args.audio),
        "recordings": len(audio),
        "command": "benchmarks/modes.py " + " ".join(sys.argv[1:]),
        "seconds_taken": time.perf_counter() - began,
        **({"note": args.note} if args.note else {}),
        "pipelines": pipelines,
    }
    target = args.json or RESULTS / f"modes-{slug(cpu)}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    print(table)
    print(f"written: {target}" + (f" and {args.docs}" if str(args.docs) and write_docs(args.docs, table) else ""))


if __name__ == "__main__":
    main()
