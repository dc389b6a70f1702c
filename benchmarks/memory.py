"""Memory on long audio: peak RSS of `python -m port` (and optionally pyannote) on one
hour built from the test recordings, measured from outside the process (wait4's
rusage of the child, the number /usr/bin/time -v prints as "Maximum resident set size").

    .venv/bin/python benchmarks/memory.py [--minutes 60] [--pyannote] [--json out.json]

--pyannote also runs pyannote.audio on the same file in a child process (long: tens of
minutes on 2 cores) and checks that both RTTMs are identical.
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

from common import REPO, build_long_recording

PYANNOTE_CHILD = """
import sys, warnings, os
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
sys.path.insert(0, {repo!r})
warnings.simplefilter("ignore")
from reference import models
from reference.run import audio_file, build_pipeline
pipeline = build_pipeline(models.fixture_segmentation(), models.fixture_embedding())
output = pipeline(audio_file({audio!r}))
open({rttm!r}, "w").write(output.speaker_diarization.to_rttm())
"""


def measure(command: list[str]) -> dict:
    """Run a child; its wall time, peak RSS (MB, from wait4) and exit status."""
    began = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    return {
        "seconds": time.perf_counter() - began,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "exit": os.waitstatus_to_exitcode(status),
        "stderr_tail": stderr.strip().splitlines()[-1:] if stderr.strip() else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--pyannote", action="store_true", help="also run pyannote.audio on the same audio")
    parser.add_argument("--models", help="ONNX export folder (default: newest under models/)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the long recording and RTTMs in this folder")
    args = parser.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    audio = build_long_recording(args.minutes * 60, folder / f"long_{args.minutes:g}min.wav")
    port_rttm = folder / "port.rttm"
    command = [sys.executable, "-m", "port", str(audio), "--rttm", str(port_rttm), "--quiet", "--device", "cpu"]
    if args.models:
        command += ["--models", args.models]
    report = {"minutes": args.minutes, "audio_mb": audio.stat().st_size / 1e6, "port": measure(command)}
    print(f"port: {report['port']['seconds']:.1f} s, peak RSS {report['port']['peak_rss_mb']:.0f} MB, exit {report['port']['exit']}")
    if args.pyannote:
        ref_rttm = folder / "pyannote.rttm"
        code = PYANNOTE_CHILD.format(repo=str(REPO), audio=str(audio), rttm=str(ref_rttm))
        report["pyannote"] = measure([sys.executable, "-c", code])
        print(f"pyannote: {report['pyannote']['seconds']:.1f} s, peak RSS {report['pyannote']['peak_rss_mb']:.0f} MB")
        if ref_rttm.is_file() and port_rttm.is_file():
            report["rttm_identical"] = ref_rttm.read_text() == port_rttm.read_text()
            print("RTTM identical" if report["rttm_identical"] else "RTTM differs")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
