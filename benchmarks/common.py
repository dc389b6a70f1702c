"""Shared by the benchmarks: fixture models, both pipelines, long recordings built from
the test audio."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
DATA = REPO / "tests" / "data"
SAMPLE = DATA / "sample.wav"


AMI = Path(os.environ.get("AMI", REPO.parent / "shared" / "audio" / "ami"))
TEST_SOURCES = tuple(DATA / name for name in ("sample.wav", "test_16k.wav", "test_with_noise_48k.wav"))
# the AMI excerpts bundled in tests/data (16 kHz mono ones), where ../shared is not there
BUNDLED_AMI = tuple(DATA / name for name in ("ami_trn03.wav", "ami_trn08.wav", "ami_padded.wav"))


def ami_sources() -> tuple[Path, ...]:
    """The AMI excerpts in $AMI or ../shared/audio/ami (30 s each, more speakers than the
    test files); on a machine without that folder, the three bundled in tests/data."""
    sources = tuple(sorted(AMI.glob("*.wav"))) or tuple(p for p in BUNDLED_AMI if p.is_file())
    if not sources:
        raise SystemExit(f"no AMI excerpts under {AMI}")
    return sources


def build_long_recording(seconds: float, path: Path, sources: tuple[Path, ...] = TEST_SOURCES) -> Path:
    """A 16 kHz mono recording of `seconds`, made by cycling `sources` (by default the
    bundled test audio: pyannote's sample, test_16k, the 48 kHz file resampled by the
    port; or the AMI excerpts) with short pauses, so every stretch has speech, pauses,
    speaker changes and overlap."""
    import soundfile as sf

    from port import audio

    pieces = []
    for name in sources:
        waveform, rate = audio.load(name)
        waveform, _ = audio.downmix_and_resample(waveform, rate, 16000)
        pieces.append(waveform[0])
    pause = np.zeros(8000, dtype=np.float32)
    total = int(seconds * 16000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as out:
        written, i = 0, 0
        while written < total:
            block = np.concatenate([pieces[i % len(pieces)], pause])[: total - written]
            out.write(block)
            written += len(block)
            i += 1
    return path


def fixture_export(segmentation=None, embedding=None, fast: bool = False) -> Path:
    """The ONNX export folder of the fixture models (cached by checksum). Named
    explicitly: `python -m port` alone takes the newest export under models/, which
    may be another model's (the pretrained segmentation's, say). `fast`: with the fast
    mode's graphs (derived once, kept beside it)."""
    from reference import export, models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segmentation = segmentation or models.fixture_segmentation()
        embedding = embedding or models.fixture_embedding()
        folder = export.export(segmentation, embedding)["segmentation"].parent
        if fast:
            export.ensure_fast(folder, segmentation)
        return folder


def pipelines(device: str = "cpu", pipeline: str | None = None, precision: str = "exact"):
    """(pyannote pipeline, port pipeline) on the same fixture weights, in `pipeline`'s
    configuration (default: community-1, pyannote 4's), the port in `precision`'s mode."""
    from port.pipeline import Parameters, Pipeline
    from reference import models
    from reference.run import build_pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segmentation, embedding = models.fixture_segmentation(), models.fixture_embedding()
        folder = fixture_export(segmentation, embedding, fast=precision == "fast")
        parameters = Parameters(pipeline=pipeline) if pipeline else Parameters()
        return (build_pipeline(segmentation, embedding, parameters, device=device),
                Pipeline.from_folder(folder, device=device, parameters=parameters, precision=precision))


class GpuMemory:
    """Peak GPU memory in use (MB, all processes, `nvidia-smi` polled every 0.2 s)
    while the `with` block runs, over what was in use when it began; None without
    nvidia-smi."""

    def __init__(self, interval: float = 0.2):
        import shutil

        self.interval = interval
        self.available = shutil.which("nvidia-smi") is not None
        self.peak_mb: float | None = None

    @staticmethod
    def used_mb() -> float:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=10).stdout
        return float(out.strip().splitlines()[0])

    def __enter__(self) -> "GpuMemory":
        import threading

        if not self.available:
            return self
        self.base = self.used_mb()
        self.peak = self.base
        self.stop = threading.Event()

        def poll():
            while not self.stop.wait(self.interval):
                self.peak = max(self.peak, self.used_mb())

        self.thread = threading.Thread(target=poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.available:
            self.stop.set()
            self.thread.join()
            self.peak_mb = self.peak - self.base
