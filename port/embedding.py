"""Speaker embeddings per (chunk, local speaker): `SpeakerDiarization.get_embeddings`.

pyannote runs the whole WeSpeaker ResNet once per (chunk, speaker) pair, i.e.
three times per chunk on the same audio. The ResNet trunk does not depend on the
speaker mask -- only its statistics pooling does -- so the port runs fbank and the
trunk once per chunk and the small head (pooling + projection) once per speaker.
Chunks where no speaker is active are not run at all: pyannote's result for an
all-zero mask is whatever the head returns for zero weights (the projection's
bias), computed once and filled in.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import device_fbank
from . import fbank as kaldi
from . import runtime


def masks(binarized: np.ndarray, min_num_frames: int, exclude_overlap: bool = True) -> np.ndarray:
    """The frame weights `get_embeddings` hands the model, (num_chunks, num_speakers, num_frames).

    With exclude_overlap, frames where two or more speakers are active are zeroed,
    unless that leaves a speaker with `min_num_frames` frames or fewer: then its
    full mask is used."""
    full = np.nan_to_num(binarized, nan=0.0).astype(np.float32)
    if exclude_overlap:
        clean_frames = 1.0 * (np.sum(binarized, axis=2, keepdims=True) < 2)
        clean = np.nan_to_num(binarized * clean_frames, nan=0.0).astype(np.float32)
    else:
        min_num_frames, clean = -1, full
    use_clean = np.sum(clean, axis=1) > min_num_frames  # (num_chunks, num_speakers)
    used = np.where(use_clean[:, None, :], clean, full)
    return np.ascontiguousarray(used.transpose(0, 2, 1))


class Embedding:
    """The ONNX embedding model: trunk + head (default) or the single graph."""

    def __init__(self, folder: str | Path, device: str = "auto", batch_size: int = 4, split: bool = True,
                 threads: int | None = None, fbank: str = "numpy", trunk: str | Path | None = None,
                 tf32: bool = False):
        """batch_size: chunks per trunk run (the single graph runs batch_size x speakers rows);
        threads: ONNX Runtime's intra-op threads per session (default: all cores);
        fbank: "numpy" (port/fbank.py), "graph" (fbank.onnx on the models' provider) or
        "auto" (port/device_fbank.py: resolve); trunk: another trunk graph than the
        export's (the fast mode's), run with TF32 allowed on CUDA when `tf32`."""
        folder = Path(folder)
        self.fbank_backend, self.fbank_reason = device_fbank.resolve(fbank, device, folder)
        self.split = split
        self.batch_size = batch_size
        if split:
            self.trunk = runtime.session(trunk or folder / "embedding-trunk.onnx", device=device, threads=threads,
                                         tf32=tf32)
            self.head = runtime.session(folder / "embedding-head.onnx", device=device, threads=threads)
            self.meta = runtime.metadata(self.trunk)
            self._zero = None
        else:
            self.whole = runtime.session(folder / "embedding.onnx", device=device, threads=threads)
            self.meta = runtime.metadata(self.whole)
        if not str(self.meta.get("kind", "")).startswith("embedding"):
            raise runtime.ModelError(f"{folder} holds no embedding model (kind: {self.meta.get('kind')})")
        self.sample_rate: int = self.meta["sample_rate"]
        self.dimension: int = self.meta["dimension"]
        self.fbank_params: dict = self.meta["fbank"]
        self.min_num_samples: int = self.meta["min_num_samples"]
        self.num_speakers: int = self.meta["num_speakers"]
        self.graph = self.chain = None
        if self.fbank_backend == "graph":
            self.graph = device_fbank.FbankGraph(folder, device=device, threads=threads, fbank_params=self.fbank_params)
            if split:  # crops -> fbank -> trunk -> head, intermediates on the device
                self.chain = device_fbank.DeviceChain(self.graph, self.trunk, self.head)

    @property
    def provider(self) -> str:
        return runtime.providers_of(self.trunk if self.split else self.whole)[0]

    @property
    def formulations(self) -> dict[str, str]:
        """Each embedding graph's formulation ("float32", or the fast trunk's: "int8-static", ...)."""
        if not self.split:
            return {"embedding": runtime.formulation_of(self.whole)}
        return {"embedding-trunk": "tf32" if runtime.tf32_of(self.trunk) else runtime.formulation_of(self.trunk),
                "embedding-head": runtime.formulation_of(self.head)}

    def min_num_frames(self, num_frames: int, duration: float) -> int:
        """`get_embeddings`: frames needed for min_num_samples of audio in a chunk."""
        num_samples = duration * self.sample_rate
        return math.ceil(num_frames * self.min_num_samples / num_samples)

    def fbank(self, waveforms: np.ndarray) -> np.ndarray:
        """`WeSpeakerResNet34.compute_fbank` on (batch, 1, samples) chunks."""
        if self.graph is not None:
            return self.graph(waveforms)
        return kaldi.compute_fbank(waveforms, self.fbank_params)

    def zero_mask_embedding(self, num_frames: int) -> np.ndarray:
        """What the head returns for an all-zero mask (pyannote still embeds inactive
        speakers): pooled statistics are 0, so it does not depend on the audio."""
        if self._zero is None:
            frames = np.zeros((1, *self.meta["trunk_shape"]), dtype=np.float32)
            weights = np.zeros((1, self.num_speakers, num_frames), dtype=np.float32)
            self._zero = self.head.run(None, {"frames": frames, "weights": weights})[0][0, 0]
        return self._zero

    def __call__(self, fbank: np.ndarray, weights: np.ndarray, last: bool = False) -> np.ndarray:
        """fbank (chunks, fbank_frames, mel) + weights (chunks, speakers, frames) -> (chunks, speakers, dim).
        `last`: the recording's last batch (the arenas are released after it)."""
        if self.split:
            frames = runtime.run(self.trunk, {"fbank": runtime.as_float32(fbank)}, last)[0]
            return runtime.run(self.head, {"frames": frames, "weights": runtime.as_float32(weights)}, last)[0]
        num_chunks, num_speakers, num_frames = weights.shape
        flat_fbank = np.repeat(runtime.as_float32(fbank), num_speakers, axis=0)
        flat_weights = runtime.as_float32(weights).reshape(-1, num_frames)
        out = runtime.run(self.whole, {"fbank": flat_fbank, "weights": flat_weights}, last)[0]
        return out.reshape(num_chunks, num_speakers, -1)
