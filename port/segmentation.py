"""Sliding chunks, the segmentation model, powerset -> multilabel and speaker count.

Mirrors `pyannote.audio.core.inference.Inference.slide` (with skip_aggregation),
`pyannote.audio.utils.powerset.Powerset.to_multilabel` and
`SpeakerDiarizationMixin.speaker_count`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from . import runtime
from .aggregate import SlidingWindow, aggregate, trim


class Segmentation:
    """The ONNX segmentation model and what its metadata says about it."""

    def __init__(self, path: str | Path, device: str = "auto", batch_size: int = 16, threads: int | None = None,
                 tf32: bool = False):
        """batch_size: chunks per ONNX run; threads: ONNX Runtime's intra-op threads (default: all cores);
        tf32: TF32 allowed on CUDA (the fast mode)."""
        self.path = Path(path)
        self.session = runtime.session(self.path, device=device, threads=threads, tf32=tf32)
        self.meta = runtime.metadata(self.session)
        if self.meta.get("kind") != "segmentation":
            raise runtime.ModelError(f"{self.path} is not a segmentation model (kind: {self.meta.get('kind')})")
        self.batch_size = batch_size
        self.sample_rate: int = self.meta["sample_rate"]
        self.duration: float = self.meta["duration"]
        self.num_samples: int = self.meta["num_samples"]
        self.num_frames: int = self.meta["num_frames"]
        self.num_speakers: int = self.meta["num_speakers"]
        field = self.meta["receptive_field"]
        self.receptive_field = SlidingWindow(field["start"], field["duration"], field["step"])
        self.mapping = np.asarray(self.meta["mapping"], dtype=np.float32) if self.meta.get("powerset") else None

    @property
    def provider(self) -> str:
        return runtime.providers_of(self.session)[0]

    @property
    def formulation(self) -> str:
        """"exact-lstm" (the LSTM as a Scan, float64 activations and cell) or "lstm-op" (ONNX Runtime's),
        "+tf32" when CUDA may round its products to TF32."""
        return runtime.formulation_of(self.session) + ("+tf32" if runtime.tf32_of(self.session) else "")

    def __call__(self, chunks: np.ndarray, last: bool = False) -> np.ndarray:
        """Model forward: (batch, 1, num_samples) float32 -> (batch, num_frames, classes) log-probabilities.
        `last`: the recording's last batch (the arena is released after it)."""
        return runtime.run(self.session, {"waveform": runtime.as_float32(chunks)}, last)[0]

    def to_multilabel(self, log_probs: np.ndarray) -> np.ndarray:
        return to_multilabel(log_probs, self.mapping)


def chunk_layout(num_samples: int, window_size: int, step_size: int) -> tuple[int, bool]:
    """(number of complete chunks, whether a zero-padded last chunk follows), as `Inference.slide`."""
    num_chunks = 1 + (num_samples - window_size) // step_size if num_samples >= window_size else 0
    has_last_chunk = num_samples < window_size or (num_samples - window_size) % step_size > 0
    return num_chunks, has_last_chunk


def window_sizes(sample_rate: int, duration: float, step: float) -> tuple[int, int]:
    """`Audio.get_num_samples(duration)` and `round(step * sample_rate)`."""
    return round(duration * sample_rate), round(step * sample_rate)


def iter_chunks(waveform: np.ndarray, window_size: int, step_size: int, batch_size: int) -> Iterator[np.ndarray]:
    """Batches of (batch, 1, window_size) chunks in `Inference.slide`'s order: complete
    chunks in batches of `batch_size`, then the orphan last chunk alone, zero-padded."""
    _, num_samples = waveform.shape
    num_chunks, has_last_chunk = chunk_layout(num_samples, window_size, step_size)
    for c in range(0, num_chunks, batch_size):
        stop = min(c + batch_size, num_chunks)
        starts = np.arange(c, stop) * step_size
        index = starts[:, None] + np.arange(window_size)[None, :]
        yield waveform[0][index][:, None, :]
    if has_last_chunk:
        last = waveform[:, num_chunks * step_size :]
        padded = np.zeros((1, 1, window_size), dtype=waveform.dtype)
        padded[0, :, : last.shape[1]] = last
        yield padded


def slide(waveform: np.ndarray, window_size: int, step_size: int) -> np.ndarray:
    """All chunks at once (num_chunks, 1, window_size): what stage 02 dumps."""
    return np.concatenate(list(iter_chunks(waveform, window_size, step_size, batch_size=64)), axis=0)


def to_multilabel(log_probs: np.ndarray, mapping: np.ndarray | None) -> np.ndarray:
    """`Powerset.to_multilabel(soft=False)`: one-hot of the argmax (first maximum wins,
    as torch.argmax), times the powerset -> speakers mapping. Identity without powerset."""
    if mapping is None:
        return log_probs
    best = np.argmax(log_probs, axis=-1)
    return mapping[best].astype(np.float32)


def speaker_count(
    binarized: np.ndarray, chunks: SlidingWindow, frames: SlidingWindow, warm_up: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, SlidingWindow]:
    """`SpeakerDiarizationMixin.speaker_count`: aggregate the per-chunk number of active
    speakers, round to the nearest integer; (num_frames, 1) uint8 and its frame window."""
    trimmed, trimmed_chunks = trim(binarized, chunks, warm_up=warm_up)
    count, count_frames = aggregate(
        np.sum(trimmed, axis=-1, keepdims=True),
        trimmed_chunks,
        frames,
        hamming=False,
        missing=0.0,
        skip_average=False,
    )
    return np.rint(count).astype(np.uint8), count_frames
