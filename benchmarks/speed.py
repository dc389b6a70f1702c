"""Speed: the port against pyannote.audio, same audio, same weights, one process.

    .venv/bin/python benchmarks/speed.py [AUDIO ...] [--minutes 10] [--repeat 3] [--json out.json]

Without AUDIO it times pyannote's 30 s sample, and with --minutes N also a recording
of N minutes built from the test audio. Each pipeline runs once on the sample to warm
up, then `--repeat` times per recording; the best run counts. Seconds per stage come from pyannote's own
progress hook (segmentation, speaker counting, embeddings, the rest) and from the
port's timers; the RTTMs must be identical for the ratio to be reported as valid.

In the same run, in turns with the port: the port with the other number of workers
(2 when the default is 1, as on a CPU; 1 on CUDA), and the floor (`floor_s`): the
models alone (segmentation, trunk, head) on the same chunks and batches, the faster
of the two settings. `port_floor_ratio` is the port end to end over that floor.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from common import SAMPLE, build_long_recording, fixture_export, pipelines

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
    began, cpu = time.perf_counter(), time.process_time()
    result = pipeline(path)
    total = time.perf_counter() - began
    result.seconds["cpu"] = time.process_time() - cpu
    s = result.seconds
    stages = {
        "segmentation": s.get("audio", 0.0) + s.get("segmentation", 0.0),
        "embeddings": s.get("embeddings", 0.0),
    }
    stages["rest"] = total - sum(stages.values())
    stages["cpu"] = result.seconds["cpu"]
    return total, stages, result.rttm


def warm_up(reference, port, path: Path = SAMPLE) -> None:
    """One run of each on `path`: first-call allocations, ONNX graph optimisation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _reference_once(reference, path)
        _port_once(port, path)


# the batches the port ran before segmentation was split among the workers (16 chunks
# per segmentation run, 4 per trunk run): the floor is also timed with them, so that a
# change of the port's batches can never make the floor slower
PREVIOUS_BATCHES = (16, 4)


def model_jobs(port, path: Path, batches: tuple[int, int] | None = None) -> list:
    """The port's model calls on `path`, inputs prepared: one job per segmentation
    piece (the port's: `split_batch` of each batch among its workers), one per trunk +
    head batch of chunks the port embeds (same batches). With `batches` (segmentation,
    embedding), those batch sizes instead, segmentation batches unsplit."""
    from port import audio, segmentation
    from port.embedding import masks
    from port.pipeline import split_batch

    native, sample_rate, waveform = port.load(path)
    model, embedding, chunks = port.segmentation, port.embedding, port.chunks
    segmentation_batch, embedding_batch = batches or (model.batch_size, embedding.batch_size)
    window_size, step_size = segmentation.window_sizes(model.sample_rate, model.duration, chunks.step)
    batches_ = list(segmentation.iter_chunks(waveform, window_size, step_size, segmentation_batch))
    pieces = [batch[a:b] for batch in batches_ for a, b in split_batch(len(batch), 1 if batches else port.workers)]
    binarized = np.concatenate([model.to_multilabel(model(piece)) for piece in pieces])
    min_num_frames = embedding.min_num_frames(binarized.shape[1], chunks.duration)
    weights = masks(binarized, min_num_frames, exclude_overlap=port.parameters.exclude_overlap)
    jobs = [functools.partial(model, piece) for piece in pieces]
    for c in range(0, len(weights), embedding_batch):
        part = slice(c, c + embedding_batch)
        run = np.any(weights[part] > 0, axis=(1, 2)) if embedding.split else np.ones(len(weights[part]), dtype=bool)
        if run.any():
            starts = chunks.start + np.arange(c, c + len(run))[run] * chunks.step
            features = embedding.fbank(audio.crop_chunks(native, sample_rate, starts, chunks.duration, embedding.sample_rate))
            jobs.append(functools.partial(embedding, features, weights[part][run]))
    return jobs


def _floor_once(jobs: list, workers: int) -> tuple[float, float]:
    """(wall s, CPU s) of running `jobs` on `workers` threads, segmentation first."""
    pending = iter(jobs)
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                job = next(pending, None)
            if job is None:
                return
            job()

    began, cpu = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, time.process_time() - cpu


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n > 1 else ''}"


def bench(path: Path, reference, port, repeat: int, other=None) -> dict:
    """Best of `repeat` for pyannote, the port at its default setting and, if given,
    the port with the other number of workers (`other`), run in turns; the floor is the
    fastest of the models alone in either setting, with the port's batches or the
    previous ones (PREVIOUS_BATCHES)."""
    runs = {"pyannote": [], "port": [], "other": []}
    settings = {"port": port, **({"other": other} if other else {})}
    jobs = {(kind, layout): model_jobs(pipeline, path, None if layout == "port" else PREVIOUS_BATCHES)
            for kind, pipeline in settings.items() for layout in ("port", "previous")}
    floors = {key: [] for key in jobs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeat):
            runs["pyannote"].append(_reference_once(reference, path))
        for _ in range(repeat):  # in turns: the same load for all
            runs["port"].append(_port_once(port, path))
            for key, batch_jobs in jobs.items():
                if key[0] == "port":
                    floors[key].append(_floor_once(batch_jobs, port.workers))
            if other:
                runs["other"].append(_port_once(other, path))
                for key, batch_jobs in jobs.items():
                    if key[0] == "other":
                        floors[key].append(_floor_once(batch_jobs, other.workers))
    best = {side: min(r, key=lambda run: run[0]) for side, r in runs.items() if r}
    floor = {key: (min(w for w, _ in f), min(c for _, c in f)) for key, f in floors.items() if f}
    fastest = min(floor, key=lambda key: floor[key][0])
    floor_s = floor[fastest][0]
    floor_cpu_s = min(cpu for _, cpu in floor.values())
    port_cpu_s = min(run[1]["cpu"] for run in runs["port"])
    import soundfile as sf

    duration = sf.info(str(path)).duration

    def batches_of(kind, layout):
        pipeline = settings[kind]
        if layout == "previous":
            return {"segmentation": PREVIOUS_BATCHES[0], "embedding": PREVIOUS_BATCHES[1], "pieces_per_batch": 1}
        return {"segmentation": pipeline.segmentation.batch_size, "embedding": pipeline.embedding.batch_size,
                "pieces_per_batch": pipeline.workers}

    entry = {
        "audio": path.name,
        "duration_s": round(duration, 2),
        "precision": port.precision,
        "rttm_identical": best["pyannote"][2] == best["port"][2],
        "pyannote_s": best["pyannote"][0],
        "port_s": best["port"][0],
        "ratio": best["pyannote"][0] / best["port"][0],
        "floor_s": floor_s,
        "port_floor_ratio": best["port"][0] / floor_s,
        "port_cpu_s": port_cpu_s,
        "floor_cpu_s": floor_cpu_s,
        "port_floor_cpu_ratio": port_cpu_s / floor_cpu_s,
        # the floor is the fastest of the settings' models-alone times
        "floor_setting": {"workers": settings[fastest[0]].workers, "batches": fastest[1]},
        "floors": {f"{kind}/{layout}": {"workers": settings[kind].workers, "batches": batches_of(kind, layout),
                                        "wall_s": w, "cpu_s": c}
                   for (kind, layout), (w, c) in floor.items()},
        "workers": port.workers,
        "other_workers": other.workers if other else None,
        "port_other_workers_s": best["other"][0] if "other" in best else None,
        "rttm_identical_other_workers": best["other"][2] == best["pyannote"][2] if "other" in best else None,
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


def _cpu_model() -> str:
    """The CPU's model name (timings compare only within one machine type)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                extras = [f for f in ("avx512f", "amx_tile") if f" {f}" in flags]
                return line.split(":", 1)[1].strip() + (f" ({', '.join(extras)})" if extras else " (no AVX-512)")
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="*", type=Path)
    parser.add_argument("--minutes", type=float, default=0.0, help="also time a recording of that many minutes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pipeline", choices=["community-1", "3.1"], default="community-1",
                        help="which pipeline both sides run (default community-1, pyannote 4's)")
    parser.add_argument("--precision", choices=["exact", "fast"], default="exact",
                        help="the port's mode (fast: its graphs are derived first if missing)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=132)
    paths = list(args.audio) or [SAMPLE]
    tmp = tempfile.TemporaryDirectory()
    if args.minutes:
        paths.append(build_long_recording(args.minutes * 60, Path(tmp.name) / f"long_{args.minutes:g}min.wav"))
    with console.status("loading models, warming up"):
        reference, port = pipelines(args.device, args.pipeline, args.precision)
        from port.pipeline import Pipeline

        # the setting the default is not (1 or 2 workers), timed beside it
        other = Pipeline.from_folder(fixture_export(), device=args.device, parameters=port.parameters,
                                     workers=2 if port.workers == 1 else 1, precision=args.precision)
        warm_up(reference, port, paths[0])
        _port_once(other, paths[0])
    results = []
    for path in paths:
        with console.status(f"timing {path.name}"):
            results.append(bench(path, reference, port, args.repeat, other))

    import onnxruntime
    import torch

    machine = {
        "pipeline": args.pipeline,
        "precision": args.precision,
        "formulations": port.formulations,
        "date": time.strftime("%Y-%m-%d"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "providers": port.providers,
        "port_workers": port.workers,
        "port_batches": {"segmentation": port.segmentation.batch_size, "embedding": port.embedding.batch_size},
    }
    table = Table(title=f"{args.pipeline}: port ({args.precision}, {_workers(port.workers)}) vs pyannote.audio 4.0.7, "
                        f"fixture weights, {machine['cores']} cores, {port.providers['embedding']}")
    for column in ("audio", "pyannote s", "port s", "speed-up", "floor s", "port/floor", "port/floor CPU",
                   f"{_workers(other.workers)} s", "segmentation", "embeddings", "rest", "RTTM"):
        table.add_column(column, justify="left" if column in ("audio", "RTTM") else "right")
    for r in results:
        table.add_row(
            f"{r['audio']} ({r['duration_s']:.0f} s)",
            f"{r['pyannote_s']:.2f}",
            f"{r['port_s']:.2f}",
            f"{r['ratio']:.1f}x",
            f"{r['floor_s']:.2f}",
            f"{r['port_floor_ratio']:.2f}",
            f"{r['port_floor_cpu_ratio']:.2f}",
            f"{r['port_other_workers_s']:.2f}",
            *(f"{r['stages'][s]['ratio']:.1f}x" for s in STAGES),
            "identical" if r["rttm_identical"] else "DIFFERENT",
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
