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


def build_long_recording(seconds: float, path: Path) -> Path:
    """A 16 kHz mono recording of `seconds`, made by cycling the bundled test audio
    (pyannote's sample, test_16k, the 48 kHz file resampled by the port) with short
    pauses, so every stretch has speech, pauses, speaker changes and overlap."""
    import soundfile as sf

    from port import audio

    pieces = []
    for name in ("sample.wav", "test_16k.wav", "test_with_noise_48k.wav"):
        waveform, rate = audio.load(DATA / name)
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


def pipelines(device: str = "cpu"):
    """(pyannote pipeline, port pipeline) on the same fixture weights."""
    from port.pipeline import Parameters, Pipeline
    from reference import export, models
    from reference.run import build_pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segmentation, embedding = models.fixture_segmentation(), models.fixture_embedding()
        folder = export.export(segmentation, embedding)["segmentation"].parent
        parameters = Parameters()
        return build_pipeline(segmentation, embedding, parameters), Pipeline.from_folder(folder, device=device, parameters=parameters)
