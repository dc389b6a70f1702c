"""Memory on long audio: peak RSS of `python -m port` (and optionally pyannote) on one
hour built from the test recordings (or the AMI excerpts, --ami), measured from outside
the process (wait4's rusage of the child, the number /usr/bin/time -v prints as
"Maximum resident set size").

    .venv/bin/python benchmarks/memory.py [--minutes 60] [--ami] [--pipeline 3.1] [--pyannote] [--json out.json]
    .venv/bin/python benchmarks/memory.py --tail 5000 10000 20000 [--json out.json]

--pyannote also runs pyannote.audio on the same file in a child process (long: tens of
minutes on 2 cores) and checks that both RTTMs are identical. --pipeline: community-1
(the default, pyannote 4's) or 3.1, both sides. The child's RSS is also sampled every
--every seconds (/proc VmRSS) into the JSON's timeline, to say which stage peaks.

--tail measures the clustering tail alone (`port.clustering.clustering`: filter,
centroid linkage, fcluster, assignment) on E synthetic embeddings (E/2 chunks, two
speakers each speaking alone, 256-d blobs), and scipy's `linkage(method="centroid")`
on the same normalised vectors (what pyannote calls), each in its own child: the
growth of peak RSS over the child's RSS before the call, against the condensed
float64 distance matrix both need (E(E-1)/2 x 8 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, GpuMemory, ami_sources, build_long_recording, fixture_export

PYANNOTE_CHILD = """
import sys, warnings, os
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, {repo!r})
warnings.simplefilter("ignore")
from reference import models
from port.pipeline import Parameters
from reference.run import audio_file, build_pipeline
pipeline = build_pipeline(models.fixture_segmentation(), models.fixture_embedding(), Parameters(pipeline={pipeline!r}),
                          device={device!r})
output = pipeline(audio_file({audio!r}))
open({rttm!r}, "w").write(output.speaker_diarization.to_rttm())
"""


TAIL_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import numpy as np
from port import clustering
rng = np.random.default_rng(0)
chunks = {n} // 2
centers = rng.normal(size=(8, 256))
embeddings = (centers[rng.integers(0, 8, size=(chunks, 3))] + 0.5 * rng.normal(size=(chunks, 3, 256))).astype(np.float32)
segmentations = np.zeros((chunks, 589, 3), dtype=np.float32)
segmentations[:, :250, 0] = 1
segmentations[:, 300:550, 1] = 1
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began = time.perf_counter()
if {scipy}:
    from scipy.cluster.hierarchy import linkage
    X = embeddings[:, :2].reshape(-1, 256).astype(np.float64)
    X /= np.linalg.norm(X, axis=-1, keepdims=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    linkage(X, method="centroid", metric="euclidean")
else:
    clustering.clustering(embeddings, segmentations)
print(json.dumps({{"before_mb": before / 1024, "call_s": time.perf_counter() - began}}))
"""


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(command: list[str], capture: bool = False, every: float = 0.0) -> dict:
    """Run a child; its wall time, peak RSS (MB, from wait4) and exit status
    (with `capture`, also the JSON line it prints last; with `every`, its RSS every
    `every` seconds: [seconds since start, MB])."""
    import threading

    began = time.perf_counter()
    stdout = subprocess.PIPE if capture else subprocess.DEVNULL
    timeline: list[list[float]] = []
    with GpuMemory() as gpu:
        child = subprocess.Popen(command, cwd=REPO, stdout=stdout, stderr=subprocess.PIPE)
        stop = threading.Event()

        def sample():
            while not stop.wait(every):
                rss = _rss_mb(child.pid)
                if rss is not None:
                    timeline.append([round(time.perf_counter() - began, 1), round(rss, 1)])

        sampler = threading.Thread(target=sample, daemon=True)
        if every:
            sampler.start()
        out = child.stdout.read().decode(errors="replace") if capture else ""
        stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
        _, status, usage = os.wait4(child.pid, 0)
        stop.set()
    report = {
        "seconds": time.perf_counter() - began,
        "gpu_memory_mb": gpu.peak_mb,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "exit": os.waitstatus_to_exitcode(status),
        "stderr_tail": stderr.strip().splitlines()[-1:] if stderr.strip() else [],
        **({"rss_timeline": timeline} if every else {}),
    }
    if capture and out.strip():
        report.update(json.loads(out.strip().splitlines()[-1]))
    return report


def tail(sizes: list[int]) -> list[dict]:
    """Peak RSS growth of the clustering tail (port) and of scipy's linkage at E = sizes."""
    rows = []
    for n in sizes:
        row = {"embeddings": n, "condensed_mb": n * (n - 1) / 2 * 8 / 1e6}
        for side, scipy in (("port", False), ("scipy", True)):
            code = TAIL_CHILD.format(repo=str(REPO), n=n, scipy=scipy)
            run = measure([sys.executable, "-c", code], capture=True)
            if run["exit"] != 0:
                raise SystemExit(f"tail child failed at E={n}: {run['stderr_tail']}")
            row[side] = {"call_s": run["call_s"], "peak_rss_mb": run["peak_rss_mb"],
                         "growth_mb": run["peak_rss_mb"] - run["before_mb"]}
        print(f"E={n}: condensed {row['condensed_mb']:.0f} MB; port tail +{row['port']['growth_mb']:.0f} MB "
              f"in {row['port']['call_s']:.1f} s; scipy linkage +{row['scipy']['growth_mb']:.0f} MB "
              f"in {row['scipy']['call_s']:.1f} s", flush=True)
        rows.append(row)
    return rows


def rttm_der(reference: Path, hypothesis: Path) -> float:
    """pyannote.metrics' DER of one RTTM against the other (no collar, overlap scored)."""
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = (next(iter(load_rttm(path).values()), None) for path in (reference, hypothesis))
    if ref is None or hyp is None:
        return 0.0 if ref is None and hyp is None else 1.0
    return float(DiarizationErrorRate()(ref, hyp))


def _cpu() -> str:
    from port.machine import cpu_name

    return cpu_name()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--pyannote", action="store_true", help="also run pyannote.audio on the same audio")
    parser.add_argument("--models", help="ONNX export folder (default: the fixture models' export)")
    parser.add_argument("--audio", type=Path, help="measure on this file instead of building one")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="both sides (pyannote: torch, port: ONNX Runtime)")
    parser.add_argument("--ami", action="store_true", help="cycle the AMI excerpts in ../shared/audio/ami (default: the test audio)")
    parser.add_argument("--pipeline", choices=["community-1", "3.1"], default="community-1",
                        help="which pipeline both sides run (default community-1, pyannote 4's)")
    parser.add_argument("--precision", choices=["exact", "fast"], default="exact", help="the port's mode")
    parser.add_argument("--every", type=float, default=10.0, help="sample the port's RSS every that many seconds (0: off)")
    parser.add_argument("--tail", type=int, nargs="+", metavar="E",
                        help="measure the clustering tail alone at these numbers of embeddings, then stop")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the long recording and RTTMs in this folder")
    args = parser.parse_args()
    if args.tail:
        rows = tail(args.tail)
        if args.json:
            args.json.write_text(json.dumps({"tail": rows}, indent=2) + "\n")
        return

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    if args.audio:
        audio = args.audio.resolve()
    else:
        sources = {"sources": ami_sources()} if args.ami else {}
        audio = build_long_recording(args.minutes * 60, folder / f"long_{args.minutes:g}min.wav", **sources)
    port_rttm = folder / "port.rttm"
    command = [sys.executable, "-m", "port", str(audio), "--rttm", str(port_rttm), "--quiet", "--device", args.device,
               "--pipeline", args.pipeline, "--precision", args.precision]
    # the fixture export unless told otherwise: the pyannote child runs the fixture models
    command += ["--models", args.models or str(fixture_export(fast=args.precision == "fast"))]
    import soundfile as sf

    duration = sf.info(str(audio)).duration
    report = {"minutes": duration / 60, "audio": audio.name, "device": args.device, "pipeline": args.pipeline,
              "precision": args.precision, "date": time.strftime("%Y-%m-%d"), "cpu": _cpu(),
              "source": "given" if args.audio else "ami" if args.ami else "tests", "audio_mb": audio.stat().st_size / 1e6,
              "port": measure(command, every=args.every)}
    report["port"]["rtf"] = report["port"]["seconds"] / duration
    print(f"port: {report['port']['seconds']:.1f} s, peak RSS {report['port']['peak_rss_mb']:.0f} MB, exit {report['port']['exit']}")
    if args.pyannote:
        ref_rttm = folder / "pyannote.rttm"
        code = PYANNOTE_CHILD.format(repo=str(REPO), audio=str(audio), rttm=str(ref_rttm), device=args.device,
                                     pipeline=args.pipeline)
        report["pyannote"] = measure([sys.executable, "-c", code])
        report["pyannote"]["rtf"] = report["pyannote"]["seconds"] / duration
        print(f"pyannote: {report['pyannote']['seconds']:.1f} s, peak RSS {report['pyannote']['peak_rss_mb']:.0f} MB")
        if ref_rttm.is_file() and port_rttm.is_file():
            report["rttm_identical"] = ref_rttm.read_text() == port_rttm.read_text()
            if report["rttm_identical"]:
                print("RTTM identical")
            else:
                report["der_port_vs_pyannote"] = rttm_der(ref_rttm, port_rttm)
                print(f"RTTM differs: DER of the port against pyannote {report['der_port_vs_pyannote']:.4%}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    failed = [side for side in ("port", "pyannote") if side in report and report[side]["exit"] != 0]
    if failed or report.get("rttm_identical") is False:
        raise SystemExit(f"failed: {', '.join(failed) or 'RTTMs differ'} ({report['port']['stderr_tail']})")


if __name__ == "__main__":
    main()
