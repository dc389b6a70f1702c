"""The whole diarization pipeline: `SpeakerDiarization.apply` (pyannote.audio 4.0.7,
3.1 configuration), every stage reported through one dump hook.

    pipeline = Pipeline.from_folder("models/<export>")
    result = pipeline("meeting.wav")
    print(result.rttm)

The hook is called as ``hook(stage, name, value)`` with the dump vocabulary of
`port.dumps` (stage "05-count", name "out_count", ...). Without a hook nothing is
kept that the next stage does not need: chunks, fbank and trunk features are
streamed batch by batch, so an hour of audio fits in little memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import audio, clustering, reconstruct, segmentation
from .aggregate import SlidingWindow
from .dumps import encode_optional, encode_window
from .embedding import Embedding, masks as embedding_masks
from .segmentation import Segmentation

Hook = Callable[[str, str, object], None]
Progress = Callable[[str, int, int], None]


@dataclass
class Parameters:
    """pyannote/speaker-diarization-3.1's hyper-parameters and options."""

    segmentation_step: float = 0.1
    min_duration_off: float = 0.0
    threshold: float = 0.7045654963945799
    min_cluster_size: int = 12
    method: str = "centroid"
    exclude_overlap: bool = True
    # pyannote's batch sizes (the 3.1 configuration's): they do not change results
    segmentation_batch_size: int = 32
    embedding_batch_size: int = 32

    def as_dict(self) -> dict:
        return {
            "segmentation": {"min_duration_off": self.min_duration_off},
            "clustering": {
                "method": self.method,
                "min_cluster_size": self.min_cluster_size,
                "threshold": self.threshold,
            },
            "segmentation_step": self.segmentation_step,
            "embedding_exclude_overlap": self.exclude_overlap,
            "segmentation_batch_size": self.segmentation_batch_size,
            "embedding_batch_size": self.embedding_batch_size,
        }


@dataclass
class Result:
    """What `SpeakerDiarization.apply` returns (DiarizeOutput), as plain data."""

    uri: str
    turns: list[reconstruct.Turn]
    exclusive_turns: list[reconstruct.Turn]
    labels: dict[int, str]
    speaker_embeddings: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)

    @property
    def rttm(self) -> str:
        return reconstruct.to_rttm(self.turns, self.uri, self.labels)

    @property
    def exclusive_rttm(self) -> str:
        return reconstruct.to_rttm(self.exclusive_turns, self.uri, self.labels)

    @property
    def num_speakers(self) -> int:
        return len(self.labels)


def set_num_speakers(num_speakers=None, min_speakers=None, max_speakers=None):
    """`pyannote.audio.pipelines.utils.diarization.set_num_speakers`."""
    min_speakers = num_speakers or min_speakers or 1
    max_speakers = num_speakers or max_speakers or np.inf
    if min_speakers > max_speakers:
        raise ValueError(
            f"min_speakers must be smaller than (or equal to) max_speakers "
            f"(here: min_speakers={min_speakers:g} and max_speakers={max_speakers:g})."
        )
    if min_speakers == max_speakers:
        num_speakers = min_speakers
    return num_speakers, min_speakers, max_speakers


class Pipeline:
    """Speaker diarization with ONNX models exported by `reference/export.py`."""

    def __init__(
        self,
        segmentation_model: Segmentation,
        embedding_model: Embedding,
        parameters: Parameters | None = None,
    ):
        self.segmentation = segmentation_model
        self.embedding = embedding_model
        self.parameters = parameters or Parameters()

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        device: str = "auto",
        parameters: Parameters | None = None,
        split: bool = True,
        segmentation_batch: int = 8,
        embedding_batch: int = 4,
    ):
        """Load `segmentation.onnx` and the embedding graphs from one export folder.

        The port's own batch sizes (chunks per ONNX run) are small on purpose: on a
        CPU they cost no speed, and they bound the activations held in memory
        (the ResNet trunk needs ~60 MB per chunk)."""
        folder = Path(folder)
        return cls(
            Segmentation(folder / "segmentation.onnx", device=device, batch_size=segmentation_batch),
            Embedding(folder, device=device, batch_size=embedding_batch, split=split),
            parameters or Parameters(),
        )

    @property
    def providers(self) -> dict[str, str]:
        return {"segmentation": self.segmentation.provider, "embedding": self.embedding.provider}

    @property
    def chunks(self) -> SlidingWindow:
        """`Inference` chunk window: duration and step in seconds, starting at 0."""
        duration = self.segmentation.duration
        return SlidingWindow(start=0.0, duration=duration, step=self.parameters.segmentation_step * duration)

    # ------------------------------------------------------------------ stages
    def load(self, path: str | Path, hook: Hook | None = None) -> tuple[np.ndarray, int, np.ndarray]:
        """01: decode, then downmix and resample (`Audio.__call__`)."""
        native, sample_rate = audio.load(path)
        waveform, _ = audio.downmix_and_resample(native, sample_rate, self.segmentation.sample_rate)
        if hook:
            hook("01-audio", "in_waveform", native)
            hook("01-audio", "in_sample_rate", np.int64(sample_rate))
            hook("01-audio", "out_waveform", waveform)
        return native, sample_rate, waveform

    def segment(self, waveform: np.ndarray, hook: Hook | None = None, progress: Progress | None = None) -> np.ndarray:
        """02-04: sliding chunks, model, powerset -> multilabel; (chunks, frames, speakers)."""
        window_size, step_size = segmentation.window_sizes(
            self.segmentation.sample_rate, self.segmentation.duration, self.chunks.step
        )
        num_chunks, has_last = segmentation.chunk_layout(waveform.shape[1], window_size, step_size)
        total = num_chunks + has_last
        kept: dict[str, list[np.ndarray]] = {"chunks": [], "log_probs": []}
        multilabel = []
        done = 0
        for batch in segmentation.iter_chunks(waveform, window_size, step_size, self.segmentation.batch_size):
            log_probs = self.segmentation(batch)
            multilabel.append(self.segmentation.to_multilabel(log_probs))
            if hook:
                kept["chunks"].append(batch)
                kept["log_probs"].append(log_probs)
            done += len(batch)
            if progress:
                progress("segmentation", done, total)
        multilabel = np.concatenate(multilabel, axis=0)
        if hook:
            hook("02-chunks", "out_chunks", np.concatenate(kept["chunks"]))
            hook("03-segmentation", "out_log_probs", np.concatenate(kept["log_probs"]))
            hook("04-multilabel", "out_multilabel", multilabel)
        return multilabel

    def count(self, binarized: np.ndarray, hook: Hook | None = None) -> tuple[np.ndarray, SlidingWindow]:
        """05: frame-level number of speakers (`speaker_count`, no warm-up)."""
        count, frames = segmentation.speaker_count(
            binarized, self.chunks, self.segmentation.receptive_field, warm_up=(0.0, 0.0)
        )
        if hook:
            hook("05-count", "out_count", count)
            hook("05-count", "out_frames", encode_window(frames))
        return count, frames

    def embed(
        self,
        native: np.ndarray,
        sample_rate: int,
        binarized: np.ndarray,
        hook: Hook | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """06-08: per-chunk crops, fbank, masks, embeddings; (chunks, speakers, dim)."""
        num_chunks, num_frames, _ = binarized.shape
        min_num_frames = self.embedding.min_num_frames(num_frames, self.chunks.duration)
        weights = embedding_masks(binarized, min_num_frames, exclude_overlap=self.parameters.exclude_overlap)
        if hook:
            hook("07-masks", "out_masks", weights)
        embeddings = np.empty((num_chunks, weights.shape[1], self.embedding.dimension), dtype=np.float32)
        # pyannote embeds every (chunk, speaker) pair; with the trunk/head split, chunks
        # where nobody speaks get the zero-mask embedding without touching their audio
        active = np.any(weights > 0, axis=(1, 2)) if self.embedding.split else np.ones(num_chunks, dtype=bool)
        starts = self.chunks.start + np.arange(num_chunks) * self.chunks.step
        crops_kept: list[np.ndarray] = []
        fbank_kept: list[np.ndarray] = []
        batch = self.embedding.batch_size
        for c in range(0, num_chunks, batch):
            part = slice(c, min(c + batch, num_chunks))
            run = active[part]
            cropped = np.ones_like(run) if hook else run  # dumps want every chunk's fbank
            out = embeddings[part]
            if not run.all():
                out[~run] = self.embedding.zero_mask_embedding(weights.shape[2])
            if cropped.any():
                crops = audio.crop_chunks(
                    native, sample_rate, starts[part][cropped], self.chunks.duration, self.embedding.sample_rate
                )
                features = self.embedding.fbank(crops)
                if hook:
                    crops_kept.append(crops)
                    fbank_kept.append(features)
                if run.any():
                    out[run] = self.embedding(features[run[cropped]], weights[part][run])
            if progress:
                progress("embeddings", part.stop, num_chunks)
        if hook:
            hook("06-fbank", "out_waveforms", np.concatenate(crops_kept))
            hook("06-fbank", "out_fbank", np.concatenate(fbank_kept))
            hook("08-embeddings", "out_embeddings", embeddings)
        return embeddings

    def cluster(self, embeddings, binarized, num_speakers, min_speakers, max_speakers, hook: Hook | None = None):
        """09-12: filter, centroid linkage, fcluster and constraints, assignment."""
        parameters = self.parameters
        if hook:
            for name, value in (("num_clusters", num_speakers), ("min_clusters", min_speakers), ("max_clusters", max_speakers)):
                hook("12-assign", f"in_{name}", encode_optional(value))
        hard_clusters, soft_clusters, centroids = clustering.clustering(
            embeddings,
            binarized,
            num_clusters=num_speakers,
            min_clusters=min_speakers,
            max_clusters=max_speakers,
            threshold=parameters.threshold,
            min_cluster_size=parameters.min_cluster_size,
            method=parameters.method,
            trace=hook,
        )
        if hook:
            hook("12-assign", "out_hard_clusters", hard_clusters)
            hook("12-assign", "out_soft_clusters", soft_clusters)
            hook("12-assign", "out_centroids", centroids)
        return hard_clusters, soft_clusters, centroids

    # ------------------------------------------------------------------ apply
    def __call__(
        self,
        path: str | Path,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        hook: Hook | None = None,
        progress: Progress | None = None,
    ) -> Result:
        """`SpeakerDiarization.apply` on an audio file."""
        seconds: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[name] = seconds.get(name, 0.0) + now - clock
            clock = now

        uri = Path(path).stem
        num_speakers, min_speakers, max_speakers = set_num_speakers(num_speakers, min_speakers, max_speakers)
        native, sample_rate, waveform = self.load(path, hook)
        lap("audio")
        binarized = self.segment(waveform, hook, progress)
        lap("segmentation")
        count, count_frames = self.count(binarized, hook)
        lap("count")

        if np.nanmax(count) == 0.0:  # nobody ever speaks: pyannote returns early
            empty = np.zeros((0, self.embedding.dimension))
            return self._finish(Result(uri, [], [], {}, empty, seconds, self.providers), hook)

        embeddings = self.embed(native, sample_rate, binarized, hook, progress)
        del native
        lap("embeddings")
        hard_clusters, _, centroids = self.cluster(embeddings, binarized, num_speakers, min_speakers, max_speakers, hook)
        lap("clustering")

        count = np.minimum(count, max_speakers).astype(np.int8)
        inactive_speakers = np.sum(binarized, axis=1) == 0
        hard_clusters[inactive_speakers] = -2

        chunks = self.chunks
        discrete, frames = reconstruct.reconstruct(binarized, chunks, hard_clusters, count, count_frames)
        exclusive_count = np.minimum(count, 1).astype(np.int8)
        exclusive, _ = reconstruct.reconstruct(binarized, chunks, hard_clusters, exclusive_count, count_frames)
        if hook:
            for k, (c, d) in enumerate(((count, discrete), (exclusive_count, exclusive))):
                hook("13-reconstruct", f"call{k}_in_hard_clusters", hard_clusters)
                hook("13-reconstruct", f"call{k}_in_count", c)
                hook("13-reconstruct", f"call{k}_out_discrete", d)
            hook("13-reconstruct", "out_frames", encode_window(frames))
        lap("reconstruct")

        min_duration_off = self.parameters.min_duration_off
        turns = reconstruct.to_annotation(discrete, frames, min_duration_on=0.0, min_duration_off=min_duration_off)
        exclusive_turns = reconstruct.to_annotation(exclusive, frames, min_duration_on=0.0, min_duration_off=min_duration_off)
        labels = reconstruct.speaker_labels(turns)
        speaker_embeddings = _speaker_embeddings(centroids, labels)
        if hook:
            hook("14-annotation", "in_min_duration_off", np.float64(min_duration_off))
            for k, ts in enumerate((turns, exclusive_turns)):
                hook("14-annotation", f"call{k}_out_segments", segments_array(ts))
        lap("annotation")
        return self._finish(Result(uri, turns, exclusive_turns, labels, speaker_embeddings, seconds, self.providers), hook)

    @staticmethod
    def _finish(result: Result, hook: Hook | None) -> Result:
        if hook:
            hook("14-annotation", "out_diarization.rttm", result.rttm)
            hook("14-annotation", "out_exclusive.rttm", result.exclusive_rttm)
        return result


def segments_array(turns: list[reconstruct.Turn]) -> np.ndarray:
    """Turns as an (n, 3) float64 array: start, end, cluster index (dump form)."""
    return np.array([[t.start, t.end, t.label] for t in turns], dtype=np.float64).reshape(-1, 3)


def _speaker_embeddings(centroids: np.ndarray, labels: dict[int, str]) -> np.ndarray:
    """Centroids in `diarization.labels()` order, zero rows for speakers without one."""
    if len(labels) > centroids.shape[0]:
        centroids = np.pad(centroids, ((0, len(labels) - centroids.shape[0]), (0, 0)))
    inverse = {label: index for index, label in labels.items()}
    return centroids[[inverse[label] for label in sorted(inverse)]]
