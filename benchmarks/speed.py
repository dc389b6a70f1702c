"""Speed: the port against pyannote.audio, same audio, same weights, one process.

    .venv/bin/python benchmarks/speed.py [AUDIO ...] [--minutes 10] [--repeat 3] [--json out.json]

Without AUDIO it times pyannote's 30 s sample, and with --minutes N also a recording
of N minutes built from the test audio. Each pipeline runs once on the sample to warm
up, then `--repeat` times per recording; the best run counts. Seconds per stage come from pyannote's own
progress hook (segmentation, speaker counting, embeddings, the rest) and from the
port's timers; the RTTMs must be identical for the ratio to be reported as valid.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

from common import SAMPLE, build_long_recording, pipelines

STAGES = ("segmentation", "embeddings", "rest")


def _reference_once(pipeline, path):
    """One pyannote run; seconds per stage from its apply(hook=...) callbacks."""
    from reference.run import audio_file

    file = audio_file(path)  # decoding is outside both timings
    marks = []

    def hook(step, artifact, file=None, total=None, completed=None):
        marks.append((step, time.perf_counter()))

    began = time.perf_counter()
    output = pipeline(file, hook=hook)
    total = time.perf_counter() - began
    last = {step: t for step, t in marks}
    segmentation = last.get("segmentation", began) - began
    embeddings = last.get("embeddings", last.get("speaker_counting", began)) - last.get("speaker_counting", began)
    stages = {"segmentation": segmentation, "embeddings": embeddings, "rest": total - segmentation - embeddings}
    return total, stages, output.speaker_diarization.to_rttm()


def _port_once(pipeline, path):
    began = time.perf_counter()
    result = pipeline(path)
    total = time.perf_counter() - began
    s = result.seconds
    stages = {
        "segmentation": s.get("audio", 0.0) + s.get("segmentation", 0.0),
        "embeddings": s.get("embeddings", 0.0),
    }
    stages["rest"] = total - sum(stages.values())
    return total, stages, result.rttm


def warm_up(reference, port) -> None:
    """One run of each on the sample: first-call allocations, ONNX graph optimisation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _reference_once(reference, SAMPLE)
        _port_once(port, SAMPLE)


def bench(path: Path, reference, port, repeat: int) -> dict:
    runs = {"pyannote": [], "port": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for side, once, pipeline in (("pyannote", _reference_once, reference), ("port", _port_once, port)):
            for _ in range(repeat):
                runs[side].append(once(pipeline, path))
    best = {side: min(r, key=lambda run: run[0]) for side, r in runs.items()}
    import soundfile as sf

    duration = sf.info(str(path)).duration
    entry = {
        "audio": path.name,
        "duration_s": round(duration, 2),
        "rttm_identical": best["pyannote"][2] == best["port"][2],
        "pyannote_s": best["pyannote"][0],
        "port_s": best["port"][0],
        "ratio": best["pyannote"][0] / best["port"][0],
        "stages": {
            stage: {
                "pyannote_s": best["pyannote"][1][stage],
                "port_s": best["port"][1][stage],
                "ratio": best["pyannote"][1][stage] / max(best["port"][1][stage], 1e-9),
            }
            for stage in STAGES
        },
    }
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="*", type=Path)
    parser.add_argument("--minutes", type=float, default=0.0, help="also time a recording of that many minutes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=132)
    paths = list(args.audio) or [SAMPLE]
    tmp = tempfile.TemporaryDirectory()
    if args.minutes:
        paths.append(build_long_recording(args.minutes * 60, Path(tmp.name) / f"long_{args.minutes:g}min.wav"))
    with console.status("loading models, warming up"):
        reference, port = pipelines(args.device)
        warm_up(reference, port)
    results = []
    for path in paths:
        with console.status(f"timing {path.name}"):
            results.append(bench(path, reference, port, args.repeat))

    import onnxruntime
    import torch

    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "providers": port.providers,
    }
    table = Table(title=f"port vs pyannote.audio 4.0.7, fixture weights, {machine['cores']} cores, {port.providers['embedding']}")
    for column in ("audio", "pyannote s", "port s", "speed-up", "segmentation", "embeddings", "rest", "RTTM"):
        table.add_column(column, justify="left" if column in ("audio", "RTTM") else "right")
    for r in results:
        table.add_row(
            f"{r['audio']} ({r['duration_s']:.0f} s)",
            f"{r['pyannote_s']:.2f}",
            f"{r['port_s']:.2f}",
            f"{r['ratio']:.1f}x",
            *(f"{r['stages'][s]['ratio']:.1f}x" for s in STAGES),
            "identical" if r["rttm_identical"] else "DIFFERENT",
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
