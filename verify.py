#!/usr/bin/env python3
"""Run pyannote.audio and the port side by side and show where drift starts.

    python verify.py run [AUDIO ...]        reference + port, dumps, stage-by-stage table
    python verify.py compare A B            compare two dump trees (e.g. a C++ port's)
    python verify.py clean                  remove everything under dumps/ but its README
    python verify.py export                 write the ONNX models the port runs

Exit status: 0 when every compared stage is within tolerance, 1 when one is not,
2 on bad input (missing or unreadable audio, models or dumps).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent
DUMPS = REPO / "dumps"
SAMPLE = REPO / "tests" / "data" / "sample.wav"

EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _console():
    from rich.console import Console

    console = Console(stderr=False, highlight=False)
    if not console.is_terminal:  # logs and CI: wide enough for the stage table
        console = Console(stderr=False, highlight=False, width=132)
    return console


def _errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input: reported in one line, exit status 2."""
    from port.audio import AudioError
    from port.dumps import DumpError
    from port.runtime import ModelError as OnnxModelError

    errors: list[type[BaseException]] = [AudioError, DumpError, OnnxModelError]
    try:
        from reference.export import ExportError
        from reference.models import ModelError

        errors += [ExportError, ModelError]
    except ImportError:  # port-only install: compare and clean still work
        pass
    return tuple(errors)


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

    paths = export.export(segmentation, embedding, out=Path(args.models_dir))
    return paths["segmentation"].parent


# ----------------------------------------------------------------------------- run
def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )


def _der(audio_path: Path, rttm_text: str) -> float | None:
    """DER (pyannote.metrics) against <audio>.rttm beside the audio, when there is one."""
    truth = audio_path.with_suffix(".rttm")
    if not truth.is_file():
        return None
    import io

    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    from pyannote.core import Annotation

    reference = next(iter(load_rttm(truth).values()))
    hypotheses = load_rttm(io.StringIO(rttm_text)) if rttm_text else {}
    hypothesis = next(iter(hypotheses.values())) if hypotheses else Annotation()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "uem was approximated": the usual whole-file scoring
        return float(DiarizationErrorRate()(reference, hypothesis))


def _manifest(side: str, uri: str, audio_path: Path, audio_sha: str, seg_sha: str, emb_sha: str, args, extra: dict) -> dict:
    from port.pipeline import Parameters

    return {
        "side": side,
        "uri": uri,
        "audio": audio_path.name,
        "audio_sha256": audio_sha,
        "segmentation_sha256": seg_sha,
        "embedding_sha256": emb_sha,
        "models": args.models if not (args.segmentation or args.embedding) else "custom",
        "parameters": Parameters().as_dict(),
        "num_speakers": args.num_speakers,
        "min_speakers": args.min_speakers,
        "max_speakers": args.max_speakers,
        **extra,
    }


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


def _stage_table(console, verdict) -> tuple[bool, str | None]:
    """Print a Verdict (port.compare.judge) as the stage table; (passed, first failing stage)."""
    from rich.table import Table

    table = Table(title=f"{verdict.recording}: candidate vs pyannote.audio, stage by stage", title_justify="left")
    for column in ("stage", "isolated drift", "chain drift", "noise", "ratio", "over", "bound", "result"):
        table.add_column(column, justify="left" if column in ("stage", "result") else "right")
    for stage, entry in verdict.stages.items():
        if entry.status in ("not reached", "excluded", "not implemented") or not (entry.chain or entry.isolated):
            style = "red" if not entry.passed else "dim"
            table.add_row(stage, "-", "-", "-", "-", "-", "-", f"[{style}]{entry.status}[/{style}]: {entry.reason}")
            continue
        floats = lambda rows: [r for r in rows if r.kind == "float"]  # noqa: E731
        worst = lambda rows: max(floats(rows), key=lambda r: (r.max_abs != r.max_abs, r.max_abs), default=None)  # noqa: E731
        ci, cc = worst(entry.isolated), worst(entry.chain)
        noise_row = next((r for r in floats(entry.chain) + floats(entry.isolated) if r.noise is not None), None)
        over = sum(r.over for r in entry.chain + entry.isolated)
        ratios = [r.noise_ratio for r in floats(entry.chain + entry.isolated) if r.noise_ratio is not None]
        failing = [r for r in entry.isolated + entry.chain if not r.passed]
        notes = [r for r in entry.chain + entry.isolated if r.note and r.passed]  # e.g. reordered merges
        if failing:
            r = failing[0]
            side = "isolated" if r in entry.isolated else "chain"
            result = f"[red]FAIL[/red] {side} {r.name}: {r.note}{_where_text(r.where)}"
        else:
            result = "[green]pass[/green]" + (f" ({notes[0].note})" if notes else "")
        table.add_row(
            stage,
            _fmt(ci.max_abs) if ci else ("exact" if entry.isolated else "-"),
            _fmt(cc.max_abs) if cc else ("exact" if entry.chain else "-"),
            _fmt(noise_row.noise) if noise_row else "-",
            f"{max(ratios):.2f}x" if ratios else "-",
            str(over),
            _fmt(max((r.bound for r in floats(entry.chain)), default=None), ".0e"),
            result,
        )
    console.print(table)
    if verdict.noise:
        console.print(f"[dim]noise: {verdict.noise}; a float stage passes when drift <= k x noise + floor "
                      "at the max and the percentile, and under the ceiling[/dim]")
    first = verdict.first_failure
    if first:
        console.print(f"[red]first stage over tolerance: {first}[/red]")
    return verdict.passed, first


def _print_turns(console, result) -> None:
    from rich.table import Table

    console.print(f"port diarization of {result.uri}: {result.num_speakers} speakers, {len(result.turns)} turns")
    table = Table()
    for column in ("start", "end", "speaker"):
        table.add_column(column, justify="right" if column != "speaker" else "left")
    for turn in result.turns:
        table.add_row(f"{turn.start:.3f}", f"{turn.end:.3f}", result.labels[turn.label])
    console.print(table)


def command_run(args) -> int:
    import numpy as np

    from port import audio
    from port.compare import judge
    from port.dumps import DumpWriter
    from port.pipeline import Parameters, Pipeline

    console = _console()
    paths = [Path(p) for p in (args.audio or [SAMPLE])]
    for path in paths:  # fail fast, one line, before any model loads
        audio.load(path)
    if args.format not in ("npy", "txt"):
        raise ValueError(f"--format must be npy or txt, not {args.format}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from reference import models, noise
        from reference import run as reference_run

        began = time.perf_counter()
        with console.status("loading models"):
            segmentation, embedding = load_models(args)
            seg_sha, emb_sha = models.checksum(segmentation), models.checksum(embedding)
        with console.status("exporting ONNX models (cached by checksum)"):
            folder = export_models(args, segmentation, embedding)
        parameters = Parameters()
        ref_pipeline = reference_run.build_pipeline(segmentation, embedding, parameters)
        port_pipeline = Pipeline.from_folder(folder, device=args.device, parameters=parameters)
        from port.runtime import describe

        device_reason = describe(args.device)
        console.print(
            f"models: {args.models} (segmentation {seg_sha[:12]}, embedding {emb_sha[:12]}); "
            f"port runs on {device_reason}; setup {time.perf_counter() - began:.1f}s"
        )
        if args.models == "fixture":
            console.print("[dim]fixture models: test weights made here, not pyannote's pretrained models[/dim]")

    report = {"recordings": [], "passed": True, "models": args.models, "device": device_reason}
    root = Path(args.dumps)
    speakers = {"num_speakers": args.num_speakers, "min_speakers": args.min_speakers, "max_speakers": args.max_speakers}
    for path in paths:
        name = path.stem
        audio_sha = reference_run.sha256_file(path)
        entry: dict = {"name": name, "audio": str(path)}

        with _progress(console) as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task = progress.add_task(f"{name}: pyannote.audio", total=None)

            def ref_hook(step, artifact, file=None, total=None, completed=None):
                progress.update(task, description=f"{name}: pyannote {step}", total=total, completed=completed or 0)

            with DumpWriter(root, "reference", name, args.format) as writer:
                t0 = time.perf_counter()
                ref_result = reference_run.run(path, ref_pipeline, **speakers, hook=writer, progress=ref_hook)
                ref_seconds = time.perf_counter() - t0
                writer.commit(_manifest("reference", ref_result.uri, path, audio_sha, seg_sha, emb_sha, args, {
                    "versions": reference_run.versions(), "providers": ["torch-cpu"],
                }))
            progress.update(task, description=f"{name}: port", total=None, completed=0)

            def port_progress(stage, completed, total):
                progress.update(task, description=f"{name}: port {stage}", total=total, completed=completed)

            with DumpWriter(root, "port", name, args.format) as writer:
                t0 = time.perf_counter()
                port_result = port_pipeline(path, **speakers, hook=writer, progress=port_progress)
                port_seconds = time.perf_counter() - t0
                writer.commit(_manifest("port", port_result.uri, path, audio_sha, seg_sha, emb_sha, args, {
                    "versions": reference_run.versions(), "providers": sorted(set(port_result.providers.values())),
                    "onnx": folder.name,
                }))

        ref_dir, port_dir = root / "reference" / name, root / "port" / name
        with console.status(f"{name}: pyannote's own float32 noise (float64 recomputation, stored once)"):
            noise.ensure(ref_dir, segmentation, embedding, port_dir)
        verdict = judge(ref_dir, port_dir, pipeline=port_pipeline)
        passed, first = _stage_table(console, verdict)
        identical = port_result.rttm == ref_result.rttm
        _print_turns(console, port_result)
        ref_der, port_der = _der(path, ref_result.rttm), _der(path, port_result.rttm)
        ref_speakers = len(ref_result.output.speaker_diarization.labels())
        ref_count = np.load(ref_dir / "05-count" / "out_count.npy") if args.format == "npy" else None
        console.print(
            f"reference: {ref_speakers} speakers"
            + (f", speaker count takes {sorted(set(np.unique(ref_count).tolist()))}" if ref_count is not None else "")
            + (f", DER {100 * ref_der:.1f} % against {path.with_suffix('.rttm').name}" if ref_der is not None else "")
        )
        console.print(
            f"port: {port_result.num_speakers} speakers"
            + (f", DER {100 * port_der:.1f} %" if port_der is not None else "")
            + f"; {port_seconds:.1f}s vs pyannote {ref_seconds:.1f}s ({ref_seconds / port_seconds:.1f}x)"
        )
        console.print("[green]RTTM identical[/green]" if identical else "[red]RTTM differs[/red]")
        passed = passed and identical
        report["passed"] &= passed
        entry.update({
            "passed": passed,
            "first_failure": first,
            "rttm": {
                "reference": str(ref_dir / "14-annotation" / "out_diarization.rttm"),
                "port": str(port_dir / "14-annotation" / "out_diarization.rttm"),
                "identical": identical,
            },
            "speakers": {"reference": ref_speakers, "port": port_result.num_speakers},
            "der": {"reference": ref_der, "port": port_der},
            "seconds": {"reference": ref_seconds, "port": port_seconds, "port_stages": port_result.seconds},
            "providers": port_result.providers,
            "verdict": verdict.as_dict(),
            "stages": {
                "isolated": [row.as_dict() for row in verdict.isolated],
                "chain": [row.as_dict() for row in verdict.chain],
            },
        })
        report["recordings"].append(entry)

    root.mkdir(parents=True, exist_ok=True)
    (root / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
    return EXIT_OK if report["passed"] else EXIT_DRIFT


# ----------------------------------------------------------------------------- compare
def _pairs(a: Path, b: Path) -> list[tuple[str, Path, Path]]:
    """Recording dumps to compare: two recordings, two sides, or two dump roots."""
    from port.dumps import MANIFEST, DumpError, recordings

    for path in (a, b):
        if not path.is_dir():
            raise DumpError(f"{path}: no such dump folder")
    if (a / MANIFEST).is_file() or (b / MANIFEST).is_file():
        return [(a.name, a, b)]
    if (a / "reference").is_dir() and (b / "port").is_dir() and a == b:
        a, b = a / "reference", b / "port"
    names = sorted(set(recordings(a.parent, a.name)) & set(recordings(b.parent, b.name)))
    if not names:
        raise DumpError(f"no recording dumped in both {a} and {b}")
    return [(name, a / name, b / name) for name in names]


def command_compare(args) -> int:
    from port.compare import judge, parse_stages
    from port.dumps import DumpReader

    console = _console()
    stages = parse_stages(args.stages)
    report = {"recordings": [], "passed": True, "stages": stages}
    for name, a, b in _pairs(Path(args.reference), Path(args.candidate)):
        reference, candidate = DumpReader(a), DumpReader(b)
        candidate.check({k: reference.manifest.get(k) for k in ("audio_sha256",)})
        verdict = judge(a, b, stages=stages)
        passed, first = _stage_table(console, verdict)
        if verdict.not_implemented:
            console.print(f"[red]not implemented: {', '.join(verdict.not_implemented)}[/red] "
                          "(use --stages to judge only the stages the candidate has)")
        report["passed"] &= passed
        report["recordings"].append({**verdict.as_dict(), "name": name,
                                     "stages_flat": [row.as_dict() for row in verdict.chain]})
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
    return EXIT_OK if report["passed"] else EXIT_DRIFT


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
    parser.add_argument("--segmentation", help="segmentation: Hugging Face id or local checkpoint")
    parser.add_argument("--embedding", help="embedding: Hugging Face id or local checkpoint")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: $HF_TOKEN)")
    parser.add_argument("--models-dir", default=str(REPO / "models"), help="where ONNX exports are cached")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="verify.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run pyannote.audio and the port, compare stage by stage")
    run.add_argument("audio", nargs="*", help=f"audio files (default: {SAMPLE.relative_to(REPO)})")
    _model_options(run)
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--format", choices=["npy", "txt"], default="npy", help="dump format")
    run.add_argument("--json", help="write the table and timings as JSON")
    run.add_argument("--dumps", default=str(DUMPS), help="dump root (default: dumps/)")
    run.add_argument("--num-speakers", type=int)
    run.add_argument("--min-speakers", type=int)
    run.add_argument("--max-speakers", type=int)
    run.set_defaults(func=command_run)

    compare = commands.add_parser("compare", help="compare two dump trees (reference first)")
    compare.add_argument("reference")
    compare.add_argument("candidate")
    compare.add_argument("--json", help="write the comparison as JSON")
    compare.add_argument("--stages", help="judge only these stages, e.g. 01-05 or 01-05,08 (the others are excluded)")
    compare.set_defaults(func=command_compare)

    clean = commands.add_parser("clean", help="remove dumps/ contents (its README stays)")
    clean.add_argument("--dumps", default=str(DUMPS))
    clean.set_defaults(func=command_clean)

    export = commands.add_parser("export", help="export the ONNX models")
    _model_options(export)
    export.set_defaults(func=command_export)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted: no partial dump was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - one line for anything we recognise as bad input
        if isinstance(error, _errors()) or isinstance(error, (ValueError, FileNotFoundError)):
            print(f"error: {str(error).splitlines()[0] if str(error) else type(error).__name__}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    sys.exit(main())
