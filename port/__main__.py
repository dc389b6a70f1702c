"""Diarize audio files with the port alone (no torch, no pyannote).

    python -m port meeting.wav [--rttm meeting.rttm] [--models models/<export>]

The ONNX models come from `verify.py export` (or any folder holding
segmentation.onnx, embedding-trunk.onnx and embedding-head.onnx).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .audio import AudioError
from .dumps import DumpError
from .runtime import ModelError

MODELS = Path(__file__).resolve().parent.parent / "models"


def find_models(folder: str | None) -> Path:
    """The export folder to use: the one given, or the only/newest one under models/."""
    if folder:
        path = Path(folder)
        if not (path / "segmentation.onnx").is_file():
            raise ModelError(f"no segmentation.onnx in {path} (run 'python verify.py export')")
        return path
    candidates = sorted(MODELS.glob("*/segmentation.onnx"), key=lambda p: p.stat().st_mtime) if MODELS.is_dir() else []
    if not candidates:
        raise ModelError(f"no exported models under {MODELS}: run 'python verify.py export' or pass --models")
    return candidates[-1].parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m port", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...)")
    parser.add_argument("--rttm", help="write the RTTM here (a folder when several files are given); default: print it")
    parser.add_argument("--models", help="folder of exported ONNX models (default: newest under models/)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--num-speakers", type=int)
    parser.add_argument("--min-speakers", type=int)
    parser.add_argument("--max-speakers", type=int)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import runtime
    from .pipeline import Pipeline

    err = Console(stderr=True, highlight=False)
    try:
        folder = find_models(args.models)
        pipeline = Pipeline.from_folder(folder, device=args.device)
        if not args.quiet:
            err.print(f"running on {runtime.describe(args.device)}")
        for path in args.audio:
            with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=err, transient=True, disable=args.quiet) as progress:
                task = progress.add_task(Path(path).name, total=None)

                def report(stage, completed, total):
                    progress.update(task, description=f"{Path(path).name}: {stage}", completed=completed, total=total)

                result = pipeline(path, num_speakers=args.num_speakers, min_speakers=args.min_speakers,
                                  max_speakers=args.max_speakers, progress=report)
            if args.rttm:
                target = Path(args.rttm)
                if len(args.audio) > 1 or target.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    target = target / f"{result.uri}.rttm"
                target.write_text(result.rttm)
            else:
                sys.stdout.write(result.rttm)
            if not args.quiet:
                seconds = sum(result.seconds.values())
                err.print(f"{path}: {result.num_speakers} speakers, {len(result.turns)} turns, {seconds:.1f}s")
    except (AudioError, ModelError, DumpError, ValueError) as error:
        # plain print: one line, never wrapped by the console
        print(f"error: {str(error).splitlines()[0] if str(error) else type(error).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
