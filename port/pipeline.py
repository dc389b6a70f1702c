"""The whole diarization pipeline: `SpeakerDiarization.apply` (pyannote.audio 4.0.7, in
the community-1 configuration (VBxClustering, pyannote 4's default) or the 3.1 one
(AgglomerativeClustering)), every stage reported through one dump hook.

    pipeline = Pipeline.from_folder("models/<export>")
    result = pipeline("meeting.wav")
    print(result.rttm)

The hook is called as ``hook(stage, name, value)`` with the dump vocabulary of
`port.dumps` (stage "05-count", name "out_count", ...). Without a hook nothing is
kept that the next stage does not need: chunks, fbank and trunk features are
streamed batch by batch, so an hour of audio fits in little memory.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import audio, clustering, reconstruct, runtime, segmentation
from .aggregate import SlidingWindow
from .dumps import encode_optional, encode_window
from .embedding import Embedding, masks as embedding_masks
from .plda import PLDA
from .segmentation import Segmentation
from .vocabulary import DEFAULT_PIPELINE, Description
from .vocabulary import pipeline as describe

Hook = Callable[[str, str, object], None]
Progress = Callable[[str, int, int], None]


# Where the real community-1 PLDA is kept in this repository (CC-BY-4.0; see its README)
PLDA_DIR = Path(__file__).resolve().parent.parent / "reference" / "pretrained" / "plda"

# each pipeline's clustering hyper-parameters (speaker-diarization-3.1's and
# speaker-diarization-community-1's config.yaml)
CLUSTERING = {
    "3.1": {"threshold": 0.7045654963945799, "min_cluster_size": 12, "method": "centroid"},
    "community-1": {"threshold": 0.6, "Fa": 0.07, "Fb": 0.8},
}


@dataclass
class Parameters:
    """A pipeline's hyper-parameters and options: community-1's (pyannote 4's default) or 3.1's.

    Clustering values left None take the pipeline's own (`CLUSTERING`)."""

    pipeline: str = DEFAULT_PIPELINE
    segmentation_step: float = 0.1
    min_duration_off: float = 0.0
    threshold: float | None = None
    min_cluster_size: int | None = None  # 3.1
    method: str | None = None  # 3.1
    Fa: float | None = None  # community-1
    Fb: float | None = None  # community-1
    exclude_overlap: bool = True
    # pyannote's batch sizes (both configurations'): they do not change results
    segmentation_batch_size: int = 32
    embedding_batch_size: int = 32

    def __post_init__(self):
        if self.pipeline not in CLUSTERING:
            raise ValueError(f"unknown pipeline {self.pipeline!r} (known: {', '.join(CLUSTERING)})")
        for key, value in CLUSTERING[self.pipeline].items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    @property
    def clustering(self) -> dict:
        """The clustering hyper-parameters pyannote's pipeline is instantiated with."""
        return {key: getattr(self, key) for key in CLUSTERING[self.pipeline]}

    def as_dict(self) -> dict:
        return {
            "pipeline": self.pipeline,
            "segmentation": {"min_duration_off": self.min_duration_off},
            "clustering": self.clustering,
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


def load_plda(folder: str | Path | None = None) -> PLDA:
    """community-1's PLDA (`core.plda.PLDA`) from a folder with xvec_transform.npz and plda.npz."""
    folder = Path(folder or PLDA_DIR)
    return PLDA(folder / "xvec_transform.npz", folder / "plda.npz")


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


# Recordings of at least this many chunks (10 min) hand the ONNX Runtime arenas back
# after their last batch: there the clustering's distance matrix needs the memory
# (1 h: ~4,900 embeddings, 96 MB), and mapping ~400 MB afresh is a small cost. Shorter
# ones keep them for the next recording (one process, many files).
RELEASE_FROM = 600


def releases_arenas(stop: int, total: int) -> bool:
    """Whether the batch ending at chunk `stop` (of `total`) is a long recording's last."""
    return total >= RELEASE_FROM and stop >= total


class Pipeline:
    """Speaker diarization with ONNX models exported by `reference/export.py`."""

    def __init__(
        self,
        segmentation_model: Segmentation,
        embedding_model: Embedding,
        parameters: Parameters | None = None,
        workers: int = 1,
        plda: PLDA | None = None,
    ):
        self.segmentation = segmentation_model
        self.embedding = embedding_model
        self.parameters = parameters or Parameters()
        self.workers = workers
        if plda is None and self.parameters.pipeline == "community-1":
            plda = load_plda()
        self.plda = plda

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        device: str = "auto",
        parameters: Parameters | None = None,
        split: bool = True,
        segmentation_batch: int | None = None,
        embedding_batch: int | None = None,
        workers: int | None = None,
        plda: str | Path | None = None,
        fbank: str = "auto",
    ):
        """Load `segmentation.onnx` and the embedding graphs from one export folder.

        The port's own batch sizes (chunks per ONNX run) are small on a CPU (16 and
        4): there they cost no speed, and they bound the activations held in memory
        (the ResNet trunk needs ~60 MB per chunk). On CUDA both are 32, pyannote's
        own default, since each run's launch costs more than its work. `workers`
        threads share the cores (each ONNX session gets cores / workers threads):
        one segments while the others embed the chunks already segmented; none
        changes results. By default 1 on a CPU (one 2-thread session beat two
        1-thread workers on an idle 2-core machine: README, Speed) and 2 on CUDA,
        where the CPU's fbank overlaps the GPU's segmentation. community-1's PLDA is read from
        `plda` (a folder with xvec_transform.npz and plda.npz), else the export's own
        `plda/`, else the repository's `reference/pretrained/plda`. `fbank`: "numpy", "graph"
        (`fbank.onnx`, with the trunk/head split the crops' fbank and trunk features stay
        on the device) or "auto" (the graph on CUDA, numpy on a CPU; port/device_fbank.py)."""
        folder = Path(folder)
        gpu = runtime.resolve(device)[0] == "cuda"
        segmentation_batch = segmentation_batch or (32 if gpu else 16)
        embedding_batch = embedding_batch or (32 if gpu else 4)
        workers = max(1, int(workers or (2 if gpu else 1)))
        threads = max(1, (os.cpu_count() or 1) // workers)
        parameters = parameters or Parameters()
        if parameters.pipeline == "community-1":
            plda = load_plda(plda or (folder / "plda" if (folder / "plda").is_dir() else None))
        return cls(
            Segmentation(folder / "segmentation.onnx", device=device, batch_size=segmentation_batch, threads=threads),
            Embedding(folder, device=device, batch_size=embedding_batch, split=split, threads=threads, fbank=fbank),
            parameters,
            workers=workers,
            plda=plda if isinstance(plda, PLDA) else None,
        )

    @property
    def description(self) -> Description:
        """This pipeline's stages and names (`port.vocabulary`)."""
        return describe(self.parameters.pipeline)

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

    def num_chunks(self, waveform: np.ndarray) -> int:
        """Chunks `Inference.slide` makes of the (resampled) waveform, padded last one included."""
        window_size, step_size = segmentation.window_sizes(
            self.segmentation.sample_rate, self.segmentation.duration, self.chunks.step
        )
        num_chunks, has_last = segmentation.chunk_layout(waveform.shape[1], window_size, step_size)
        return num_chunks + has_last

    def embedder(self, native: np.ndarray, sample_rate: int, num_chunks: int, keep: bool = False) -> "Embedder":
        """Embeds chunks as soon as their segmentation is known, on `workers - 1`
        background threads (the calling thread joins in `embed`)."""
        return Embedder(self, native, sample_rate, num_chunks, keep=keep, workers=self.workers)

    def segment(
        self,
        waveform: np.ndarray,
        hook: Hook | None = None,
        progress: Progress | None = None,
        then: Callable[[np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """02-04: sliding chunks, model, powerset -> multilabel; (chunks, frames, speakers).

        `then(multilabel)` is handed each batch as soon as it is decoded."""
        window_size, step_size = segmentation.window_sizes(
            self.segmentation.sample_rate, self.segmentation.duration, self.chunks.step
        )
        total = self.num_chunks(waveform)
        kept: dict[str, list[np.ndarray]] = {"chunks": [], "log_probs": []}
        multilabel = []
        done = 0
        for batch in segmentation.iter_chunks(waveform, window_size, step_size, self.segmentation.batch_size):
            log_probs = self.segmentation(batch, last=releases_arenas(done + len(batch), total))
            multilabel.append(self.segmentation.to_multilabel(log_probs))
            if then:
                then(multilabel[-1])
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
        embedder: "Embedder | None" = None,
    ) -> np.ndarray:
        """06-08: per-chunk crops, fbank, masks, embeddings; (chunks, speakers, dim).

        With an `embedder` fed by `segment`, chunks already embedded in the
        background are not run again."""
        if embedder is None:
            embedder = self.embedder(native, sample_rate, len(binarized), keep=hook is not None)
            embedder.add(binarized)
        with embedder:
            embeddings = embedder.finish(progress)
        if hook:
            hook("07-masks", "out_masks", embedder.weights)
            hook("06-fbank", "out_waveforms", np.concatenate(embedder.crops))
            hook("06-fbank", "out_fbank", np.concatenate(embedder.features))
            hook("08-embeddings", "out_embeddings", embeddings)
        embedder.release()  # the native audio, masks and kept crops are not needed any more
        return embeddings

    def cluster(self, embeddings, binarized, num_speakers, min_speakers, max_speakers, hook: Hook | None = None):
        """The clustering (3.1: 09-12; community-1: 09-15): (hard_clusters, soft_clusters, centroids)."""
        parameters = self.parameters
        if parameters.pipeline == "community-1":
            clusterer = clustering.VBxClustering(self.plda, threshold=parameters.threshold, Fa=parameters.Fa,
                                                 Fb=parameters.Fb)
            return clusterer(embeddings, binarized, num_clusters=num_speakers, min_clusters=min_speakers,
                             max_clusters=max_speakers, trace=hook)
        if hook:
            for name, value in (("num_clusters", num_speakers), ("min_clusters", min_speakers), ("max_clusters", max_speakers)):
                hook("12-assign", f"in_{name}", encode_optional(value))
        clusterer = clustering.AgglomerativeClustering(threshold=parameters.threshold,
                                                       min_cluster_size=parameters.min_cluster_size,
                                                       method=parameters.method)
        hard_clusters, soft_clusters, centroids = clusterer(embeddings, binarized, num_clusters=num_speakers,
                                                            min_clusters=min_speakers, max_clusters=max_speakers,
                                                            trace=hook)
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
        embedder = self.embedder(native, sample_rate, self.num_chunks(waveform), keep=hook is not None)
        with runtime.models_own_the_cores(), embedder:
            binarized = self.segment(waveform, hook, progress, then=embedder.add)  # embedding starts meanwhile
            lap("segmentation")
            count, count_frames = self.count(binarized, hook)
            lap("count")

            if np.nanmax(count) == 0.0:  # nobody ever speaks: pyannote returns early
                empty = np.zeros((0, self.embedding.dimension))
                return self._finish(Result(uri, [], [], {}, empty, seconds, self.providers), hook)

            embeddings = self.embed(native, sample_rate, binarized, hook, progress, embedder)
        del native, waveform
        lap("embeddings")
        return self.diarize(uri, binarized, count, count_frames, embeddings, (num_speakers, min_speakers, max_speakers),
                            hook, lap, seconds)

    def diarize(self, uri, binarized, count, count_frames, embeddings, speakers, hook=None, lap=None, seconds=None):
        """From the embeddings on, as `apply` goes: clustering, reconstruction, annotation.
        `speakers`: (num_speakers, min_speakers, max_speakers) as `set_num_speakers` gives them."""
        lap = lap or (lambda name: None)
        hard_clusters, _, centroids = self.cluster(embeddings, binarized, *speakers, hook)
        lap("clustering")
        discrete, exclusive, frames = self.reconstruct(binarized, hard_clusters, count, count_frames, speakers[2], hook)
        lap("reconstruct")
        turns, exclusive_turns = self.annotate(discrete, exclusive, frames, hook)
        labels = reconstruct.speaker_labels(turns)
        speaker_embeddings = _speaker_embeddings(centroids, labels)
        lap("annotation")
        return self._finish(Result(uri, turns, exclusive_turns, labels, speaker_embeddings, seconds or {}, self.providers),
                            hook)

    def from_embeddings(self, uri: str, binarized: np.ndarray, embeddings: np.ndarray, num_speakers=None,
                        min_speakers=None, max_speakers=None, chunks: SlidingWindow | None = None,
                        frames: SlidingWindow | None = None, hook: Hook | None = None) -> Result:
        """`apply` from given segmentations (C, F, S) binarized and raw embeddings (C, S, D):
        the speaker count, then `diarize` (a porter's own embedding model, or pyannote's
        captured intermediates). `chunks` / `frames` default to this pipeline's chunk window
        and the segmentation model's receptive field."""
        num_speakers, min_speakers, max_speakers = set_num_speakers(num_speakers, min_speakers, max_speakers)
        if hook:
            hook("04-multilabel", "out_multilabel", binarized)
        count, count_frames = segmentation.speaker_count(
            binarized, chunks or self.chunks, frames or self.segmentation.receptive_field, warm_up=(0.0, 0.0)
        )
        if hook:
            hook("05-count", "out_count", count)
            hook("05-count", "out_frames", encode_window(count_frames))
        if np.nanmax(count) == 0.0:  # nobody ever speaks: pyannote returns early
            return self._finish(Result(uri, [], [], {}, np.zeros((0, embeddings.shape[-1])), {}, self.providers), hook)
        if hook:
            hook("08-embeddings", "out_embeddings", embeddings)
        return self.diarize(uri, binarized, count, count_frames, embeddings, (num_speakers, min_speakers, max_speakers),
                            hook)

    def reconstruct(self, binarized, hard_clusters, count, count_frames, max_speakers, hook: Hook | None = None):
        """The discrete diarization and the exclusive one (`reconstruct` twice, as `apply`):
        count capped at max_speakers, then at 1; inactive speakers sent to cluster -2."""
        stage = self.description.named("reconstruct")
        count = np.minimum(count, max_speakers).astype(np.int8)
        inactive_speakers = np.sum(binarized, axis=1) == 0
        hard_clusters[inactive_speakers] = -2
        discrete, frames, ranked = reconstruct.reconstruct(binarized, self.chunks, hard_clusters, count, count_frames)
        exclusive_count = np.minimum(count, 1).astype(np.int8)
        exclusive, _, exclusive_ranked = reconstruct.reconstruct(binarized, self.chunks, hard_clusters, exclusive_count,
                                                                 count_frames)
        if hook:
            for k, (c, d, a) in enumerate(((count, discrete, ranked), (exclusive_count, exclusive, exclusive_ranked))):
                hook(stage, f"call{k}_in_hard_clusters", hard_clusters)
                hook(stage, f"call{k}_in_count", c)
                hook(stage, f"call{k}_out_activations", a)
                hook(stage, f"call{k}_out_discrete", d)
            hook(stage, "out_frames", encode_window(frames))
        return discrete, exclusive, frames

    def annotate(self, discrete, exclusive, frames, hook: Hook | None = None):
        """`to_annotation` of both diarizations: (turns, exclusive turns)."""
        stage = self.description.named("annotation")
        min_duration_off = self.parameters.min_duration_off
        turns = reconstruct.to_annotation(discrete, frames, min_duration_on=0.0, min_duration_off=min_duration_off)
        exclusive_turns = reconstruct.to_annotation(exclusive, frames, min_duration_on=0.0, min_duration_off=min_duration_off)
        if hook:
            hook(stage, "in_min_duration_off", np.float64(min_duration_off))
            for k, ts in enumerate((turns, exclusive_turns)):
                hook(stage, f"call{k}_out_segments", segments_array(ts))
        return turns, exclusive_turns

    def _finish(self, result: Result, hook: Hook | None) -> Result:
        if hook:
            stage = self.description.named("annotation")
            hook(stage, "out_diarization.rttm", result.rttm)
            hook(stage, "out_exclusive.rttm", result.exclusive_rttm)
        return result


class Embedder:
    """Stages 06-08 (`get_embeddings`) chunk batch by chunk batch, overlapped with
    segmentation: a batch of `Embedding.batch_size` consecutive chunks is crop,
    fbank, masks, trunk and head as soon as its segmentation is known (masks are
    per chunk; the trunk needs none), by background workers and, in `finish`, the
    calling thread. Batches are the same whoever runs them, so results are too.

    Chunks where nobody is active get the head's zero-mask embedding without
    touching their audio (with the trunk/head split); with `keep` (dumps) every
    chunk's crop and fbank are computed and kept."""

    def __init__(self, pipeline: Pipeline, native: np.ndarray, sample_rate: int, num_chunks: int,
                 keep: bool = False, workers: int = 1):
        self.pipeline, self.native, self.sample_rate = pipeline, native, sample_rate
        self.num_chunks, self.keep = num_chunks, keep
        self.batch = pipeline.embedding.batch_size
        self.binarized: np.ndarray | None = None  # allocated with the first batch
        self.weights: np.ndarray | None = None
        self.embeddings: np.ndarray | None = None
        self.kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.ready = 0  # chunks segmented so far
        self.taken = 0  # first chunk of the next batch to embed
        self.done = 0  # chunks embedded
        self.error: BaseException | None = None
        self.closed = False
        self.condition = threading.Condition()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(max(workers, 1) - 1)]
        for thread in self.threads:
            thread.start()

    def add(self, multilabel: np.ndarray) -> None:
        """Segmentation of the next chunks, in order; wakes a worker."""
        with self.condition:
            if self.binarized is None:
                _, num_frames, num_speakers = multilabel.shape
                embedding = self.pipeline.embedding
                self.binarized = np.empty((self.num_chunks, num_frames, num_speakers), dtype=multilabel.dtype)
                self.weights = np.empty((self.num_chunks, num_speakers, num_frames), dtype=np.float32)
                self.embeddings = np.empty((self.num_chunks, num_speakers, embedding.dimension), dtype=np.float32)
                self.min_num_frames = embedding.min_num_frames(num_frames, self.pipeline.chunks.duration)
            self.binarized[self.ready : self.ready + len(multilabel)] = multilabel
            self.ready += len(multilabel)
            self.condition.notify_all()

    def _take(self, wait: bool) -> int | None:
        """First chunk of a batch whose segmentation is known; None when all are taken."""
        with self.condition:
            while True:
                if self.closed or self.error or self.taken >= self.num_chunks:
                    return None
                if self.ready >= min(self.taken + self.batch, self.num_chunks):
                    self.taken += self.batch
                    return self.taken - self.batch
                if not wait:
                    return None
                self.condition.wait()

    def _work(self) -> None:
        try:
            while (start := self._take(wait=True)) is not None:
                self._run(start)
        except BaseException as error:  # handed to the calling thread in finish()
            with self.condition:
                self.error = error
                self.condition.notify_all()

    def _run(self, start: int) -> None:
        """Stages 06-08 on chunks [start, start + batch)."""
        pipeline, embedding = self.pipeline, self.pipeline.embedding
        part = slice(start, min(start + self.batch, self.num_chunks))
        chunks = pipeline.chunks
        weights = embedding_masks(self.binarized[part], self.min_num_frames,
                                  exclude_overlap=pipeline.parameters.exclude_overlap)
        self.weights[part] = weights
        run = np.any(weights > 0, axis=(1, 2)) if embedding.split else np.ones(len(weights), dtype=bool)
        cropped = np.ones_like(run) if self.keep else run  # dumps want every chunk's fbank
        out = np.empty((len(weights), weights.shape[1], embedding.dimension), dtype=np.float32)
        if not run.all():
            out[~run] = embedding.zero_mask_embedding(weights.shape[2])
        if cropped.any():
            starts = chunks.start + np.arange(part.start, part.stop)[cropped] * chunks.step
            crops = audio.crop_chunks(self.native, self.sample_rate, starts, chunks.duration, embedding.sample_rate)
            last = releases_arenas(part.stop, self.num_chunks)
            if embedding.chain is not None and cropped.sum() == run.sum():
                # fbank graph, trunk and head through IOBinding: no host copy in between
                out[run], features = embedding.chain(crops, weights[run], last=last, keep_fbank=self.keep)
            else:
                features = embedding.fbank(crops)
                if run.any():
                    out[run] = embedding(features[run[cropped]], weights[run], last=last)
            if self.keep:
                self.kept[start] = (crops, features)
        self.embeddings[part] = out
        with self.condition:
            self.done += len(weights)
            self.condition.notify_all()

    def finish(self, progress: Progress | None = None) -> np.ndarray:
        """Embed what is left on this thread too, wait for the workers; (chunks, speakers, dim)."""
        while True:
            start = self._take(wait=False)
            if start is not None:
                self._run(start)
            with self.condition:
                if start is None and self.done < self.num_chunks and not self.error:
                    self.condition.wait()
                if self.error:
                    raise self.error
                done = self.done
            if progress:
                progress("embeddings", done, self.num_chunks)
            if done >= self.num_chunks:
                return self.embeddings

    @property
    def crops(self) -> list[np.ndarray]:
        return [self.kept[start][0] for start in sorted(self.kept)]

    @property
    def features(self) -> list[np.ndarray]:
        return [self.kept[start][1] for start in sorted(self.kept)]

    def release(self) -> None:
        """Drop what only stages 06-08 need (the native audio above all: 230 MB an hour)."""
        self.native = self.binarized = self.weights = None
        self.kept = {}

    def close(self) -> None:
        """Stop the workers (after the batch each is running)."""
        with self.condition:
            self.closed = True
            self.condition.notify_all()
        for thread in self.threads:
            thread.join()

    def __enter__(self) -> "Embedder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def segments_array(turns: list[reconstruct.Turn]) -> np.ndarray:
    """Turns as an (n, 3) float64 array: start, end, cluster index (dump form)."""
    return np.array([[t.start, t.end, t.label] for t in turns], dtype=np.float64).reshape(-1, 3)


def _speaker_embeddings(centroids: np.ndarray, labels: dict[int, str]) -> np.ndarray:
    """Centroids in `diarization.labels()` order, zero rows for speakers without one."""
    if len(labels) > centroids.shape[0]:
        centroids = np.pad(centroids, ((0, len(labels) - centroids.shape[0]), (0, 0)))
    inverse = {label: index for index, label in labels.items()}
    return centroids[[inverse[label] for label in sorted(inverse)]]
