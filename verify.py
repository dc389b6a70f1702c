#!/usr/bin/env python3
"""Run pyannote.audio and the port side by side and show where drift starts.

    python verify.py run [AUDIO ...]        reference + port, dumps, stage-by-stage table
    python verify.py compare A B            compare two dump trees (e.g. a C++ port's)
    python verify.py inputs STAGE [REF]     the reference dumps a stage reads (shapes, dtypes)
    python verify.py clean                  remove everything under dumps/ but its README
    python verify.py export                 write the ONNX models the port runs

Exit status (docs/cli.md): 0 every judged stage passes; 1 a stage drifted; 2 bad input
(one line naming the file or option); 3 an unforeseen error (one line; --debug shows the
traceback); 4 nothing judged (every stage excluded or not implemented); 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent
# run from a checkout: its dumps/ and bundled sample; installed (pyannote-verify): dumps/ in the working
# directory, and no default recording
CHECKOUT = (REPO / "pyproject.toml").is_file()
DUMPS = REPO / "dumps" if CHECKOUT else Path("dumps")
SAMPLE = REPO / "tests" / "data" / "sample.wav"

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # ONNX Runtime's ~/.cache/Microsoft database (docs/cli.md)

from port.exits import (  # noqa: E402 - the contract of every command (docs/cli.md, "Exit status")
    EXIT_BAD_INPUT, EXIT_DRIFT, EXIT_INTERRUPTED, EXIT_NOTHING_JUDGED, EXIT_OK, EXIT_TERMINATED,
    ArgumentParser, UsageError,
)


def _console():
    from rich.console import Console

    # emoji off: a name such as "x:red_circle:" is shown as written; markup only in our own
    # templates, every string of a dump escaped with _shown
    console = Console(stderr=False, highlight=False, emoji=False)
    if not console.is_terminal:  # logs and CI: wide enough for the stage table
        console = Console(stderr=False, highlight=False, emoji=False, width=132)
    return console


def _shown(text) -> str:
    """A string taken from a dump (a name, a manifest value, a path), safe to hand rich: its
    control characters escaped (port.dumps.printable) and its markup ([/red], [link=...]) escaped."""
    from rich.markup import escape

    from port.dumps import printable

    return escape(printable(text, 2000))


# ----------------------------------------------------------------------------- models
def load_models(args):
    """Reference models (torch) as asked: fixture, or real ids / paths."""
    from reference import models

    if args.models == "fixture" and not (args.segmentation or args.embedding):
        return models.fixture_segmentation(), models.fixture_embedding()
    segmentation = args.segmentation or (models.REAL_SEGMENTATION if args.models == "real" else "fixture")
    embedding = args.embedding or (models.REAL_EMBEDDING if args.models == "real" else "fixture")
    return (
        models.load("segmentation", segmentation, token=args.token),
        models.load("embedding", embedding, token=args.token),
    )


def export_models(args, segmentation, embedding) -> Path:
    from reference import export

    from port.__main__ import models_home

    out = Path(args.models_dir) if args.models_dir else models_home()
    paths = export.export(segmentation, embedding, out=out,
                          exact_lstm=not getattr(args, "onnx_lstm", False))
    if getattr(args, "precision", "exact") == "fast":
        export.ensure_fast(paths["segmentation"].parent, segmentation)  # derived once, kept beside the export
    return paths["segmentation"].parent


# ----------------------------------------------------------------------------- run
def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )


def _manifest(side: str, uri: str, audio_path: Path, audio_sha: str, seg_sha: str, emb_sha: str, args, extra: dict) -> dict:
    from port.pipeline import Parameters
    from reference import models

    # the file a rebuilt model came from ("pretrained": reference/pretrained/segmentation-3.0.onnx)
    source = models.source_sha256("segmentation", args.segmentation)
    if source:
        extra = {"segmentation_source_sha256": source, **extra}

    plda = _plda_files(args)
    return {
        "side": side,
        "pipeline": args.pipeline,
        **({"plda": plda} if plda else {}),
        "uri": uri,
        "audio": audio_path.name,
        "audio_sha256": audio_sha,
        "segmentation_sha256": seg_sha,
        "embedding_sha256": emb_sha,
        "parameters": Parameters(pipeline=args.pipeline).as_dict(),
        "num_speakers": args.num_speakers,
        "min_speakers": args.min_speakers,
        "max_speakers": args.max_speakers,
        **extra,
    }


def _side_names(a: dict, b: dict, paths: tuple = ("", "")) -> tuple[str, str]:
    """What each dump tree is, from its manifest: "pyannote.audio 4.0.7" for a reference, else its side."""
    def name(manifest):
        side = manifest.get("side", "?")
        version = (manifest.get("versions") or {}).get("pyannote.audio")
        return f"pyannote.audio {version}" if side == "reference" and version else ("pyannote.audio" if side == "reference" else side)

    first, second = name(a), name(b)
    if first == second:
        first, second = f"{first} ({paths[0]})", f"{second} ({paths[1]})"
    return first, second


def _fmt(value, spec=".2e") -> str:
    import math

    if value is None:
        return "-"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)  # nan / inf, never a number that looks fine
    return format(value, spec)


def _where_text(where: dict | None) -> str:
    if not where:
        return ""
    parts = [f"{k} {v}" for k, v in where.items() if k != "time"]
    if "time" in where:
        parts.append(f"at {where['time']:.2f} s")
    return " (" + ", ".join(parts) + ")"


SHOWN_NAMES = 8  # failing names listed in a stage's row; the others counted


def _few(names: list, most: int = SHOWN_NAMES) -> str:
    return ", ".join(map(str, names[:most])) + (f" and {len(names) - most} more" if len(names) > most else "")


def _stage_table(console, verdict, sides=("port", "pyannote.audio")) -> tuple[bool, str | None]:
    """Print a Verdict (harness.compare.judge) as the stage table; (passed, first failing stage)."""
    from rich.table import Table

    from harness.compare import platform_summary

    platforms = verdict.platforms or {}
    ref_platform, cand_platform = platform_summary(platforms.get("reference")), platform_summary(platforms.get("candidate"))
    if ref_platform == cand_platform:
        console.print(f"[dim]platform (both sides): {_shown(ref_platform)}[/dim]")
    else:
        console.print(f"[dim]platform: {_shown(sides[1])}: {_shown(ref_platform)}; {_shown(sides[0])}: "
                      f"{_shown(cand_platform)}[/dim]")
    table = Table(title=f"{_shown(verdict.recording)} ({_shown(verdict.pipeline)}): {_shown(sides[0])} vs "
                        f"{_shown(sides[1])}, stage by stage", title_justify="left")
    for column in ("stage", "bounds", "isolated drift", "chain drift", "noise", "ratio", "over", "bound", "result"):
        table.add_column(column, justify="left" if column in ("stage", "bounds", "result") else "right")
    for stage, entry in verdict.stages.items():
        if entry.status in ("not reached", "excluded", "not implemented") or not (entry.chain or entry.isolated):
            style = "red" if not entry.passed else "dim"
            table.add_row(stage, "-", "-", "-", "-", "-", "-", "-", f"[{style}]{entry.status}[/{style}]: {_shown(entry.reason)}")
            continue
        floats = lambda rows: [r for r in rows if r.kind == "float"]  # noqa: E731
        worst = lambda rows: max(floats(rows), key=lambda r: (r.max_abs != r.max_abs, r.max_abs), default=None)  # noqa: E731
        shaped = lambda rows: any(r.kind == "shape" for r in rows)  # noqa: E731
        ci, cc = worst(entry.isolated), worst(entry.chain)
        noise_row = next((r for r in floats(entry.chain) + floats(entry.isolated) if r.noise is not None), None)
        over = sum(r.over for r in entry.chain + entry.isolated)
        ratios = [r.noise_ratio for r in floats(entry.chain + entry.isolated) if r.noise_ratio is not None]
        failing = entry.failing
        notes = [r for r in entry.chain + entry.isolated if r.note and r.passed and r.kind not in ("not implemented", "echoed")]
        omitted = [r.name for r in entry.chain + entry.isolated if r.kind == "not implemented"]
        echoed = [r.name for r in entry.chain + entry.isolated if r.kind == "echoed"]
        parts = []
        if failing:  # every failing name, not only the first (the first 8 and a count: a row stays readable)
            parts.append("[red]FAIL[/red] " + "; ".join(
                f"{'isolated' if r in entry.isolated else 'chain'} {_shown(r.name)}: {_shown(r.note)}"
                f"{_shown(_where_text(r.where))}" for r in failing[:SHOWN_NAMES])
                + (f"; and {len(failing) - SHOWN_NAMES} more" if len(failing) > SHOWN_NAMES else ""))
        else:
            parts.append("[green]partial[/green]" if entry.status == "partial" else "[green]pass[/green]")
            if notes:
                parts.append(f"({_shown(notes[0].note)})")
        if omitted:
            parts.append(f"[yellow]not implemented ({_shown(_few(omitted))})[/yellow]")
        if echoed:
            parts.append(f"[dim]reference's own {_shown(_few(echoed))}[/dim]")
        drift = lambda row, rows: _fmt(row.max_abs) if row else ("shape" if shaped(rows) else ("exact" if rows else "-"))  # noqa: E731
        table.add_row(
            stage,
            entry.bounds or "-",
            drift(ci, entry.isolated),
            drift(cc, entry.chain),
            _fmt(noise_row.noise) if noise_row else "-",
            f"{max(ratios):.2f}x" if ratios else "-",
            str(over),
            _fmt(max((r.bound for r in floats(entry.chain or entry.isolated)), default=None), ".0e"),
            " ".join(parts),
        )
    console.print(table)
    if verdict.ties:
        console.print("[green]tie order[/green] (clusters with equal activations chosen another valid way): " + "; ".join(
            f"{name} {t['frames']} frames ({t['seconds']:.2f} s)" for name, t in verdict.ties.items()))
    if verdict.assignment_ties:
        console.print("[green]assignment ties[/green] (speakers given another cluster of exactly pyannote's score): "
                      + "; ".join(f"{name} {n} speaker(s)" for name, n in verdict.assignment_ties.items()))
    if verdict.noise:
        console.print(f"[dim]noise: {_shown(verdict.noise)}; a float stage passes when drift <= k x noise + floor "
                      "at the max and the percentile, and under the ceiling[/dim]")
    if verdict.coverage:
        console.print("coverage (branches of pyannote's code this recording exercised): " + "; ".join(
            f"{_shown(v['what'])}: {'[green]yes[/green]' if v['exercised'] else '[dim]no[/dim]'} ({_shown(v['detail'])})"
            for v in verdict.coverage.values()))
    if verdict.declared:
        console.print(f"[yellow]declared not implemented: {_shown(_few(verdict.declared, 32))}[/yellow]")
    first = verdict.first_failure
    if first:
        console.print(f"[red]first stage over tolerance: {first}[/red]")
    return verdict.passed, first


def _print_turns(console, name: str, turns: list) -> None:
    from rich.table import Table

    speakers = sorted({label for _, _, label in turns})
    console.print(f"port diarization of {_shown(name)}: {len(speakers)} speaker(s), {len(turns)} turns")
    table = Table()
    for column in ("start", "end", "speaker"):
        table.add_column(column, justify="right" if column != "speaker" else "left")
    for start, end, label in turns:
        table.add_row(f"{start:.3f}", f"{end:.3f}", _shown(label))
    console.print(table)


def _turns(rttm: str) -> list:
    """[start, end, speaker] of each RTTM line."""
    turns = []
    for line in rttm.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns.append([start, start + duration, fields[7]])
    return turns


def _der_components(audio_path: Path, rttm_text: str) -> dict | None:
    """pyannote.metrics' DER components against <audio>.rttm beside the audio, when there is one
    (summed over recordings they give the pooled DER)."""
    truth = audio_path.with_suffix(".rttm")
    if not truth.is_file():
        return None
    import io

    from pyannote.core import Annotation
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference = next(iter(load_rttm(truth).values()))
    hypotheses = load_rttm(io.StringIO(rttm_text)) if rttm_text else {}
    hypothesis = next(iter(hypotheses.values())) if hypotheses else Annotation()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "uem was approximated": the usual whole-file scoring
        components = DiarizationErrorRate()(reference, hypothesis, detailed=True)
    return {k: float(components[k]) for k in ("confusion", "missed detection", "false alarm", "total")}


def _der_value(components: list) -> float | None:
    """DER of summed components (pooled over recordings), None when none had a reference RTTM."""
    components = [c for c in components if c]
    total = sum(c["total"] for c in components)
    if not components or not total:
        return None
    return sum(c["confusion"] + c["missed detection"] + c["false alarm"] for c in components) / total


def _plda_files(args) -> dict | None:
    """community-1's PLDA folder and its files' checksums, as manifests name them (None for 3.1)."""
    if args.pipeline != "community-1":
        return None
    from port.pipeline import PLDA_DIR
    from reference.run import sha256_file

    folder = Path(args.plda or PLDA_DIR).resolve()
    return {"folder": str(folder), "plda_sha256": sha256_file(folder / "plda.npz"),
            "xvec_transform_sha256": sha256_file(folder / "xvec_transform.npz")}


def _plda_note(args) -> str | None:
    """community-1's PLDA in words, with its checksum (None for 3.1)."""
    files = _plda_files(args)
    if files is None:
        return None
    return ("community-1's real PLDA" + ("" if args.plda else " (reference/pretrained/plda)")
            + f" ({files['plda_sha256'][:12]})")


# ----------------------------------------------------------------------------- what a precision mode costs
def _precision_manifest(port) -> dict:
    """The port's mode and the formulation each of its models ran, for its manifest."""
    return {"precision": port.precision, "formulations": port.formulations,
            **({"fast_trunk_choice": port.choice} if port.choice else {})}


def _seconds_differ(reference: str, candidate: str, step: float = 0.01) -> tuple[float, float]:
    """(seconds where the two RTTMs' active speakers differ, seconds either has speech), on a
    10 ms grid, the candidate's speakers mapped onto the reference's by greatest overlap
    (Hungarian), as DER maps them."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    sides = [_turns(reference), _turns(candidate)]
    end = max([t[1] for turns in sides for t in turns], default=0.0)
    frames = int(np.ceil(end / step)) + 1
    grids = []
    for turns in sides:
        labels = sorted({t[2] for t in turns})
        grid = np.zeros((len(labels), frames), dtype=bool)
        for start, stop, label in turns:
            grid[labels.index(label), int(round(start / step)) : int(round(stop / step))] = True
        grids.append(grid)
    ref, hyp = grids
    mapped = np.zeros_like(ref)
    if len(ref) and len(hyp):
        overlap = (ref[:, None, :] & hyp[None, :, :]).sum(axis=-1)
        rows, cols = linear_sum_assignment(-overlap)
        mapped[rows] = hyp[cols]
    unmatched = np.ones(len(hyp), dtype=bool)
    if len(ref) and len(hyp):
        unmatched[cols] = False
    differs = (ref != mapped).any(axis=0) | hyp[unmatched].any(axis=0)
    speech = ref.any(axis=0) | hyp.any(axis=0)
    return float(differs.sum() * step), float(speech.sum() * step)


def _rttm_line_changes(reference: str, candidate: str) -> tuple[int, int]:
    """(lines of either RTTM the other lacks, lines in all), uri aside."""
    from collections import Counter

    def fields(text: str) -> list[tuple[str, str, str]]:  # (start, duration, speaker) of each line
        return [(f[3], f[4], f[7]) for f in (line.split() for line in text.splitlines()) if len(f) > 7]

    a, b = Counter(fields(reference)), Counter(fields(candidate))
    return sum(((a - b) + (b - a)).values()), sum(a.values()) + sum(b.values())


def _exact_port(setup, args):
    """The exact port beside a fast one (same export, device and pipeline), loaded once per setup."""
    from port.pipeline import Parameters, Pipeline

    if getattr(setup, "_exact_port", None) is None:
        setup._exact_port = Pipeline.from_folder(setup.folder, device=args.device, parameters=Parameters(pipeline=args.pipeline),
                                                 plda=args.plda, fbank=getattr(args, "fbank", "auto"), precision="exact")
    return setup._exact_port


def mode_cost(setup, args, entry: dict, path: Path, mode_rttm: str, pyannote_rttm: str, repeat: int = 2) -> dict:
    """What the port's mode costs on one recording, against the exact port run in the same
    process: wall seconds of each (no dumps, in turns, best of `repeat`), per stage the worst
    drift over pyannote's noise and whether the stage passed, RTTM lines and seconds that
    differ from pyannote's (and the exact port's), speakers found, DER of each against the
    reference RTTM beside the audio."""
    speakers = {"num_speakers": args.num_speakers, "min_speakers": args.min_speakers, "max_speakers": args.max_speakers}
    exact, mode = _exact_port(setup, args), setup.port
    seconds = {"exact": [], "mode": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeat):
            for side, pipeline in (("exact", exact), ("mode", mode)):
                t0 = time.perf_counter()
                result = pipeline(path, **speakers)
                seconds[side].append(time.perf_counter() - t0)
                if side == "exact":
                    exact_result = result
    stages = {}
    for stage in entry["verdict"]["stages"]:  # worst drift over noise of the rows the verdict judged
        rated = [float(row["noise_ratio"]) for row in stage["chain"] + stage["isolated"]
                 if row.get("noise_ratio") is not None]
        stages[stage["stage"]] = {"noise_ratio": max(rated) if rated else None, "passed": bool(stage["passed"])}
    lines, all_lines = _rttm_line_changes(pyannote_rttm, mode_rttm)
    differ, speech = _seconds_differ(pyannote_rttm, mode_rttm)
    exact_lines, exact_all_lines = _rttm_line_changes(pyannote_rttm, exact_result.rttm)
    exact_differ, exact_speech = _seconds_differ(pyannote_rttm, exact_result.rttm)
    exact_der = _der_components(path, exact_result.rttm)
    return {
        "precision": mode.precision,
        "formulations": mode.formulations,
        "seconds": {"exact": min(seconds["exact"]), "mode": min(seconds["mode"]),
                    "runs": {k: v for k, v in seconds.items()}},
        "speed_up": min(seconds["exact"]) / max(min(seconds["mode"]), 1e-9),
        "stages": stages,
        "rttm": {"lines_differ": lines, "lines": all_lines, "seconds_differ": differ, "speech_seconds": speech,
                 "exact_identical_to_pyannote": exact_result.rttm == pyannote_rttm,
                 "identical_to_exact": exact_result.rttm == mode_rttm,
                 "exact": {"lines_differ": exact_lines, "lines": exact_all_lines, "seconds_differ": exact_differ,
                           "speech_seconds": exact_speech}},
        "speakers": {"pyannote": entry["speakers"]["reference"], "exact": exact_result.num_speakers,
                     "mode": entry["speakers"]["port"]},
        "der": {"pyannote": entry["der"]["reference"], "exact": _der_value([exact_der]), "mode": entry["der"]["port"]},
        "der_components": {"pyannote": entry["der_components"]["reference"], "exact": exact_der,
                           "mode": entry["der_components"]["port"]},
    }


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _print_cost(console, entry: dict) -> None:
    """One recording's cost lines (under its verdict)."""
    cost = entry["cost"]
    s, r, der = cost["seconds"], cost["rttm"], cost["der"]
    formulations = ", ".join(f"{k} {v}" for k, v in cost["formulations"].items())
    console.print(f"[bold]precision {cost['precision']}[/bold] ({formulations}), against the exact port in this run:")
    console.print(f"  speed: {s['mode']:.2f} s against {s['exact']:.2f} s exact ({cost['speed_up']:.2f}x)")
    drift = [f"{stage} {v['noise_ratio']:.2g}x" + ("" if v["passed"] else " [red]fails[/red]")
             for stage, v in cost["stages"].items() if v["noise_ratio"] is not None]
    failed = [stage for stage, v in cost["stages"].items() if not v["passed"] and v["noise_ratio"] is None]
    console.print("  drift / pyannote's noise (worst row): " + (", ".join(drift) or "-")
                  + (f"; discrete stages that differ: {', '.join(failed)}" if failed else ""))
    console.print(f"  RTTM against pyannote's: {r['lines_differ']} of {r['lines']} lines differ, "
                  f"{r['seconds_differ']:.1f} s of {r['speech_seconds']:.1f} s of speech; speakers pyannote "
                  f"{cost['speakers']['pyannote']}, exact {cost['speakers']['exact']}, {cost['precision']} {cost['speakers']['mode']}")
    if der["pyannote"] is not None:
        console.print(f"  DER against {Path(entry['audio']).with_suffix('.rttm').name}: pyannote {_pct(der['pyannote'])}, "
                      f"exact {_pct(der['exact'])}, {cost['precision']} {_pct(der['mode'])}")


def cost_summary(console, entries: list[dict]) -> dict:
    """The mode's cost per recording and pooled (seconds summed, DER from summed components)."""
    from rich.table import Table

    costed = [e for e in entries if e.get("cost")]
    mode = costed[0]["cost"]["precision"]
    table = Table(title=f"precision {mode}: what it costs against exact and pyannote", title_justify="left")
    for column in ("recording", "exact s", f"{mode} s", "speed-up", "RTTM lines differ", "seconds differ",
                   "speakers pyannote / exact / " + mode, "DER pyannote", "DER exact", f"DER {mode}", "worst drift/noise"):
        table.add_column(column, justify="left" if column in ("recording", "worst drift/noise") else "right")

    def worst(stages: dict) -> str:
        rated = [(v["noise_ratio"], k) for k, v in stages.items() if v["noise_ratio"] is not None]
        return f"{max(rated)[1]} {max(rated)[0]:.2g}x" if rated else "-"

    for e in costed:
        c = e["cost"]
        table.add_row(e["name"], f"{c['seconds']['exact']:.2f}", f"{c['seconds']['mode']:.2f}", f"{c['speed_up']:.2f}x",
                      f"{c['rttm']['lines_differ']} / {c['rttm']['lines']}",
                      f"{c['rttm']['seconds_differ']:.1f} / {c['rttm']['speech_seconds']:.1f}",
                      " / ".join(str(c["speakers"][k]) for k in ("pyannote", "exact", "mode")),
                      *(_pct(c["der"][k]) for k in ("pyannote", "exact", "mode")), worst(c["stages"]))
    pooled_stages: dict[str, dict] = {}
    for e in costed:
        for stage, v in e["cost"]["stages"].items():
            slot = pooled_stages.setdefault(stage, {"noise_ratio": None, "passed": True, "failed_on": []})
            if v["noise_ratio"] is not None:
                slot["noise_ratio"] = max(slot["noise_ratio"] or 0.0, v["noise_ratio"])
            if not v["passed"]:
                slot["passed"] = False
                slot["failed_on"].append(e["name"])
    total = {k: sum(e["cost"]["seconds"][k] for e in costed) for k in ("exact", "mode")}
    pooled = {
        "recordings": len(costed),
        "seconds": total,
        "speed_up": total["exact"] / max(total["mode"], 1e-9),
        "stages": pooled_stages,
        "rttm": {k: sum(e["cost"]["rttm"][k] for e in costed) for k in ("lines_differ", "lines", "seconds_differ", "speech_seconds")},
        "exact_rttm": {k: sum(e["cost"]["rttm"]["exact"][k] for e in costed)
                       for k in ("lines_differ", "lines", "seconds_differ", "speech_seconds")},
        "exact_rttm_identical_to_pyannote": sum(e["cost"]["rttm"]["exact_identical_to_pyannote"] for e in costed),
        "exact_speakers_equal_to_pyannote": sum(e["cost"]["speakers"]["exact"] == e["cost"]["speakers"]["pyannote"]
                                                for e in costed),
        "rttm_identical_to_pyannote": sum(e["cost"]["rttm"]["lines_differ"] == 0 for e in costed),
        "speakers_equal_to_pyannote": sum(e["cost"]["speakers"]["mode"] == e["cost"]["speakers"]["pyannote"] for e in costed),
        "der": {k: _der_value([e["cost"]["der_components"][k] for e in costed]) for k in ("pyannote", "exact", "mode")},
        "der_recordings": sum(e["cost"]["der_components"]["pyannote"] is not None for e in costed),
    }
    if len(costed) > 1:
        r = pooled["rttm"]
        table.add_row("[bold]pooled[/bold]", f"{total['exact']:.2f}", f"{total['mode']:.2f}", f"{pooled['speed_up']:.2f}x",
                      f"{r['lines_differ']} / {r['lines']}", f"{r['seconds_differ']:.1f} / {r['speech_seconds']:.1f}",
                      f"{pooled['speakers_equal_to_pyannote']}/{len(costed)} equal",
                      *(_pct(pooled["der"][k]) for k in ("pyannote", "exact", "mode")), worst(pooled_stages))
    console.print(table)
    failing = [f"{stage} ({len(v['failed_on'])}/{len(costed)})" for stage, v in pooled_stages.items() if not v["passed"]]
    console.print(f"precision {mode}: stages failing the verdict: " + (", ".join(failing) or "none"))
    return pooled


class Setup:
    """What one process needs to verify recordings: both pipelines, loaded once."""

    def __init__(self, args, console=None):
        from port.pipeline import Parameters, Pipeline
        from port.runtime import describe
        from reference import models
        from reference import run as reference_run

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            segmentation, embedding = load_models(args)
            self.seg_sha, self.emb_sha = models.checksum(segmentation), models.checksum(embedding)
            self.torch_models = (segmentation, embedding)
            self.folder = export_models(args, segmentation, embedding)
            parameters = Parameters(pipeline=args.pipeline)
            self.reference = reference_run.build_pipeline(segmentation, embedding, parameters, device=args.device,
                                                          plda=args.plda)
            self.port = Pipeline.from_folder(self.folder, device=args.device, parameters=parameters, plda=args.plda,
                                             fbank=getattr(args, "fbank", "auto"),
                                             precision=getattr(args, "precision", "exact"))
        self.pipeline = args.pipeline
        self.plda = _plda_note(args)
        self.device = describe(args.device)
        self.models = {
            "segmentation": models.describe("segmentation", args.segmentation, args.models),
            "embedding": models.describe("embedding", args.embedding, args.models),
        }
        self.pyannote_decoder = reference_run.pyannote_decoder()


def verify_recording(setup: Setup, args, name: str, path: Path, progress=None) -> dict:
    """One recording: pyannote and the port, both dumped, compared isolated and chained."""
    import numpy as np

    from harness.compare import judge
    from port import audio, machine
    from port.dumps import DumpReader, DumpWriter
    from port.stages import runner
    from reference import noise
    from reference import run as reference_run

    progress = progress or (lambda description, total=None, completed=0: None)
    root = Path(args.dumps)
    speakers = {"num_speakers": args.num_speakers, "min_speakers": args.min_speakers, "max_speakers": args.max_speakers}
    audio_sha = reference_run.sha256_file(path)
    common = {"models": {**setup.models, **({"plda": setup.plda} if setup.plda else {})},
              "versions": reference_run.versions(), "platform": machine.describe()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        progress(f"{name}: pyannote.audio")

        def ref_hook(step, artifact, file=None, total=None, completed=None):
            progress(f"{name}: pyannote {step}", total, completed or 0)

        with DumpWriter(root, "reference", name, args.format) as writer:
            t0 = time.perf_counter()
            ref_result = reference_run.run(path, setup.reference, **speakers, hook=writer, progress=ref_hook)
            ref_seconds = time.perf_counter() - t0
            writer.commit(_manifest("reference", ref_result.uri, path, audio_sha, setup.seg_sha, setup.emb_sha, args, {
                **common, "providers": [f"torch-{reference_run.torch_device(args.device)}"], "decoder": ref_result.decoder,
            }))

        def port_progress(stage, completed, total):
            progress(f"{name}: port {stage}", total, completed)

        with DumpWriter(root, "port", name, args.format) as writer:
            t0 = time.perf_counter()
            port_result = setup.port(path, **speakers, hook=writer, progress=port_progress)
            port_seconds = time.perf_counter() - t0
            writer.commit(_manifest("port", port_result.uri, path, audio_sha, setup.seg_sha, setup.emb_sha, args, {
                **common, "providers": sorted(set(port_result.providers.values())), "onnx": setup.folder.name,
                "decoder": audio.decoder(path), **_precision_manifest(setup.port),
            }))

    ref_dir, port_dir = root / "reference" / name, root / "port" / name
    progress(f"{name}: pyannote's own float32 noise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        noise.ensure(ref_dir, *setup.torch_models, port_dir)
    verdict = judge(ref_dir, port_dir, runner=runner(setup.port))
    reference_dump = DumpReader(ref_dir)
    identical = port_result.rttm == ref_result.rttm
    first = verdict.first_failure
    ref_count = reference_dump.load("05-count", "out_count") if reference_dump.has("05-count", "out_count") else None
    der = {"reference": _der_components(path, ref_result.rttm), "port": _der_components(path, port_result.rttm)}
    entry = {
        "name": name,
        "audio": str(path),
        "passed": verdict.passed and identical,
        "first_failure": first,
        "decoders": {"reference": ref_result.decoder, "port": audio.decoder(path)},
        "rttm": {
            "reference": str(ref_dir / setup.port.description.named("annotation") / "out_diarization.rttm"),
            "port": str(port_dir / setup.port.description.named("annotation") / "out_diarization.rttm"),
            "identical": identical,
        },
        "turns": _turns(port_result.rttm),
        "speakers": {"reference": len(ref_result.output.speaker_diarization.labels()), "port": port_result.num_speakers},
        "count_values": sorted(set(np.unique(ref_count).tolist())) if ref_count is not None else None,
        "der": {side: _der_value([c]) for side, c in der.items()},
        "der_components": der,
        "seconds": {"reference": ref_seconds, "port": port_seconds, "port_stages": port_result.seconds},
        "providers": port_result.providers,
        "verdict": verdict.as_dict(),
        "stages": {
            "isolated": [row.as_dict() for row in verdict.isolated],
            "chain": [row.as_dict() for row in verdict.chain],
        },
        "_verdict": verdict,  # for the table; not in report.json
    }
    if setup.port.precision != "exact":
        entry["cost"] = mode_cost(setup, args, entry, path, port_result.rttm, ref_result.rttm)
    return entry


def verify_given(setup: Setup, args, name: str, folder: Path, progress=None) -> dict:
    """`--embeddings`: both sides from stage 09 on, on the folder's segmentations and embeddings."""
    from harness.compare import judge
    from port import inputs, machine
    from port.aggregate import SlidingWindow
    from port.dumps import DumpWriter
    from port.stages import runner
    from reference import run as reference_run

    progress = progress or (lambda description, total=None, completed=0: None)
    given = inputs.load_given(folder)
    root = Path(args.dumps)
    speakers = {"num_speakers": args.num_speakers, "min_speakers": args.min_speakers, "max_speakers": args.max_speakers}
    extra = {"models": {**setup.models, **({"plda": setup.plda} if setup.plda else {})},
             "versions": reference_run.versions(), "platform": machine.describe(),
             "given": ["04-multilabel", "08-embeddings"],
             "embeddings": str(folder)}
    digest = inputs.given_sha256(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        progress(f"{name}: pyannote.audio from 09")
        with DumpWriter(root, "reference", name, args.format) as writer:
            t0 = time.perf_counter()
            ref_result = reference_run.run_embeddings(name, given["segmentations"], given["embeddings"], setup.reference,
                                                      given["chunks"], given["frames"], **speakers, hook=writer)
            ref_seconds = time.perf_counter() - t0
            writer.commit(_manifest("reference", name, folder, digest, setup.seg_sha, setup.emb_sha, args,
                                    {**extra, "decoder": ref_result.decoder}))
        progress(f"{name}: port from 09")
        with DumpWriter(root, "port", name, args.format) as writer:
            t0 = time.perf_counter()
            port_result = setup.port.from_embeddings(
                name, given["segmentations"], given["embeddings"], **speakers,
                chunks=SlidingWindow(*given["chunks"]) if given["chunks"] else None,
                frames=SlidingWindow(*given["frames"]) if given["frames"] else None, hook=writer)
            port_seconds = time.perf_counter() - t0
            writer.commit(_manifest("port", name, folder, digest, setup.seg_sha, setup.emb_sha, args,
                                    {**extra, "decoder": "given segmentations and embeddings"}))
    ref_dir, port_dir = root / "reference" / name, root / "port" / name
    verdict = judge(ref_dir, port_dir, runner=runner(setup.port))
    identical = port_result.rttm == ref_result.rttm
    # the capture's reference.rttm is pyannote's diarization without speaker constraints:
    # with --num/min/max-speakers the two sides are compared with each other only
    constrained = any(value is not None for value in speakers.values())
    capture = None if constrained else capture_verdict(folder, ref_dir, port_dir)
    matches_capture = capture["passed"] if capture else None
    annotation = setup.port.description.named("annotation")
    return {
        "name": name,
        "audio": str(folder),
        "capture": capture,
        "passed": verdict.passed and identical and matches_capture is not False,
        "first_failure": verdict.first_failure,
        "decoders": {"reference": ref_result.decoder, "port": ref_result.decoder},
        "rttm": {"reference": str(ref_dir / annotation / "out_diarization.rttm"),
                 "port": str(port_dir / annotation / "out_diarization.rttm"), "identical": identical,
                 "capture": str(folder / "reference.rttm") if (folder / "reference.rttm").is_file() else None,
                 "matches_capture": matches_capture},
        "turns": _turns(port_result.rttm),
        "speakers": {"reference": len(ref_result.output.speaker_diarization.labels()), "port": port_result.num_speakers},
        "count_values": None,
        "der": {"reference": None, "port": None},
        "der_components": {"reference": None, "port": None},
        "seconds": {"reference": ref_seconds, "port": port_seconds, "port_stages": port_result.seconds},
        "providers": port_result.providers,
        "verdict": verdict.as_dict(),
        "stages": {"isolated": [row.as_dict() for row in verdict.isolated],
                   "chain": [row.as_dict() for row in verdict.chain]},
        "_verdict": verdict,
    }


def capture_verdict(folder: Path, ref_dir: Path, port_dir: Path) -> dict | None:
    """A capture of pyannote's own outputs (made on any machine; a folder with its
    reference.rttm) against this run, by the verdict's rules: its hard clusters
    (clustering.npz) identical to the port's, its discrete diarization (reconstruction.npz)
    and its reference.rttm equal to pyannote's here up to tie order (harness.frames), the
    labels being pyannote's own. None for given inputs without pyannote's outputs."""
    import numpy as np

    from harness import frames
    from harness.rttm import judge_rttm
    from port import inputs
    from port.dumps import DumpReader
    from port.vocabulary import pipeline as describe_pipeline

    if not (folder / "reference.rttm").is_file():
        return None  # given inputs, not a capture of pyannote's outputs: nothing to hold them to
    reference, port = DumpReader(ref_dir), DumpReader(port_dir)
    description = describe_pipeline(reference.pipeline)
    assign, reconstruct = description.named("assign"), description.named("reconstruct")
    out: dict = {"passed": True, "checks": []}

    def check(what: str, passed: bool, detail: str) -> None:
        out["checks"].append({"what": what, "passed": bool(passed), "detail": detail})
        out["passed"] &= bool(passed)

    clustering = inputs.load_capture_array(folder, "clustering.npz", "hard_clusters")
    if clustering is not None and port.has(assign, "out_hard_clusters"):
        ours = np.asarray(port.load(assign, "out_hard_clusters"))
        same = ours.shape == clustering.shape and bool(np.array_equal(ours, clustering))
        check("hard clusters", same, "identical to clustering.npz" if same else
              f"differ from clustering.npz ({int(np.sum(ours != clustering)) if ours.shape == clustering.shape else 'shape'} values)")
    discrete = inputs.load_capture_array(folder, "reconstruction.npz", "discrete_diarization")
    if discrete is not None and reference.has(reconstruct, "call0_out_discrete"):
        ours = np.asarray(reference.load(reconstruct, "call0_out_discrete"))
        if ours.shape != discrete.shape:
            check("discrete diarization", False, f"shape {discrete.shape} in reconstruction.npz vs {ours.shape} here")
        elif not reference.has(reconstruct, "call0_out_activations"):
            same = bool(np.array_equal(ours, discrete))
            check("discrete diarization", same, "identical" if same else "differs (no activations to judge ties)")
        else:
            tie = frames.tie_order(ours, discrete, reference.load(reconstruct, "call0_out_activations"))
            cells = int(np.sum((ours > 0.5) != (discrete > 0.5)))
            tied = int(frames.tie_frames(reference.load(reconstruct, "call0_out_activations"), ours).sum())
            check("discrete diarization", tie.passed,
                  "identical to reconstruction.npz" if not tie.differing else
                  (f"equals reconstruction.npz up to tie order ({tie.tied} of the {tied} tie frames broken another "
                   f"way, {cells} cells)" if tie.passed else
                   f"differs from reconstruction.npz beyond tie order at frame {tie.first_bad} "
                   f"({tie.differing - tie.tied} frames)"))
    rttm = folder / "reference.rttm"
    if rttm.is_file():
        judged = judge_rttm(ref_dir, rttm, mapping="names")
        out["rttm"] = judged.as_dict()
        detail = {"identical": "identical to reference.rttm",
                  "tie order": f"equals reference.rttm up to tie order ({judged.tie_frames} frames, "
                               f"{judged.tie_frames * judged.step:.2f} s)"}.get(judged.status)
        if detail is None:
            where = judged.first_difference or (judged.outside[0] if judged.outside else {})
            detail = (f"differs from reference.rttm: {judged.differing_frames - judged.tie_frames} frames beyond tie "
                      f"order, first at {where.get('time', where.get('start', '?'))} s")
        check("RTTM", judged.passed, detail)
    return out if out["checks"] else None


def _print_recording(console, entry: dict) -> None:
    """One recording's stage table, diarization and verdict lines."""
    from rich.markup import escape
    _stage_table(console, entry["_verdict"])
    _print_turns(console, entry["name"], entry["turns"])
    der, speakers, seconds = entry["der"], entry["speakers"], entry["seconds"]
    truth = Path(entry["audio"]).with_suffix(".rttm").name
    console.print(
        f"reference: {speakers['reference']} speakers"
        + (f", speaker count takes {entry['count_values']}" if entry["count_values"] is not None else "")
        + (f", DER {100 * der['reference']:.1f} % against {_shown(truth)}" if der["reference"] is not None else "")
        + f"; decoded by {_shown(entry['decoders']['reference'])}"
    )
    console.print(
        f"port: {speakers['port']} speakers"
        + (f", DER {100 * der['port']:.1f} %" if der["port"] is not None else "")
        + f"; {seconds['port']:.1f}s vs pyannote {seconds['reference']:.1f}s"
        + f" ({seconds['reference'] / max(seconds['port'], 1e-9):.1f}x); decoded by {_shown(entry['decoders']['port'])}"
    )
    console.print("[green]RTTM identical[/green]" if entry["rttm"]["identical"] else "[red]RTTM differs[/red]")
    if entry.get("cost"):
        _print_cost(console, entry)
    capture = entry.get("capture")
    if capture:
        console.print(f"against the capture {_shown(entry['audio'])} (pyannote's own outputs, made on another machine "
                      "or this one):")
        for item in capture["checks"]:
            colour = "green" if item["passed"] else "red"
            console.print(f"  [{colour}]{item['what']}: {_shown(item['detail'])}[/{colour}]")


def _summary(console, entries: list[dict]) -> dict:
    """Across recordings: per stage the worst drift and where, RTTMs identical n/N, pooled DER."""
    from rich.table import Table


    worst: dict[str, dict] = {}
    for entry in entries:
        for kind in ("isolated", "chain"):
            for row in entry["stages"][kind]:
                if row["kind"] != "float":
                    continue
                slot = worst.setdefault(row["stage"], {}).get(kind)
                if slot is None or row["max_abs"] > slot["max_abs"]:
                    worst[row["stage"]][kind] = {"max_abs": row["max_abs"], "recording": entry["name"], "name": row["name"]}
                ratio = row.get("noise_ratio")
                best = worst[row["stage"]].get("ratio")
                if ratio is not None and (best is None or ratio > best["ratio"]):
                    worst[row["stage"]]["ratio"] = {"ratio": ratio, "recording": entry["name"], "name": row["name"], "kind": kind}
    failed: dict[str, list[str]] = {}
    for entry in entries:
        if entry["first_failure"]:
            failed.setdefault(entry["first_failure"], []).append(entry["name"])
    table = Table(title=f"{len(entries)} recordings: worst drift per stage", title_justify="left")
    for column in ("stage", "isolated max abs", "recording", "chain max abs", "recording ", "drift/noise",
                   "recording  ", "first failure in"):
        table.add_column(column, justify="left" if column.startswith(("stage", "recording", "first")) else "right")
    for stage in sorted(set(worst) | set(failed)):  # NN-stage folders sort in pipeline order
        w = worst.get(stage, {})
        i, c, r = w.get("isolated"), w.get("chain"), w.get("ratio")
        table.add_row(stage, _fmt(i["max_abs"]) if i else "-", _shown(i["recording"]) if i else "",
                      _fmt(c["max_abs"]) if c else "-", _shown(c["recording"]) if c else "",
                      f"{r['ratio']:.2f}x" if r else "-", _shown(r["recording"]) if r else "",
                      _shown(", ".join(failed.get(stage, []))) or "")
    console.print(table)
    identical = sum(e["rttm"]["identical"] for e in entries)
    passed = sum(e["passed"] for e in entries)
    der = {side: _der_value([e["der_components"][side] for e in entries]) for side in ("reference", "port")}
    scored = sum(e["der_components"]["reference"] is not None for e in entries)
    console.print(
        f"passed {passed}/{len(entries)}; RTTM identical {identical}/{len(entries)}"
        + (f"; DER pooled over {scored} recordings: pyannote {100 * der['reference']:.1f} %, port {100 * der['port']:.1f} %"
           if der["reference"] is not None else "")
    )
    return {"worst": worst, "rttm_identical": [identical, len(entries)], "passed": [passed, len(entries)],
            "der_pooled": der, "der_recordings": scored}


_WORKER: dict = {}


def _worker_run(args, name: str, path: str) -> dict:
    """One recording in a worker process (or a Dask worker): models loaded once per process."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    key = repr(sorted(vars(args).items()))
    if _WORKER.get("key") != key:
        _WORKER.update(key=key, setup=Setup(args))
    return verify_recording(_WORKER["setup"], args, name, Path(path))


def _worker_init(threads: int) -> None:
    """Share the cores among local workers."""
    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent says what happened, once


def _run_all(console, args, recordings: list[tuple[str, Path]], setup: Setup | None) -> list[dict]:
    """Every recording: here, in `-j N` local processes, or on a Dask cluster; a bar over recordings."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    entries: list[dict] = []
    if setup is not None:  # in this process, one recording after another, with stage progress
        verify = verify_given if args.embeddings else verify_recording
        for index, (name, path) in enumerate(recordings):
            with _progress(console) as progress:
                overall = progress.add_task(f"recordings", total=len(recordings), completed=index)
                task = progress.add_task(_shown(name), total=None)

                def report(description, total=None, completed=0):
                    progress.update(task, description=_shown(description), total=total, completed=completed)

                entry = verify(setup, args, name, path, progress=report)
                progress.update(overall, completed=index + 1)
            _print_recording(console, entry)
            entries.append(entry)
        return entries

    bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True)
    with bar:
        task = bar.add_task(f"recordings ({args.scheduler or f'{args.jobs} processes'})", total=len(recordings))
        if args.scheduler:
            from distributed import Client, as_completed

            with Client(args.scheduler, timeout="30s") as client:
                futures = [client.submit(_worker_run, args, name, str(path.resolve()), pure=False,
                                         key=f"verify-{name}-{os.getpid()}-{time.time_ns()}")
                           for name, path in recordings]
                for future in as_completed(futures):
                    entries.append(future.result())
                    bar.advance(task)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            threads = max(1, (os.cpu_count() or 1) // args.jobs)
            with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_worker_init, initargs=(threads,)) as pool:
                futures = [pool.submit(_worker_run, args, name, str(path)) for name, path in recordings]
                try:
                    for future in as_completed(futures):
                        entries.append(future.result())
                        bar.advance(task)
                except BaseException:
                    for process in list(getattr(pool, "_processes", {}).values()):
                        process.terminate()  # our own workers, by handle
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    order = {name: i for i, (name, _) in enumerate(recordings)}
    entries.sort(key=lambda e: order[e["name"]])
    for entry in entries:
        _print_recording(console, entry)
    return entries


def command_run(args) -> int:
    from port import audio, inputs

    console = _console()
    if args.embeddings:
        if args.audio:
            raise UsageError("--embeddings starts from given segmentations and embeddings: give no audio")
        if args.jobs != 1 or args.scheduler:
            raise UsageError("--embeddings runs in this process: no -j or --scheduler")
        inputs.load_given(args.embeddings)  # fail fast, one line, before any model loads
        paths = [Path(args.embeddings)]
    else:
        paths = inputs.expand(args.audio or [SAMPLE])
        for path in paths:  # fail fast, one line, before any model loads
            audio.load(path)
    from reference import models  # torch-free: the checks below import no model

    for kind in ("segmentation", "embedding"):
        if getattr(args, kind):
            models.check_source(kind, getattr(args, kind))  # a missing model: one line, before torch loads
    if args.pipeline == "community-1":
        from port.pipeline import load_plda

        load_plda(args.plda)  # a missing or damaged PLDA: one line, before any model loads
    recordings = list(zip(inputs.keys(paths), paths)) if not args.embeddings else [(Path(args.embeddings).resolve().name, paths[0])]
    if args.format not in ("npy", "txt"):
        raise UsageError(f"--format must be npy or txt, not {args.format}")
    if args.jobs < 1:
        raise UsageError(f"-j must be at least 1, not {args.jobs}")
    from port.pipeline import set_num_speakers

    try:  # pyannote's own check, here before any model loads (in pyannote's code it would be a surprise: exit 3)
        set_num_speakers(args.num_speakers, args.min_speakers, args.max_speakers)
    except ValueError as error:
        raise UsageError(f"--num-speakers/--min-speakers/--max-speakers: {error}") from None
    root = Path(args.dumps)
    # the outputs checked before any model loads: writable files, no two on one path
    _outputs(args, [name for name, _ in recordings], also=(root / "report.json",))
    _sweep_partial_dumps(root)

    began = time.perf_counter()
    with console.status("loading models, exporting ONNX (cached by checksum)"):
        setup = Setup(args)  # also exports the ONNX models once, before any worker needs them
    console.print(
        f"pipeline: {setup.pipeline}; models: segmentation {setup.models['segmentation']} ({setup.seg_sha[:12]}), "
        f"embedding {setup.models['embedding']} ({setup.emb_sha[:12]})"
        + (f", {setup.plda}" if setup.plda else "")
        + f"; port runs on {setup.device}; setup {time.perf_counter() - began:.1f}s"
    )
    if setup.pyannote_decoder is None:
        console.print("[yellow]torchcodec cannot load FFmpeg: pyannote gets the port's decode, "
                      "so stage 01 is not an independent check[/yellow]")
    local = args.jobs == 1 and not args.scheduler
    # what workers get: plain values, dumps where the caller asked whatever the worker's cwd
    shipped = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "func"})
    shipped.dumps = str(root.resolve())
    entries = _run_all(console, shipped, [(name, path.resolve()) for name, path in recordings], setup if local else None)
    if args.report:
        from harness import report as pictures

        for e in entries:
            page = pictures.write(args.report, root / "reference" / e["name"], root / "port" / e["name"], e.get("_verdict"), len(entries) > 1)
            console.print(f"report: {_shown(page)}")

    report = {
        "recordings": [{k: v for k, v in e.items() if not k.startswith("_")} for e in entries], "passed": all(e["passed"] for e in entries), "models": setup.models,
        "device": setup.device, "decoders": {"reference": setup.pyannote_decoder},
    }
    if len(entries) > 1:
        report["summary"] = _summary(console, entries)
    if any(e.get("cost") for e in entries):
        report["cost"] = cost_summary(console, entries)
    root.mkdir(parents=True, exist_ok=True)
    outcomes = ["drift" if not e["passed"] else (_judgement(e["_verdict"])[0] if e.get("_verdict") else "pass")
                for e in entries]
    report["outcome"] = {EXIT_OK: "pass", EXIT_DRIFT: "drift", EXIT_NOTHING_JUDGED: "nothing judged"}[_exit_for(outcomes)]
    report["passed"] = report["outcome"] == "pass"
    _write_json(root / "report.json", report, "report.json")
    if args.json:
        _write_json(Path(args.json), report)
    return _exit_for(outcomes)


def _write_json(path: Path, value: dict, what: str = "--json") -> None:
    """Atomically: a report is whole or absent, and nothing partial is left (port.dumps.write_atomic)."""
    from port.dumps import write_atomic

    write_atomic(path, json.dumps(value, indent=2, default=float) + "\n", what)


def _sweep_partial_dumps(root: Path) -> None:
    """Remove `.<name>.partial-<pid>` / `.old-<pid>` dumps whose process is gone (a kill -9, a power cut)."""
    import re

    pattern = re.compile(r"^\..+\.(partial|old)-(\d+)$")
    for side in (root.iterdir() if root.is_dir() else []):
        if not side.is_dir():
            continue
        for entry in side.iterdir():
            match = pattern.match(entry.name)
            if match and entry.is_dir() and not _alive(int(match.group(2))):
                shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------- compare
def _pairs(a: Path, b: Path) -> list[tuple[str, Path, Path]]:
    """Recording dumps to compare: two recordings, two sides, or two dump roots."""
    from port.dumps import MANIFEST, DumpError, recordings

    for path in (a, b):
        if not path.is_dir():
            raise DumpError(f"{path}: no such dump folder")
    if os.path.lexists(a / MANIFEST) or os.path.lexists(b / MANIFEST):  # the reader says what is wrong with one
        return [(a.name, a, b)]
    if (a / "reference").is_dir() and (b / "port").is_dir() and a == b:
        a, b = a / "reference", b / "port"
    names = sorted(set(recordings(a.parent, a.name)) & set(recordings(b.parent, b.name)))
    if not names:
        raise DumpError(f"no recording dumped in both {a} and {b}")
    return [(name, a / name, b / name) for name in names]


def _judgement(verdict) -> tuple[str, list[str]]:
    """("pass" | "drift" | "nothing judged", the stages something was compared in): a verdict
    where every stage is excluded, not implemented or declared so judged nothing, and is not a pass."""
    judged = [stage for stage, entry in verdict.stages.items()
              if any(row.kind not in ("not implemented", "echoed") for row in entry.chain + entry.isolated)]
    if not verdict.passed:
        return "drift", judged
    return ("pass" if judged else "nothing judged"), judged


def _exit_for(outcomes: list[str]) -> int:
    """Drift anywhere: 1; else nothing judged anywhere: 4; else 0."""
    if "drift" in outcomes:
        return EXIT_DRIFT
    return EXIT_NOTHING_JUDGED if "nothing judged" in outcomes or not outcomes else EXIT_OK


def _outputs(args, names: list[str], inside: tuple[Path, ...] = (), also: tuple[Path, ...] = ()) -> dict:
    """The outputs the command will write ({"json": path, "report": {recording: path}}), checked
    before any work: each a file that can be written (port.dumps.check_output), no two on one
    path, none inside the dump folders being read."""
    from harness.report import page_path
    from port.dumps import check_output

    planned: list[tuple[str, Path, Path]] = []  # (what, as given, where it lands)
    if getattr(args, "json", None):
        planned.append(("--json", Path(args.json), check_output(args.json, "--json")))
    pages = {}
    if getattr(args, "report", None):
        for name in names:
            page = page_path(args.report, name, len(names) > 1)
            pages[name] = page
            planned.append(("--report", page, check_output(page, "--report")))
    seen: dict[Path, str] = {Path(os.path.realpath(p)): "the run's own report.json" for p in also}
    for what, given, real in planned:
        if real in seen:
            raise UsageError(f"{what} {given}: the same file as {seen[real]} (give each output its own path)")
        seen[real] = f"{what} {given}"
        for folder in inside:
            root = Path(os.path.realpath(folder))
            if real == root or root in real.parents:
                raise UsageError(f"{what} {given}: inside the dump folder {folder}, which is being read "
                                 "(write outputs elsewhere)")
    return {"json": args.json if getattr(args, "json", None) else None, "report": pages}


def _stages_option(text: str | None, pipeline: str) -> list[str] | None:
    from harness.compare import parse_stages

    if text is not None and not text.strip():
        raise UsageError("--stages is empty: name stages (e.g. 01-05,08), or leave the option out to judge every stage")
    try:
        return parse_stages(text, pipeline)
    except (ValueError, KeyError) as error:
        raise UsageError(str(error).strip("'\"")) from None


def _print_rttm_verdict(console, verdict) -> None:
    """An RTTM candidate's verdict (harness.rttm): the status, the seconds, where it differs."""
    from rich.table import Table

    colour = "green" if verdict.passed else "red"
    what = {"identical": "identical on pyannote's frame grid",
            "tie order": f"identical up to tie order ({verdict.tie_frames} frames, {verdict.tie_frames * verdict.step:.2f} s)",
            "differs": "differs"}[verdict.status]
    console.print(f"{_shown(verdict.recording)} ({verdict.pipeline}): {_shown(verdict.candidate)} against pyannote's "
                  f"diarization in {_shown(verdict.reference)}, on its frame grid ({verdict.frames} frames of "
                  f"{verdict.step * 1000:.1f} ms)")
    mapping = ", ".join(f"{_shown(c)} -> {_shown(r) if r else 'none'}" for c, r in verdict.mapping.items())
    console.print(f"speakers: pyannote {verdict.speakers['reference']}, candidate {verdict.speakers['candidate']}"
                  + (f" (labels mapped: {mapping})" if mapping else ""))
    table = Table(title="on the frame grid; missed, false alarm and confusion beyond tie order", title_justify="left")
    for column in ("speech", "missed", "false alarm", "confusion", "frames differing", "of them tie order", "error rate"):
        table.add_column(column, justify="right")
    rate = verdict.error_rate
    table.add_row(f"{verdict.speech:.2f} s", f"{verdict.missed:.2f} s", f"{verdict.false_alarm:.2f} s",
                  f"{verdict.confusion:.2f} s", str(verdict.differing_frames), str(verdict.tie_frames),
                  f"{100 * rate:.2f} %" if rate is not None else "-")
    console.print(table)
    for turn in verdict.outside[:10]:
        console.print(f"[red]line {turn['line']}: {_shown(turn['label'])} {turn['start']:.3f}-{turn['end']:.3f} s "
                      f"{_shown(turn['why'])}[/red]")
    if len(verdict.outside) > 10:
        console.print(f"[red]... and {len(verdict.outside) - 10} more turns outside[/red]")
    if verdict.first_difference:
        f = verdict.first_difference
        console.print(f"[red]first difference at {f['time']:.3f} s (frame {f['output_frame']}): pyannote "
                      f"{_shown(', '.join(f['reference']) or 'nobody')}, candidate "
                      f"{_shown(', '.join(f['candidate']) or 'nobody')}[/red]")
        for span in verdict.spans[1:6]:
            console.print(f"[red]  then {span['start']:.3f}-{span['end']:.3f} s: pyannote "
                          f"{_shown(', '.join(span['reference']) or 'nobody')}, candidate "
                          f"{_shown(', '.join(span['candidate']) or 'nobody')}[/red]")
    for note in verdict.notes:
        console.print(f"[yellow]{_shown(note)}[/yellow]")
    console.print(f"[{colour}]RTTM {what}[/{colour}]")


def command_compare_rttm(args) -> int:
    """`compare REFERENCE CANDIDATE.rttm`: a port that gives only speaker turns."""
    from harness import report as pictures
    from harness.rttm import judge_rttm
    from port.dumps import write_atomic

    if args.stages is not None:
        raise UsageError("--stages judges a dump's stages: an RTTM candidate has none")
    name = Path(args.reference).name
    outputs = _outputs(args, [name], inside=(Path(args.reference),))
    verdict = judge_rttm(args.reference, args.candidate)
    console = _console()
    _print_rttm_verdict(console, verdict)
    if args.report:
        page = pictures.write_rttm(outputs["report"][name], verdict)
        console.print(f"report: {_shown(page)}")
    outcome = "pass" if verdict.passed else "drift"
    if outputs["json"]:
        write_atomic(outputs["json"], json.dumps({"recordings": [{**verdict.as_dict(), "outcome": outcome}],
                                                  "passed": verdict.passed, "outcome": outcome, "kind": "rttm"},
                                                 indent=2, default=float) + "\n", "--json")
    return EXIT_OK if verdict.passed else EXIT_DRIFT


def command_compare(args) -> int:
    import numpy as np

    from harness import report as pictures
    from harness.compare import check_candidate, judge
    from port.dumps import DumpReader, check_pair, write_atomic

    given = Path(args.candidate)
    if given.suffix.lower() == ".rttm" or (given.exists() and not given.is_dir()):  # a port that gives only turns
        return command_compare_rttm(args)
    console = _console()
    if args.stages is not None and not args.stages.strip():
        _stages_option(args.stages, "3.1")  # an empty --stages: refused before any dump is read
    report = {"recordings": [], "passed": True, "outcome": None, "stages": None}
    pairs = _pairs(Path(args.reference), Path(args.candidate))
    outputs = _outputs(args, [name for name, _, _ in pairs], inside=(Path(args.reference), Path(args.candidate)))
    # everything read and checked before anything is judged or written
    checked = []
    for name, a, b in pairs:
        reference, candidate = DumpReader(a), DumpReader(b)
        check_candidate(reference, candidate)
        findings = check_pair(reference, candidate)
        stages = _stages_option(args.stages, reference.pipeline)
        checked.append((name, a, b, reference, candidate, stages, reference.warnings + candidate.warnings + findings))
    outcomes = []
    for name, a, b, reference, candidate, stages, notes in checked:
        report["stages"] = stages
        # NaN and inf are in the verdict (rows say "NaN/inf on one side only"): numpy's own
        # RuntimeWarnings about them would only be noise beside it
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            verdict = judge(a, b, stages=stages)
        for warning in notes + verdict.warnings:
            console.print(f"[yellow]warning: {_shown(warning)}[/yellow]")
        passed, first = _stage_table(console, verdict, sides=_side_names(candidate.manifest, reference.manifest, (b, a)))
        outcome, judged = _judgement(verdict)
        outcomes.append(outcome)
        undeclared = [s for s in verdict.not_implemented if s not in verdict.declared]
        if undeclared:
            console.print(f"[red]not implemented: {_shown(', '.join(undeclared))}[/red] "
                          "(use --stages to judge only the stages the candidate has, or declare them in its "
                          "manifest's not_implemented)")
        if outcome == "nothing judged":
            console.print("[yellow]nothing judged: every stage is excluded or not implemented; this is not a pass "
                          f"(exit {EXIT_NOTHING_JUDGED})[/yellow]")
        if args.report:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                page = pictures.write(outputs["report"][name], a, b, verdict, several=False)
            console.print(f"report: {_shown(page)}")
        report["passed"] &= outcome == "pass"
        report["recordings"].append({**verdict.as_dict(), "name": name, "outcome": outcome, "judged": judged,
                                     "passed": outcome == "pass", "warnings": [*notes, *verdict.warnings],
                                     "stages_flat": [row.as_dict() for row in verdict.chain + verdict.isolated]})
    if len(pairs) > 1:
        report["summary"] = _compare_summary(console, report["recordings"])
    status = _exit_for(outcomes)
    report["outcome"] = {EXIT_OK: "pass", EXIT_DRIFT: "drift", EXIT_NOTHING_JUDGED: "nothing judged"}[status]
    if outputs["json"]:
        write_atomic(outputs["json"], json.dumps(report, indent=2, default=float) + "\n", "--json")
    return status


def _compare_summary(console, recordings: list[dict]) -> dict:
    """The last lines of a comparison of several recordings: how many passed, where each failed first."""
    passed = [r["name"] for r in recordings if r["passed"]]
    failed = {r["name"]: r["first_failure"] for r in recordings if r.get("outcome", "drift") == "drift" and not r["passed"]}
    nothing = [r["name"] for r in recordings if r.get("outcome") == "nothing judged"]
    declared = sorted({n for r in recordings for n in r["declared_not_implemented"]})
    exercised = sorted({k for r in recordings for k, v in r["coverage"].items() if v["exercised"]})
    never = sorted({k for r in recordings for k in r["coverage"]} - set(exercised))
    console.print(f"summary: {len(passed)} of {len(recordings)} recordings pass" + (
        "; first failures: " + _shown(", ".join(f"{n} at {s}" for n, s in failed.items())) if failed else "")
        + (f"; nothing judged: {_shown(_few(nothing))}" if nothing else ""))
    if declared:
        console.print(f"summary: declared not implemented: {_shown(_few(declared, 32))}")
    if never:
        console.print(f"summary: branches no recording exercised: {', '.join(never)}")
    return {"passed": [len(passed), len(recordings)], "first_failures": failed, "nothing_judged": nothing, "declared_not_implemented": declared,
            "branches_exercised": exercised, "branches_never_exercised": never}


def command_inputs(args) -> int:
    """The dumps that feed a stage (port.vocabulary), with shapes and dtypes from a reference dump
    (read from the files' headers: nothing is loaded)."""
    import re

    from port.dumps import DumpReader
    from port.vocabulary import pipeline as describe

    reference = DumpReader(args.reference) if args.reference else None
    description = describe(reference.pipeline if reference else args.pipeline)
    stage = next((s for s in description.stage_names if args.stage in (s, s[:2], s[3:])), None)
    if stage is None:
        raise UsageError(f"pipeline {description.name} has no stage {args.stage!r} "
                         f"(stages: {', '.join(description.stage_names)})")
    console = _console()
    console.print(f"{stage} ({description.name}, `{_shown(description.stage(stage).function)}`) reads:")
    for entry in description.stage(stage).inputs or ("the audio file",):
        source, _, pattern = entry.partition("/")
        if reference is None or not pattern:
            console.print(f"  {entry}")
            continue
        regex = re.compile(re.escape(pattern).replace(re.escape("<k>"), r"\d+") + "$")
        found = [n for n in reference.names(source) if regex.match(n)]
        if not found:
            console.print(f"  {entry}  (not in this reference dump)")
        for name in found:
            header = reference.header(source, name)
            what = "text" if header is None else f"{header.shape} {header.dtype.name}"
            console.print(f"  {source}/{_shown(name)}  {what}")
    return EXIT_OK


# ----------------------------------------------------------------------------- clean / export
def command_clean(args) -> int:
    root = Path(args.dumps)
    removed = 0
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name == "README.md":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
    _console().print(f"removed {removed} entries under {root}")
    return EXIT_OK


def command_export(args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segmentation, embedding = load_models(args)
        folder = export_models(args, segmentation, embedding)
    console = _console()
    for file in sorted(folder.glob("*.onnx")):
        console.print(f"{file}  ({file.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK


# ----------------------------------------------------------------------------- main
def _model_options(parser):
    parser.add_argument("--models", choices=["fixture", "real"], default="fixture",
                        help="fixture test models (default) or pyannote's real ones")
    parser.add_argument("--segmentation", help="segmentation: 'pretrained' (pyannote's segmentation-3.0, exact, "
                        "reference/pretrained/), a Hugging Face id, a local checkpoint, or its float / int8 ONNX")
    parser.add_argument("--embedding", help="embedding: Hugging Face id or local checkpoint")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: $HF_TOKEN)")
    parser.add_argument("--models-dir", help="where ONNX exports are cached and the port finds them "
                        "(default: $PYANNOTE_PORT_MODELS, else ~/.cache/pyannote-port/models)")
    parser.add_argument("--precision", choices=["exact", "fast"], default="exact",
                        help="the port's mode: exact (default) or fast (ONNX Runtime's LSTM op and the trunk "
                             "formulation this machine runs fastest), judged like any candidate, with what it costs")
    parser.add_argument("--onnx-lstm", action="store_true",
                        help="export the segmentation LSTM as ONNX Runtime's LSTM op (exporter v2's graph: about half "
                             "the segmentation's CPU time, 2.6x torch's error at the LSTM on ami_stereo_5s) instead "
                             "of the exact Scan")


def _pipeline_options(parser):
    from port.vocabulary import DEFAULT_PIPELINE, PIPELINES

    parser.add_argument("--pipeline", choices=list(PIPELINES), default=DEFAULT_PIPELINE,
                        help=f"which pyannote pipeline (default {DEFAULT_PIPELINE}, pyannote 4's own default)")
    parser.add_argument("--plda", metavar="DIR", help="community-1's PLDA folder (xvec_transform.npz, plda.npz; "
                                                      "default: reference/pretrained/plda)")


def parser() -> argparse.ArgumentParser:
    from port.vocabulary import PIPELINES

    main = ArgumentParser(prog="verify.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--debug", action="store_true", help="on an unforeseen error, print its traceback")
    commands = main.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run pyannote.audio and the port, compare stage by stage")
    run.add_argument("audio", nargs="*", help="audio files, folders (recursive) or list files, one path a line "
                                              "(default: a checkout's tests/data/sample.wav)")
    _model_options(run)
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--fbank", choices=["auto", "numpy", "graph"], default="auto",
                     help="the port's fbank: numpy, or fbank.onnx on the models' provider (auto: the graph on CUDA)")
    run.add_argument("--format", choices=["npy", "txt"], default="npy", help="dump format")
    run.add_argument("--json", help="write the table and timings as JSON")
    run.add_argument("--report", help="write an HTML page of pictures (one per recording: NAME-<recording>.html when several)")
    run.add_argument("--dumps", default=str(DUMPS), help="dump root (default: a checkout's dumps/, else ./dumps)")
    run.add_argument("-j", "--jobs", type=int, default=1, help="recordings verified in parallel (local processes)")
    run.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786): fan the recordings out to its workers")
    run.add_argument("--num-speakers", type=int)
    run.add_argument("--min-speakers", type=int)
    run.add_argument("--max-speakers", type=int)
    _pipeline_options(run)
    run.add_argument("--embeddings", metavar="DIR",
                     help="start both sides at 09 from DIR's segmentations.npz + raw_embeddings.npz "
                          "(optional reconstruction.npz: the windows); the recording is named after DIR")
    run.set_defaults(func=command_run)

    compare = commands.add_parser("compare", help="compare two dump trees (reference first), or a reference dump "
                                                  "and a candidate's RTTM")
    compare.add_argument("reference", help="a reference dump (dumps/reference/sample), or a dump root")
    compare.add_argument("candidate", help="the candidate's dump, dump root, or RTTM file (a port that gives only turns: "
                                           "judged on pyannote's frame grid)")
    compare.add_argument("--json", help="write the comparison as JSON")
    compare.add_argument("--report", help="write an HTML page of pictures (one per recording: NAME-<recording>.html when several)")
    compare.add_argument("--stages", help="judge only these stages, e.g. 01-05 or 01-05,08 (the others are excluded)")
    compare.set_defaults(func=command_compare)

    inputs = commands.add_parser("inputs", help="the reference dumps a stage reads (with shapes when given a dump)")
    inputs.add_argument("stage", help="a stage: 12-assign, 12 or assign")
    inputs.add_argument("reference", nargs="?", help="a reference dump (dumps/reference/sample): shapes and dtypes")
    inputs.add_argument("--pipeline", default="3.1", choices=list(PIPELINES),
                        help="without a dump: the pipeline (3.1 or community-1)")
    inputs.set_defaults(func=command_inputs)

    clean = commands.add_parser("clean", help="remove dumps/ contents (its README stays)")
    clean.add_argument("--dumps", default=str(DUMPS), help="dump root (default: a checkout's dumps/, else ./dumps)")
    clean.set_defaults(func=command_clean)

    export = commands.add_parser("export", help="export the ONNX models")
    _model_options(export)
    export.set_defaults(func=command_export)
    for command in commands.choices.values():  # --debug after the command too (SUPPRESS: the main one's value stays)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="on an unforeseen error, print its traceback")
    return main


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `timeout`, a CI cancel): unwound like Ctrl-C, so no partial dump is kept."""


def _on_sigterm(signum, frame):
    raise Terminated()


# what each install lacks, when a command reaches for it (docs/install.md)
_MISSING = {
    "matplotlib": "pip install matplotlib (pyannote-verify[report])",
    "scipy": "pip install scipy (pyannote-verify[rttm])",
}
_WHOLE = ("run and export need the whole project with pyannote.audio: "
          "pip install -e '.[reference]' in a checkout (docs/install.md)")


def _missing_module(error: ImportError) -> str:
    """One line for a command this installation cannot run (the judge alone runs compare, inputs, clean):
    a missing module, or a module of the port the judge's install does not carry."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        what = error.name
    else:  # `from port import audio` where port/ holds only the dump vocabulary
        import re

        found = re.match(r"cannot import name '([\w.]+)' from '([\w.]+)'", str(error))
        what = f"{found[2]}.{found[1]}" if found else str(error).splitlines()[0]
    hint = _MISSING.get((error.name or "").split(".")[0], _WHOLE)
    return f"this command needs {what}, which this installation lacks: {hint}"


def main(argv: list[str] | None = None) -> int:
    """The command's exit status (docs/cli.md): every error is one line on stderr, never a traceback
    (but under --debug, for what the judge did not foresee)."""
    from port import exits

    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")  # pyannote 4 otherwise sends telemetry

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = parser().parse_args(argv)
        return args.func(args)
    except Terminated:
        print("terminated (SIGTERM): no partial dump was kept", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted: no partial dump was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ImportError as error:  # ModuleNotFoundError too: a command this installation cannot run
        if debug:
            import traceback

            traceback.print_exception(error, file=sys.stderr)
        print(f"error: {_missing_module(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:  # noqa: BLE001 - every error gets its one line and its status
        return exits.report(error, "verify.py", debug=debug, scripts=(str(Path(__file__).resolve()),))
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
