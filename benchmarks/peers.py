#!/usr/bin/env python3
"""Peers judged and timed: speakrs beside pyannote.audio, the port and the port's floor.

    python benchmarks/peers.py [AUDIO|FOLDER ...] [--minutes 10] [--segmentation pretrained]
                               [--repeat 3] [--json out.json]
    python benchmarks/peers.py --markdown benchmarks/results/peers-*.json   # the table of docs/peers.md

Every side runs the same models on the same audio: this project's fixture models (or, with
`--segmentation pretrained`, pyannote's exact pretrained segmentation-3.0) and community-1's
PLDA, in community-1's pipeline. speakrs gets them converted into the folder its CPU mode
loads (benchmarks/speakrs_models.py, each tensor checked before it runs).

What it does, for the recordings given (default: tests/data/sample.wav) and, with --minutes N,
a recording of N minutes built from the test audio:

1. pyannote.audio, instrumented, writes the reference dump of each recording (once; reused
   while the audio and the models are the same), the judge's reference;
2. each side runs in a process of its own, in turns (pyannote, the port, speakrs; the order
   reversed every other round), `--repeat` rounds: a process loads its models (load time),
   warms up once, then diarizes every recording of its group (diarization time, CPU time);
   its peak RSS is its own address space's high-water mark (VmHWM). The port's process also
   times the floor (the ONNX models alone on the same chunks and batches, benchmarks/speed.py). speakrs runs twice per
   recording: `reconstruct_method="standard"` (pyannote's reconstruction) and its default
   ("smoothed"). Recordings up to 60 s share one process per side; a longer one has its own;
3. each RTTM (speakrs' two, the port's, pyannote's own timed run) is judged against the
   reference dump on pyannote's frame grid: identical, tie order, or differs (with seconds
   of missed speech, false alarm and confusion, and the first difference located).

Results go to benchmarks/results/peers-<models>-<date>.json (or --json): the CPU, the date, the
models and their checksums, the conversion's proof, every run. Exit 0 when speakrs ran and was
judged (whatever its verdict), 2 on bad input (one line), 1 when a side failed to run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from common import REPO, SAMPLE, build_long_recording

PEERS = REPO / "dumps" / "peers"
RESULTS = REPO / "benchmarks" / "results"
SHORT_S = 60.0  # recordings up to this long share one process per side
SIDES = ("pyannote", "port", "speakrs", "sherpa")
# what each candidate's RTTM is called in the results (speakrs' process writes two)
CANDIDATES = {"speakrs-standard": "speakrs (standard)", "speakrs-smoothed": "speakrs (default: smoothed)",
              "port": "port", "pyannote": "pyannote (timed run)",
              "sherpa": "sherpa-onnx (FastClustering, threshold 0.5)",
              "sherpa-k": "sherpa-onnx (FastClustering told pyannote's number of speakers)"}
# reference dump names the RTTM judge never reads, left out of the dump (hundreds of MB on long audio)
_UNDUMPED = {("02-chunks", "out_chunks"), ("06-fbank", "out_waveforms"), ("06-fbank", "out_fbank")}


class BadInput(Exception):
    """One line, exit 2."""


# --------------------------------------------------------------------------- the judge
def judge(reference_dir: Path, rttm: Path) -> dict:
    """The RTTM candidate judge (harness.rttm.judge_rttm) on one candidate RTTM."""
    if not (REPO / "harness" / "rttm.py").is_file():  # TEMPORARY: until harness/rttm.py lands here
        return _interim_judge(reference_dir, rttm)
    from harness.rttm import judge_rttm

    verdict = judge_rttm(reference_dir, rttm).as_dict()
    # the judge counts a turn ending past the audio as a finding even where pyannote's own last turn
    # does the same (a zero-padded last chunk: its frames run past the end); what pyannote itself
    # writes is no difference from pyannote, so the peer table's status sets those aside
    annotation = next(p for p in sorted(reference_dir.iterdir()) if p.name.endswith("-annotation"))
    ref_ends = [float(f[3]) + float(f[4]) for f in (line.split() for line in
                (annotation / "out_diarization.rttm").read_text().splitlines()) if f and f[0] == "SPEAKER"]
    ref_end = max(ref_ends, default=0.0)
    beyond = [o for o in verdict["outside"]
              if not (o["why"].startswith("ends past the audio") and o["end"] <= ref_end + 1e-3)]
    status = verdict["status"]
    if status == "differs" and not beyond and verdict["first_difference"] is None:
        status = "tie order" if verdict["tie_frames"] else "identical"
    verdict.update({"judge_status": verdict["status"], "status": status, "passed": status != "differs",
                    "outside_beyond_pyannote": beyond, "pyannote_last_end": ref_end})
    return verdict


def _interim_judge(reference_dir: Path, rttm: Path) -> dict:
    """TEMPORARY stand-in for harness.rttm.judge_rttm (not the project's judge; no tie
    order): both RTTMs on pyannote's frame grid (frame middles), the best label mapping
    (Hungarian), seconds of missed speech, false alarm and confusion, turns past the audio."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from port.dumps import DumpReader

    reader = DumpReader(reference_dir)
    stage = next(s for s in reader.stages() if s.endswith("-reconstruct"))
    start, duration, step = (float(v) for v in np.asarray(reader.load(stage, "out_frames")).ravel()[:3])
    annotation = next(s for s in reader.stages() if s.endswith("-annotation"))
    ref_text = (reference_dir / annotation / "out_diarization.rttm").read_text()
    samples = np.asarray(reader.load("01-audio", "in_waveform")).shape[-1]
    audio_s = samples / float(reader.load("01-audio", "in_sample_rate"))
    n = int(np.floor((audio_s - start - duration) / step)) + 2

    def turns(text):
        rows = [line.split() for line in text.splitlines() if line.startswith("SPEAKER")]
        return [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows]

    def grid(rows):
        labels = sorted({label for _, _, label in rows})
        active = np.zeros((n, max(len(labels), 1)), dtype=bool)
        middles = start + duration / 2 + step * np.arange(n)
        for s, e, label in rows:
            active[(middles >= s - step / 4) & (middles < e - step / 4), labels.index(label)] = True
        return active, labels

    ref_rows, cand_rows = turns(ref_text), turns(rttm.read_text())
    ref, ref_labels = grid(ref_rows)
    cand, cand_labels = grid(cand_rows)
    overlap = ref.T.astype(int) @ cand.astype(int)
    rows, cols = linear_sum_assignment(-overlap)
    mapped = np.zeros_like(ref)
    for r, c in zip(rows, cols):
        mapped[:, r] = cand[:, c]
    n_ref, n_cand = ref.sum(1), cand.sum(1)
    correct = (ref & mapped).sum(1)
    differing = np.flatnonzero((ref != mapped).any(1) | (n_cand != mapped.sum(1)))
    ref_end = max([audio_s] + [e for _, e, _ in ref_rows])  # pyannote's own last turn may pass the audio
    outside = [(s, e, label) for s, e, label in cand_rows if s < 0 or e > ref_end + 1e-3]
    first = None
    if len(differing):
        i = int(differing[0])
        first = {"time": round(start + duration / 2 + i * step, 3),
                 "reference": [ref_labels[k] for k in np.flatnonzero(ref[i])],
                 "candidate": [cand_labels[k] for k in np.flatnonzero(cand[i])]}
    seconds = {
        "missed": float(np.maximum(n_ref - n_cand, 0).sum() * step),
        "false_alarm": float(np.maximum(n_cand - n_ref, 0).sum() * step),
        "confusion": float((np.minimum(n_ref, n_cand) - correct).sum() * step),
    }
    status = "identical" if not len(differing) and not outside else "differs"
    return {"status": status, "passed": status == "identical", "interim_judge": True, "seconds": seconds,
            "differing_frames": int(len(differing)), "tie_frames": None,
            "outside": [{"start": s, "end": e, "speaker": label} for s, e, label in outside],
            "first_difference": first, "audio_s": audio_s}


# --------------------------------------------------------------------------- reference dumps
def _dump_filter(writer):
    def hook(stage, name, value):
        if (stage, name) not in _UNDUMPED:
            writer(stage, name, value)
    return hook


def reference_dump(root: Path, name: str, path: Path, pipeline, shas: dict, segmentation: str | None) -> Path:
    """pyannote's instrumented run on `path` as a reference dump under `root` (reused when
    its manifest names the same audio and models)."""
    import verify
    from port.dumps import DumpWriter
    from reference import run as reference_run

    final = root / "reference" / name
    audio_sha = reference_run.sha256_file(path)
    manifest = final / "manifest.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if (old.get("audio_sha256"), old.get("segmentation_sha256"), old.get("embedding_sha256")) == (
                audio_sha, shas["segmentation"], shas["embedding"]):
            if hasattr(reference_run, "_RecordingNumpy"):
                complete_dump(final, pipeline)
            return final
    args = argparse.Namespace(pipeline="community-1", plda=None, segmentation=segmentation,
                              num_speakers=None, min_speakers=None, max_speakers=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with DumpWriter(root, "reference", name) as writer:
            result = reference_run.run(path, pipeline, hook=_dump_filter(writer))
            writer.commit(verify._manifest("reference", result.uri, path, audio_sha, shas["segmentation"],
                                           shas["embedding"], args, {
                                               "versions": reference_run.versions(), "providers": ["torch-cpu"],
                                               "decoder": result.decoder,
                                               "left_out": sorted(f"{s}/{n}" for s, n in _UNDUMPED)}))
    return final


def _speakers(reference_dir: Path) -> int:
    """How many speakers pyannote's RTTM names."""
    annotation = next(p for p in sorted(reference_dir.iterdir()) if p.name.endswith("-annotation"))
    return len({line.split()[7] for line in (annotation / "out_diarization.rttm").read_text().splitlines()
                if line.startswith("SPEAKER")})


def complete_dump(reference_dir: Path, pipeline) -> bool:
    """A reference dump made before the reference dumped the activations to_diarization ranks
    (call0_out_activations, which the judge's tie-order rule reads): pyannote's own
    `reconstruct`, run again on the dump's own inputs (binarized segmentations, hard clusters,
    count), records them; its discrete diarization must equal the dumped one bit for bit.
    Returns whether it added them."""
    import numpy as np
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from port.dumps import DumpReader
    from reference import run as reference_run

    reader = DumpReader(reference_dir)
    stage = next((s for s in reader.stages() if s.endswith("-reconstruct")), None)
    if stage is None or reader.has(stage, "call0_out_activations") or not reader.has(stage, "call0_in_hard_clusters"):
        return False
    import pyannote.audio.pipelines.utils.diarization as diarization_module

    parameters = reader.manifest.get("parameters", {})
    chunks = SlidingWindow(start=0.0, duration=10.0, step=10.0 * float(parameters.get("segmentation_step", 0.1)))
    frames = np.asarray(reader.load("05-count", "out_frames"), dtype=np.float64).ravel()
    window = SlidingWindow(start=frames[0], duration=frames[1], step=frames[2])
    segmentations = SlidingWindowFeature(np.asarray(reader.load("04-multilabel", "out_multilabel")), chunks)
    count = SlidingWindowFeature(np.asarray(reader.load(stage, "call0_in_count")), window)
    ranked: list = []
    with reference_run._attribute(diarization_module, "np", reference_run._RecordingNumpy(ranked)):
        discrete = pipeline.reconstruct(segmentations, np.asarray(reader.load(stage, "call0_in_hard_clusters")), count)
    if len(ranked) != 1 or not np.array_equal(np.asarray(discrete.data), np.asarray(reader.load(stage, "call0_out_discrete"))):
        raise RuntimeError(f"{reference_dir}: pyannote's reconstruct on the dumped inputs does not give the dumped diarization")
    target = reference_dir / stage / "call0_out_activations.npy"
    tmp = target.with_name(target.name + ".tmp.npy")
    np.save(tmp, ranked[0], allow_pickle=False)
    os.replace(tmp, target)
    return True


def rejudge(path: Path) -> int:
    """Judge again every RTTM a results file holds (after the judge or the dumps changed)."""
    import warnings as _warnings

    from reference import models
    from reference.run import build_pipeline

    document = json.loads(path.read_text())
    pipeline = None
    for row in document["recordings"]:
        dump = REPO / row["reference_dump"]
        if not dump.is_dir():
            raise BadInput(f"{dump}: the reference dump is gone (rerun peers.py)")
        if pipeline is None:
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore")
                pipeline = build_pipeline(models.load("segmentation", "fixture"), models.load("embedding", "fixture"))
        completed = complete_dump(dump, pipeline)
        for key, verdict in row["verdicts"].items():
            with tempfile.NamedTemporaryFile("w", suffix=".rttm", delete=False) as handle:
                handle.write(verdict["rttm"])
            try:
                fresh = judge(dump, Path(handle.name))
            finally:
                os.unlink(handle.name)
            row["verdicts"][key] = {**fresh, "rttm": verdict["rttm"],
                                    "same_in_every_round": verdict.get("same_in_every_round")}
        row["activations_added"] = completed
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(tmp, path)
    return 0


# --------------------------------------------------------------------------- children (one side each)
def _child(spec: dict) -> dict:
    """One side in this process: load, warm up, diarize every recording; RTTMs to spec["out"]."""
    began = time.perf_counter()
    side, out = spec["side"], Path(spec["out"])
    warnings.simplefilter("ignore")
    results = []
    if side == "pyannote":
        import speed
        from reference import models
        from reference.run import build_pipeline
        imported = time.perf_counter()
        pipeline = build_pipeline(models.load("segmentation", spec["segmentation"]), models.load("embedding", "fixture"))
        loaded = time.perf_counter()
        speed._reference_once(pipeline, Path(spec["warmup"]))
        for name, path in spec["recordings"]:
            cpu = time.process_time()
            seconds, _, rttm = speed._reference_once(pipeline, Path(path))
            results.append({"name": name, "side": "pyannote", "seconds": seconds, "cpu_s": time.process_time() - cpu})
            (out / f"pyannote-{name}.rttm").write_text(rttm)
    elif side == "port":
        import speed
        from port.pipeline import Pipeline
        imported = time.perf_counter()
        port = Pipeline.from_folder(Path(spec["onnx"]))
        loaded = time.perf_counter()
        speed._port_once(port, Path(spec["warmup"]))
        for name, path in spec["recordings"]:
            jobs = speed.model_jobs(port, Path(path))  # prepared outside both timings
            seconds, stages, rttm = speed._port_once(port, Path(path))
            floor_s, floor_cpu_s = speed._floor_once(jobs, port.workers)
            results.append({"name": name, "side": "port", "seconds": seconds, "cpu_s": stages["cpu"],
                            "floor_s": floor_s, "floor_cpu_s": floor_cpu_s, "workers": port.workers})
            (out / f"port-{name}.rttm").write_text(rttm)
    elif side == "speakrs":
        import speakrs
        imported = time.perf_counter()
        prepared = speakrs.prepare("CPU", model_dir=spec["speakrs_models"])
        pipeline = speakrs.Pipeline.from_prepared(prepared)
        loaded = time.perf_counter()
        configs = {"speakrs-standard": speakrs.PipelineConfig(reconstruct_method="standard"),
                   "speakrs-smoothed": speakrs.PipelineConfig.for_mode("CPU")}
        configs = {key: configs[key] for key in spec["configs"]}
        pipeline.diarize_file(spec["warmup"], pipeline_config=configs["speakrs-standard"])
        for name, path in spec["recordings"]:
            for key, config in configs.items():
                cpu, t0 = time.process_time(), time.perf_counter()
                result = pipeline.diarize_file(path, file_id=Path(path).stem, pipeline_config=config)
                seconds = time.perf_counter() - t0
                timing = result.timing
                results.append({"name": name, "side": key, "seconds": seconds, "cpu_s": time.process_time() - cpu,
                                "reconstruct_method": config.reconstruct_method,
                                "speakrs_ms": {k: getattr(timing, k) for k in
                                               ("audio_decode_ms", "audio_resample_ms", "pipeline_ms", "total_ms")}})
                (out / f"{key}-{name}.rttm").write_text(result.rttm())
    elif side == "sherpa":
        import sherpa_onnx

        from port import audio
        imported = time.perf_counter()
        folder = Path(spec["sherpa_models"])

        def build(clustering):
            return sherpa_onnx.OfflineSpeakerDiarization(sherpa_onnx.OfflineSpeakerDiarizationConfig(
                segmentation=sherpa_onnx.OfflineSpeakerSegmentationModelConfig(
                    pyannote=sherpa_onnx.OfflineSpeakerSegmentationPyannoteModelConfig(model=str(folder / "segmentation.onnx")),
                    num_threads=os.cpu_count()),
                embedding=sherpa_onnx.SpeakerEmbeddingExtractorConfig(model=str(folder / "embedding.onnx"),
                                                                      num_threads=os.cpu_count()),
                clustering=clustering, min_duration_on=0.0, min_duration_off=0.0))  # pyannote's min_duration_off

        default = build(sherpa_onnx.FastClusteringConfig())  # threshold 0.5, its default
        loaded = time.perf_counter()

        def samples(path):  # 16 kHz mono float32, decoded outside the timing (as pyannote's)
            waveform, rate = audio.load(path)
            return audio.downmix_and_resample(waveform, rate, 16000)[0][0].astype("float32")

        default.process(samples(spec["warmup"]))
        for name, path in spec["recordings"]:
            x = samples(path)
            runs = [("sherpa", default)]
            if spec.get("speakers", {}).get(name):  # the clustering told pyannote's number of speakers
                runs.append(("sherpa-k", build(sherpa_onnx.FastClusteringConfig(num_clusters=spec["speakers"][name]))))
            for key, diarizer in runs:
                cpu, t0 = time.process_time(), time.perf_counter()
                segments = diarizer.process(x).sort_by_start_time()
                seconds = time.perf_counter() - t0
                results.append({"name": name, "side": key, "seconds": seconds, "cpu_s": time.process_time() - cpu})
                (out / f"{key}-{name}.rttm").write_text("".join(
                    f"SPEAKER {Path(path).stem} 1 {seg.start:.3f} {seg.end - seg.start:.3f} <NA> <NA> "
                    f"SPEAKER_{seg.speaker:02d} <NA> <NA>\n" for seg in segments))
    else:
        raise BadInput(f"unknown side {side}")
    return {"side": side, "import_s": imported - began, "load_s": loaded - imported, "results": results,
            "peak_rss_mb": _own_peak_rss_mb()}


def _own_peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM of its own address space). Not wait4's
    ru_maxrss: a child started by vfork/fork + exec inherits its parent's high-water mark
    at exec (the parent here holds torch and the models: ~1 GB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(spec: dict, folder: Path) -> dict:
    """A side's process: wall time, peak RSS (wait4: the kernel's maximum resident set) and what it printed."""
    spec_path = folder / f"spec-{spec['side']}-{spec['group']}-{spec['round']}.json"
    spec_path.write_text(json.dumps(spec))
    log = folder / f"{spec_path.stem}.log"
    began = time.perf_counter()
    with open(log, "w") as stderr:
        child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=stderr,
                                 env={**os.environ, "PYANNOTE_METRICS_ENABLED": "false", "HF_HUB_OFFLINE": "1"})
        _CHILDREN.add(child)
        try:
            out = child.stdout.read().decode(errors="replace")
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            _CHILDREN.discard(child)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not out.strip():
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
        raise RuntimeError(f"{spec['side']} failed: {tail[0][:200]}")
    report = json.loads(out.strip().splitlines()[-1])
    report.update({"process_s": time.perf_counter() - began, "process_cpu_s": usage.ru_utime + usage.ru_stime})
    return report


_CHILDREN: set = set()


def _stop_children(signum, frame):
    for child in list(_CHILDREN):
        child.kill()
    raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(143)


# --------------------------------------------------------------------------- orchestration
def recordings_of(paths: list[Path], minutes: float) -> list[tuple[str, Path]]:
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.wav"))
            if not found:
                raise BadInput(f"{path}: no .wav files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise BadInput(f"{path}: no such file or folder")
    if not paths:
        files.append(SAMPLE)
    if minutes:
        long = PEERS / "audio" / f"long_{minutes:g}min.wav"
        if not long.is_file():
            build_long_recording(minutes * 60, long)
        files.append(long)
    import soundfile as sf

    names = [f.stem for f in files]
    if len(set(names)) != len(names):
        raise BadInput(f"two recordings share a name: {sorted(n for n in names if names.count(n) > 1)[0]}")
    for f in files:
        try:
            sf.info(str(f))
        except Exception as error:  # noqa: BLE001 - soundfile raises several kinds
            raise BadInput(f"{f}: unreadable audio ({str(error).splitlines()[0][:100]})") from None
    return [(f.stem, f.resolve()) for f in files]


def groups_of(recordings: list[tuple[str, Path]]) -> list[list[tuple[str, Path]]]:
    import soundfile as sf

    short = [r for r in recordings if sf.info(str(r[1])).duration <= SHORT_S]
    return ([short] if short else []) + [[r] for r in recordings if r not in short]


def _machine() -> dict:
    import platform

    import numpy
    import onnxruntime
    import speed

    versions = {"numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}
    for package in ("speakrs", "torch", "pyannote.audio", "safetensors"):
        try:
            from importlib import metadata

            versions[package] = metadata.version(package)
        except Exception:  # noqa: BLE001
            versions[package] = None
    return {"cpu": speed._cpu_model(), "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "versions": versions}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", nargs="*", type=Path, help="audio files or folders of .wav (default: tests/data/sample.wav)")
    parser.add_argument("--minutes", type=float, default=0.0, help="also a recording of that many minutes (test audio cycled)")
    parser.add_argument("--segmentation", choices=["fixture", "pretrained"], default="fixture",
                        help="segmentation model of every side: the fixture, or pyannote's exact pretrained segmentation-3.0")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of timed runs, sides in turns (best counts)")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help="sides to time (pyannote, port, speakrs, sherpa; sherpa only where sherpa-onnx is installed)")
    parser.add_argument("--pyannote-rounds", type=int, default=1,
                        help="rounds pyannote and sherpa-onnx take part in (default 1: the slowest sides)")
    parser.add_argument("--json", type=Path, help="results file (default: benchmarks/results/peers-<models>-<date>.json)")
    parser.add_argument("--markdown", nargs="+", type=Path, metavar="RESULTS", help="print the docs table of these results, then stop")
    parser.add_argument("--rejudge", nargs="+", type=Path, metavar="RESULTS",
                        help="judge the RTTMs of these results files again (the dumps reused), then stop")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child.read_text()))), flush=True)
        return 0
    if args.rejudge:
        try:
            for path in args.rejudge:
                rejudge(path)
        except (BadInput, OSError, ValueError, KeyError) as error:
            print(f"peers.py: {str(error).splitlines()[0][:160]}", file=sys.stderr)
            return 2
        return 0
    if args.markdown:
        try:
            print(markdown([json.loads(p.read_text()) for p in args.markdown]))
        except (OSError, ValueError, KeyError) as error:
            print(f"peers.py: unreadable results: {str(error).splitlines()[0][:160]}", file=sys.stderr)
            return 2
        return 0
    signal.signal(signal.SIGTERM, _stop_children)
    try:
        return _run(args)
    except BadInput as error:
        print(f"peers.py: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        for child in list(_CHILDREN):
            child.kill()
        print("peers.py: interrupted; nothing written", file=sys.stderr)
        return 130


def _run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    try:
        import speakrs  # noqa: F401
    except ImportError:
        raise BadInput("speakrs is not installed: pip install -e '.[peers]' (a Linux x86_64 wheel only)") from None
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if "sherpa" in sides:
        try:
            import sherpa_onnx  # noqa: F401
        except ImportError:
            sides.remove("sherpa")
            print("peers.py: sherpa-onnx is not installed: its side is left out", file=sys.stderr)
    if not sides or not set(sides) <= set(SIDES):
        raise BadInput(f"--sides: choose among {', '.join(SIDES)}")
    if args.repeat < 1:
        raise BadInput("--repeat must be at least 1")
    console = Console(width=140) if not sys.stdout.isatty() else Console()
    recordings = recordings_of(args.audio, args.minutes)
    segmentation = None if args.segmentation == "fixture" else "pretrained"

    import speakrs_models
    from common import fixture_export
    from port.pipeline import PLDA_DIR
    from reference import models
    from reference.run import build_pipeline

    with console.status("loading the models, exporting the port's ONNX, converting speakrs' folder"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg_model = models.load("segmentation", args.segmentation)
            emb_model = models.load("embedding", "fixture")
            onnx = fixture_export(seg_model, emb_model)
            min_samples = speakrs_models.exported_min_num_samples(onnx)
            speakrs_dir = speakrs_models.ensure(seg_model, emb_model, PLDA_DIR, PEERS / "speakrs-models", min_samples)
            pretrained_onnx = None
            if segmentation == "pretrained":
                from reference import pretrained
                pretrained_onnx = pretrained.SEGMENTATION_FLOAT
            conversion = speakrs_models.check_conversion(seg_model, emb_model, speakrs_dir, PLDA_DIR, pretrained_onnx,
                                                         min_samples)
            shas = {"segmentation": models.checksum(seg_model), "embedding": models.checksum(emb_model)}
            reference = build_pipeline(seg_model, emb_model)
            sherpa_dir = None
            if "sherpa" in sides:
                import sherpa_models
                sherpa_dir = sherpa_models.ensure(onnx, emb_model, PEERS / "sherpa-models")
    console.print(f"speakrs' model folder: {speakrs_dir.relative_to(REPO)} (conversion checked: "
                  f"{conversion['segmentation_tensors']} + {conversion['embedding_tensors']} tensors, LSTM in ONNX's "
                  f"gate order within {conversion['lstm_max_error']:.0e} of torch's, folded convolutions within "
                  f"{conversion['folded_conv_max_relative_error']:.0e})")
    root = PEERS / speakrs_dir.name
    work = Path(tempfile.mkdtemp(prefix="peers-", dir=PEERS))
    groups = groups_of(recordings)
    runs: dict = {side: [] for side in sides}
    progress = Progress(TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    with progress:
        task = progress.add_task("reference dumps (pyannote, instrumented)", total=len(recordings))
        dumps = {}
        for name, path in recordings:
            progress.update(task, description=f"reference dump: {name}")
            dumps[name] = reference_dump(root, name, path, reference, shas, segmentation)
            progress.advance(task)
        del reference
        speakers = {name: _speakers(dumps[name]) for name, _ in recordings}
        total = len(groups) * sum(min(args.repeat, args.pyannote_rounds) if side in ("pyannote", "sherpa") else args.repeat
                                  for side in sides)
        task = progress.add_task("timing", total=total)
        for round_ in range(args.repeat):
            order = sides if round_ % 2 == 0 else sides[::-1]
            for g, group in enumerate(groups):
                for side in order:
                    if side in ("pyannote", "sherpa") and round_ >= args.pyannote_rounds:
                        continue
                    progress.update(task, description=f"round {round_ + 1}/{args.repeat}: {side}, "
                                                      f"{group[0][0]}{f' +{len(group) - 1}' if len(group) > 1 else ''}")
                    out = work / f"round{round_}"
                    out.mkdir(exist_ok=True)
                    spec = {"side": side, "group": g, "round": round_, "out": str(out), "segmentation": args.segmentation,
                            "onnx": str(onnx), "speakrs_models": str(speakrs_dir), "sherpa_models": str(sherpa_dir),
                            "speakers": speakers,
                            "warmup": str(SAMPLE if len(group) == 1 else group[0][1]),
                            # speakrs' default runs once (its verdict and a time); the standard one every round
                            "configs": ["speakrs-standard"] + (["speakrs-smoothed"] if round_ == 0 else []),
                            "recordings": [(name, str(path)) for name, path in group]}
                    try:
                        report = run_child(spec, work)
                    except RuntimeError as error:
                        console.print(f"[red]{error}[/red] (log: {work})")
                        return 1
                    report.update({"round": round_, "group": g})
                    runs[side].append(report)
                    progress.advance(task)
        task = progress.add_task("judging", total=len(recordings))
        verdicts: dict = {}
        for name, _ in recordings:
            verdicts[name] = {}
            for round_ in range(args.repeat):
                for key in CANDIDATES:
                    rttm = work / f"round{round_}" / f"{key}-{name}.rttm"
                    if rttm.is_file():
                        verdict = judge(dumps[name], rttm)
                        previous = verdicts[name].get(key)
                        verdict["same_in_every_round"] = previous is None or previous["rttm"] == rttm.read_text()
                        verdicts[name][key] = {**verdict, "rttm": rttm.read_text()}
            progress.advance(task)
    results = summarize(recordings, runs, verdicts, dumps)
    document = {"machine": _machine(), "models": {
        "segmentation": models.describe("segmentation", segmentation), "segmentation_sha256": shas["segmentation"],
        "embedding": models.describe("embedding", None), "embedding_sha256": shas["embedding"],
        "plda": "community-1's (reference/pretrained/plda)", "onnx_export": onnx.name, "speakrs_models": speakrs_dir.name,
        "pipeline": "community-1"}, "conversion_check": conversion, "repeat": args.repeat, "sides": sides,
        "command": "python benchmarks/peers.py " + " ".join(sys.argv[1:]), "recordings": results,
        "processes": runs}
    out = args.json or RESULTS / f"peers-{args.segmentation}-{datetime.date.today().isoformat()}.json"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(tmp, out)
    print_table(console, document)
    console.print(f"results: {out}")
    return 0


def summarize(recordings, runs: dict, verdicts: dict, dumps: dict) -> list[dict]:
    """Per recording: each side's best time over the rounds, CPU, the floor, peak RSS of the
    processes that ran it, load times, the verdicts."""
    import soundfile as sf

    rows = []
    for name, path in recordings:
        row = {"name": name, "audio": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
               "duration_s": round(sf.info(str(path)).duration, 3), "reference_dump": str(dumps[name].relative_to(REPO)),
               "sides": {}, "verdicts": {}}
        for side, reports in runs.items():
            for report in reports:
                for result in report["results"]:
                    if result["name"] != name:
                        continue
                    entry = row["sides"].setdefault(result["side"], {"runs": [], "peak_rss_mb": 0.0, "load_s": []})
                    entry["runs"].append({**{k: v for k, v in result.items() if k not in ("name", "side")},
                                          "round": report["round"]})
                    entry["peak_rss_mb"] = max(entry["peak_rss_mb"], report["peak_rss_mb"])
                    entry["load_s"].append(report["load_s"])
                    entry["import_s"] = min(entry.get("import_s", 1e9), report["import_s"])
        for entry in row["sides"].values():
            best = min(entry["runs"], key=lambda r: r["seconds"])
            entry.update({"seconds": best["seconds"], "cpu_s": min(r["cpu_s"] for r in entry["runs"]),
                          "load_s": min(entry["load_s"])})
            if "floor_s" in best:
                entry["floor_s"] = min(r["floor_s"] for r in entry["runs"])
        sides = row["sides"]
        for a, b, key in (("pyannote", "speakrs-standard", "pyannote_over_speakrs"),
                          ("speakrs-standard", "port", "speakrs_over_port"),
                          ("pyannote", "port", "pyannote_over_port"),
                          ("speakrs-smoothed", "speakrs-standard", "smoothed_over_standard")):
            ratio = _ratio(sides.get(a), sides.get(b))
            if ratio is not None:
                row[key] = ratio
        if "port" in sides:
            row["port_over_floor"] = sides["port"]["seconds"] / sides["port"]["floor_s"]
        row["verdicts"] = {key: {k: v for k, v in verdict.items()} for key, verdict in verdicts.get(name, {}).items()}
        rows.append(row)
    return rows


def _ratio(a: dict | None, b: dict | None) -> float | None:
    """a's time over b's, each the best of the rounds both took part in (same load)."""
    if not a or not b:
        return None
    rounds = {r["round"] for r in a["runs"]} & {r["round"] for r in b["runs"]}
    if not rounds:
        return None
    best = [min(r["seconds"] for r in side["runs"] if r["round"] in rounds) for side in (a, b)]
    return best[0] / best[1]


def _verdict_text(verdict: dict | None) -> str:
    if not verdict:
        return "-"
    if verdict["status"] in ("identical", "tie order"):
        return verdict["status"]
    s = verdict.get("seconds") or {k: verdict.get(k) or 0.0 for k in ("missed", "false_alarm", "confusion")}
    parts = [f"{s.get(k, 0):.3f} s {label}" for k, label in (("missed", "missed"), ("false_alarm", "FA"),
                                                               ("confusion", "conf.")) if s.get(k)]
    outside = verdict.get("outside_beyond_pyannote", verdict.get("outside")) or []
    if outside:
        parts.append(f"{len(outside)} past the end")
    return "differs: " + (", ".join(parts) or f"{verdict.get('differing_frames')} frames")


def print_table(console, document: dict) -> None:
    from rich.table import Table

    table = Table(title=f"speakrs {document['machine']['versions']['speakrs']} vs pyannote.audio "
                        f"{document['machine']['versions']['pyannote.audio']} and the port, community-1, "
                        f"{document['models']['segmentation']}; {document['machine']['cpu']}, "
                        f"{document['machine']['cores']} cores, {document['machine']['date'][:10]}")
    verdict_columns = ("recording", "speakrs standard", "speakrs default", "port", "sherpa-onnx")
    for column in (*verdict_columns, "pyannote s", "port s", "floor s", "speakrs s", "pyannote/speakrs", "speakrs/port",
                   "RSS MB pya/port/spk"):
        table.add_column(column, justify="left" if column in verdict_columns else "right")
    for row in document["recordings"]:
        sides, v = row["sides"], row["verdicts"]

        def sec(key, field="seconds"):
            return f"{sides[key][field]:.2f}" if key in sides and field in sides[key] else "-"

        rss = "/".join(f"{sides[k]['peak_rss_mb']:.0f}" if k in sides else "-"
                       for k in ("pyannote", "port", "speakrs-standard"))
        table.add_row(f"{row['name']} ({row['duration_s']:.0f} s)", _verdict_text(v.get("speakrs-standard")),
                      _verdict_text(v.get("speakrs-smoothed")), _verdict_text(v.get("port")), _verdict_text(v.get("sherpa")),
                      sec("pyannote"), sec("port"), sec("port", "floor_s"), sec("speakrs-standard"),
                      f"{row['pyannote_over_speakrs']:.1f}x" if "pyannote_over_speakrs" in row else "-",
                      f"{row['speakrs_over_port']:.2f}" if "speakrs_over_port" in row else "-", rss)
    console.print(table)


def _models_name(document: dict) -> str:
    return "pretrained segmentation" if "pretrained" in document["models"]["segmentation"] else "fixture"


def markdown(documents: list[dict]) -> str:
    """The docs/peers.md tables: verdicts and times per (models, recording), then where each
    candidate differs. A later results file's row for the same (models, recording) replaces
    an earlier one's sides it also timed (each ratio stays within one run)."""
    rows: dict = {}
    for document in documents:
        for row in document["recordings"]:
            key = (_models_name(document), row["name"])
            if key in rows:
                merged = rows[key]
                for side, entry in row["sides"].items():
                    merged["sides"][side] = entry
                merged["verdicts"].update(row["verdicts"])
                for ratio in ("pyannote_over_speakrs", "speakrs_over_port", "pyannote_over_port", "port_over_floor"):
                    if ratio in row:
                        merged[ratio] = row[ratio]
            else:
                rows[key] = json.loads(json.dumps(row))
    lines = ["| models | recording | speakrs, standard | speakrs, default (smoothed) | sherpa-onnx | "
             "sherpa-onnx, told the speakers | pyannote s | port s | speakrs s | pyannote / speakrs | speakrs / port "
             "| peak RSS MB: pyannote, port, speakrs |",
             "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for (models, name), row in rows.items():
        sides, v = row["sides"], row["verdicts"]

        def sec(key):
            return f"{sides[key]['seconds']:.2f}" if key in sides else "-"

        rss = ", ".join(f"{sides[k]['peak_rss_mb']:.0f}" if k in sides else "-"
                        for k in ("pyannote", "port", "speakrs-standard"))
        ratio = (lambda k, f: f.format(row[k]) if k in row else "-")  # noqa: E731
        lines.append(
            f"| {models} | {name} ({row['duration_s']:.0f} s) | {_verdict_text(v.get('speakrs-standard'))} "
            f"| {_verdict_text(v.get('speakrs-smoothed'))} | {_verdict_text(v.get('sherpa'))} "
            f"| {_verdict_text(v.get('sherpa-k'))} | {sec('pyannote')} | {sec('port')} | {sec('speakrs-standard')} "
            f"| {ratio('pyannote_over_speakrs', '{:.1f}x')} | {ratio('speakrs_over_port', '{:.2f}')} | {rss} |")
    machines = sorted({f"{d['machine']['cpu']}, {d['machine']['cores']} cores, {d['machine']['date'][:10]}"
                       for d in documents})
    out = "\n".join(lines) + "\n\nMeasured on " + "; ".join(machines) + ".\n\n"
    out += "Where a candidate differs from pyannote (the judge's spans: time, pyannote's speakers -> the candidate's):\n\n"
    for (models, name), row in rows.items():
        for key, verdict in row["verdicts"].items():
            if key == "pyannote" or verdict.get("status") != "differs":
                continue
            spans = verdict.get("spans") or []
            text = "; ".join(f"{s['start']:.3f}-{s['end']:.3f} s ({s['frames']} frame{'s' if s['frames'] > 1 else ''}: "
                             f"{'+'.join(s['reference']) or 'none'} -> {'+'.join(s['candidate']) or 'none'})"
                             for s in spans[:4])
            if len(spans) > 4:
                text += f"; {len(spans) - 4} more"
            past = [o for o in verdict.get("outside_beyond_pyannote", verdict.get("outside", []))]
            if past:
                text += ("; " if text else "") + "; ".join(
                    f"turn {o['start']:.3f}-{o['end']:.3f} s {o['why']}" for o in past[:2])
            lines_out = f"- {models}, {name}, {CANDIDATES.get(key, key)}: {text}"
            if verdict.get("speakers"):
                lines_out += f" (speakers: pyannote {verdict['speakers']['reference']}, candidate {verdict['speakers']['candidate']})"
            out += lines_out + "\n"
    return out


if __name__ == "__main__":
    sys.exit(main())
