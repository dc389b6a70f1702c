"""Diarize audio files with the port alone (no torch, no pyannote).

    python -m port meeting.wav [--rttm meeting.rttm] [--models models/<export>]
    python -m port a/x.wav b/x.flac folder/ list.txt --rttm DIR   # one DIR/<key>.rttm each

Several inputs (files, folders searched recursively, list files with one path a
line) each get a unique key: the file's stem, or the shortest path suffix that
tells two equal stems apart (a/x.wav -> DIR/a-x.rttm, b/x.wav -> DIR/b-x.rttm).

The ONNX models come from `verify.py export` (or any folder holding
segmentation.onnx, embedding-trunk.onnx and embedding-head.onnx): without --models,
the newest export in $PYANNOTE_PORT_MODELS when it is set, else in the user cache
($XDG_CACHE_HOME/pyannote-port/models, by default ~/.cache/pyannote-port/models),
where `verify.py export` writes, and in a checkout's models/.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from .audio import AudioError
from . import exits
from .dumps import DumpError, write_atomic
from .runtime import ModelError
from .vocabulary import DEFAULT_PIPELINE, PIPELINES

# where exports live (docs/install.md): the variable names the folder `verify.py export` writes to
# and the port reads from; unset, the user cache; a checkout's models/ (where exports went before
# there was a cache) is read too
MODELS_ENV = "PYANNOTE_PORT_MODELS"
_PARENT = Path(__file__).resolve().parent.parent
CHECKOUT_MODELS = _PARENT / "models" if (_PARENT / "pyproject.toml").is_file() else None


def models_home() -> Path:
    """Where `verify.py export` writes: $PYANNOTE_PORT_MODELS, else the user cache,
    $XDG_CACHE_HOME/pyannote-port/models (~/.cache/pyannote-port/models)."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "pyannote-port" / "models"


def model_roots() -> list[Path]:
    """The folders searched for exports, in order: $PYANNOTE_PORT_MODELS alone when set, else the
    user cache and a checkout's models/."""
    if os.environ.get(MODELS_ENV) or CHECKOUT_MODELS is None:
        return [models_home()]
    return [models_home(), CHECKOUT_MODELS]


def find_models(folder: str | None) -> Path:
    """The export folder to use: the one given, or the newest export in model_roots()."""
    if folder:
        path = Path(folder)
        if not (path / "segmentation.onnx").is_file():
            raise ModelError(f"no segmentation.onnx in {path} (run 'python verify.py export')")
        return path
    roots = model_roots()
    candidates = sorted((p for root in roots if root.is_dir() for p in root.glob("*/segmentation.onnx")),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        where = " or ".join(str(root) for root in roots)
        raise ModelError(f"no exported models in {where}: run 'python verify.py export', "
                         f"pass --models or set {MODELS_ENV}")
    return candidates[-1].parent


def main(argv: list[str] | None = None) -> int:
    parser = exits.ArgumentParser(prog="python -m port", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, mp3, m4a, ogg, opus, ...), folders, list files")
    parser.add_argument("--rttm", help="write the RTTM here (a folder when several files are given); default: print it")
    parser.add_argument("--models", help=f"folder of exported ONNX models (default: the newest export in ${MODELS_ENV}, "
                                           "else in ~/.cache/pyannote-port/models and a checkout's models/)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--fbank", choices=["auto", "numpy", "graph"], default="auto",
                        help="fbank on the host (numpy) or as fbank.onnx on the models' provider (auto: the graph on CUDA)")
    parser.add_argument("--precision", choices=["exact", "fast"], default="exact",
                        help="exact (default: as exact as pyannote at every layer) or fast (ONNX Runtime's LSTM op and "
                             "the trunk formulation this machine runs fastest; needs 'verify.py export --precision fast')")
    parser.add_argument("--num-speakers", type=int)
    parser.add_argument("--min-speakers", type=int)
    parser.add_argument("--max-speakers", type=int)
    parser.add_argument("--pipeline", choices=list(PIPELINES), default=DEFAULT_PIPELINE,
                        help=f"which pyannote pipeline (default {DEFAULT_PIPELINE}, pyannote 4's own default)")
    parser.add_argument("--plda", help="community-1's PLDA folder (xvec_transform.npz, plda.npz)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="on an unforeseen error, print its traceback")
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except exits.UsageError as error:  # one line, exit 2
        return exits.report(error, "python -m port", debug="--debug" in argv)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import inputs, runtime
    from .pipeline import Parameters, Pipeline

    err = Console(stderr=True, highlight=False)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        folder = find_models(args.models)
        pipeline = Pipeline.from_folder(folder, device=args.device, parameters=Parameters(pipeline=args.pipeline),
                                        plda=args.plda, fbank=args.fbank, precision=args.precision)
        if not args.quiet:
            err.print(f"running on {runtime.describe(args.device)}")
            if args.precision != "exact":
                err.print(pipeline.describe_precision())
        paths = inputs.expand(args.audio)
        names = inputs.keys(paths)
        several = len(paths) > 1 or len(args.audio) > 1 or any(Path(a).is_dir() for a in args.audio)
        for name, path in zip(names, paths):
            with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=err, transient=True, disable=args.quiet) as progress:
                task = progress.add_task(Path(path).name, total=None)

                def report(stage, completed, total):
                    progress.update(task, description=f"{Path(path).name}: {stage}", completed=completed, total=total)

                result = pipeline(path, num_speakers=args.num_speakers, min_speakers=args.min_speakers,
                                  max_speakers=args.max_speakers, progress=report)
            if args.rttm:
                target = Path(args.rttm)
                if several or target.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    target = target / f"{name}.rttm"
                write_atomic(target, result.rttm, "--rttm")  # whole or absent, nothing partial left
            else:
                sys.stdout.write(result.rttm)
            if not args.quiet:
                seconds = sum(result.seconds.values())
                err.print(f"{path}: {result.num_speakers} speakers, {len(result.turns)} turns, {seconds:.1f}s")
    except KeyboardInterrupt as stop:
        print("terminated (SIGTERM)" if isinstance(stop, _Terminated) else "interrupted", file=sys.stderr)
        return 143 if isinstance(stop, _Terminated) else 130
    except Exception as error:  # noqa: BLE001 - the exit contract (port.exits): 2 bad input, 3 unforeseen
        # plain print: one line, never wrapped by the console
        return exits.report(error, "python -m port", debug=args.debug, extra=(AudioError, ModelError, DumpError))
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated()


if __name__ == "__main__":
    sys.exit(main())
