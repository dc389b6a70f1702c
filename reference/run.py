"""pyannote.audio's own SpeakerDiarization, instrumented: every stage dumped.

The pipeline is pyannote.audio 4.0.7's `SpeakerDiarization` in the 3.1
configuration (AgglomerativeClustering, centroid linkage, overlap excluded from
embeddings). `apply()` runs untouched; the instrumentation only wraps the methods
it calls (and scipy's `linkage` / `fcluster` inside pyannote's clustering module)
to copy their inputs and outputs into the dump, then calls the original. A test
proves the instrumented run returns what an untouched `pipeline(file)` returns.

Audio is decoded by pyannote itself: the file path goes to `pipeline(path,
preload=True)`, so torchcodec (FFmpeg) decodes it as `Audio()(file)` and pyannote
does its own downmixing, resampling (torchaudio) and per-chunk cropping from that
decode. `preload=True` is pyannote's own option; without it pyannote re-decodes
every embedding chunk by seeking, which on MP3 fails its own sample-count check
(158 895 samples instead of 160 000 on an AMI excerpt) and on Ogg Vorbis gives
crops up to 0.24 away from the whole-file decode. The stage-01 `in_waveform` dump
is that decode, captured from `prepare_one`. When torchcodec cannot load FFmpeg,
the port's decode is handed to pyannote in memory instead, and the run says that
stage 01 is then not an independent check.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from port import audio as port_audio
from port.dumps import encode_optional, encode_window
from port.pipeline import Parameters

from . import models

Hook = Callable[[str, str, object], None]


def _unused_plda():
    """pyannote 4.0.7 loads a PLDA in the constructor even when AgglomerativeClustering
    never uses it; an instance of pyannote's PLDA class made without touching the hub."""
    from pyannote.audio.core.plda import PLDA

    return PLDA.__new__(PLDA)


def torch_device(device: str = "cpu") -> str:
    """"cuda" or "cpu" for a --device choice of auto, cpu or cuda, as torch sees it."""
    import torch

    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        from port.runtime import ModelError

        raise ModelError("--device cuda asked for, but torch sees no CUDA device")
    return "cuda"


def build_pipeline(segmentation_model, embedding_model, parameters: Parameters | None = None, device: str = "cpu"):
    """SpeakerDiarization with the 3.1 configuration, instantiated, on `device`.

    On CUDA, TensorFloat-32 is off for parity (float32 matmuls and convolutions),
    as pyannote's own `fix_reproducibility` also sets it in `apply()`."""
    from pyannote.audio.pipelines import SpeakerDiarization

    parameters = parameters or Parameters()
    pipeline = SpeakerDiarization(
        segmentation=segmentation_model,
        segmentation_step=parameters.segmentation_step,
        embedding=embedding_model,
        embedding_exclude_overlap=parameters.exclude_overlap,
        plda=_unused_plda(),
        clustering="AgglomerativeClustering",
        embedding_batch_size=parameters.embedding_batch_size,
        segmentation_batch_size=parameters.segmentation_batch_size,
    )
    pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": parameters.min_duration_off},
            "clustering": {
                "method": parameters.method,
                "min_cluster_size": parameters.min_cluster_size,
                "threshold": parameters.threshold,
            },
        }
    )
    if torch_device(device) == "cuda":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        pipeline.to(torch.device("cuda"))
    return pipeline


_PYANNOTE_DECODER: list = []


def pyannote_decoder() -> str | None:
    """"torchcodec X (FFmpeg Y)" when pyannote can decode files itself, else None."""
    if not _PYANNOTE_DECODER:
        try:
            import io
            import wave

            import torchcodec
            from pyannote.audio.core import io as pyannote_io
            from torchcodec._core import get_ffmpeg_library_versions

            if not pyannote_io.TORCHCODEC_AVAILABLE:
                raise RuntimeError("pyannote found no torchcodec")
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as handle:  # a 10 ms probe, decoded in memory
                handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
                handle.writeframes(b"\0\0" * 160)
            torchcodec.decoders.AudioDecoder(buffer.getvalue()).get_all_samples()
            ffmpeg = get_ffmpeg_library_versions().get("ffmpeg_version", "?")
            _PYANNOTE_DECODER.append(f"torchcodec {torchcodec.__version__} (FFmpeg {ffmpeg})")
        except Exception:  # noqa: BLE001 - no FFmpeg shared libraries, or no torchcodec
            _PYANNOTE_DECODER.append(None)
    return _PYANNOTE_DECODER[0]


def audio_file(path: str | Path) -> dict:
    """The in-memory AudioFile pyannote gets: native rate and channels, decoded by the port."""
    import torch

    waveform, sample_rate = port_audio.load(path)
    return {"waveform": torch.from_numpy(waveform), "sample_rate": sample_rate, "uri": Path(path).stem}


def _copy(value):
    """A snapshot of a value pyannote may later modify in place."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy().copy()
    if hasattr(value, "data") and hasattr(value, "sliding_window"):
        return np.array(value.data)
    return np.array(value)


def annotation_segments(annotation) -> np.ndarray:
    """(n, 3) float64: start, end, label (an integer cluster index) in itertracks order."""
    rows = [[s.start, s.end, label] for s, _, label in annotation.itertracks(yield_label=True)]
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


class _Proxy:
    """Stands in for an object whose __call__ we wrap; everything else is forwarded."""

    def __init__(self, target, call):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_call", call)

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._target, name)

    def __setattr__(self, name, value):
        setattr(self._target, name, value)


@contextlib.contextmanager
def instrument(pipeline, dump: Hook):
    """Wrap what `SpeakerDiarization.apply` calls so each stage reaches `hook`."""
    import pyannote.audio.pipelines.clustering as clustering_module

    seg_inference = pipeline._segmentation
    seg_model = seg_inference.model
    emb = pipeline._embedding
    emb_model = emb.model_
    audio = pipeline._audio
    clustering = pipeline.clustering
    state: dict = {"chunks": [], "log_probs": [], "crops": [], "fbank": [], "masks": [], "embedding": False}
    calls = {"fcluster": 0, "reconstruct": 0, "annotation": 0}
    saved = []

    def patch(owner, name, value):
        # instance (or module) attributes only, so that restoring is exact
        saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    original_prepare_one = pipeline.prepare_one

    def prepare_one(file, preload=False):
        file = original_prepare_one(file, preload=preload)
        dump("01-audio", "in_waveform", _copy(file["waveform"]))
        dump("01-audio", "in_sample_rate", np.int64(file["sample_rate"]))
        return file

    patch(pipeline, "prepare_one", prepare_one)

    original_slide = seg_inference.slide

    def slide(waveform, sample_rate, hook=None):
        dump("01-audio", "out_waveform", _copy(waveform))
        return original_slide(waveform, sample_rate, hook=hook)

    patch(seg_inference, "slide", slide)

    original_forward = seg_model.forward

    def forward(chunks, *args, **kwargs):
        out = original_forward(chunks, *args, **kwargs)
        state["chunks"].append(_copy(chunks))
        state["log_probs"].append(_copy(out))
        return out

    patch(seg_model, "forward", forward)

    original_get_segmentations = pipeline.get_segmentations

    def get_segmentations(file, hook=None):
        segmentations = original_get_segmentations(file, hook=hook)
        dump("02-chunks", "out_chunks", np.concatenate(state["chunks"]))
        dump("03-segmentation", "out_log_probs", np.concatenate(state["log_probs"]))
        dump("04-multilabel", "out_multilabel", _copy(segmentations))
        return segmentations

    patch(pipeline, "get_segmentations", get_segmentations)

    original_speaker_count = pipeline.speaker_count

    def speaker_count(binarized, frames, warm_up=(0.1, 0.1)):
        count = original_speaker_count(binarized, frames, warm_up=warm_up)
        dump("05-count", "out_count", _copy(count))
        dump("05-count", "out_frames", encode_window(count.sliding_window))
        return count

    patch(pipeline, "speaker_count", speaker_count)

    original_crop = audio.crop

    def crop(file, segment, mode="raise"):
        waveform, sample_rate = original_crop(file, segment, mode=mode)
        state["crops"].append(_copy(waveform))
        return waveform, sample_rate

    patch(audio, "crop", crop)

    original_compute_fbank = emb_model.compute_fbank

    def compute_fbank(waveforms):
        features = original_compute_fbank(waveforms)
        if state["embedding"]:  # not min_num_samples' probing calls on random audio
            state["fbank"].append(_copy(features))
        return features

    patch(emb_model, "compute_fbank", compute_fbank)

    def embed(waveforms, masks=None):
        state["masks"].append(_copy(masks))
        state["embedding"] = True
        try:
            return emb(waveforms, masks=masks)
        finally:
            state["embedding"] = False

    patch(pipeline, "_embedding", _Proxy(emb, embed))

    original_get_embeddings = pipeline.get_embeddings

    def get_embeddings(file, binarized, exclude_overlap=False, hook=None):
        embeddings = original_get_embeddings(file, binarized, exclude_overlap=exclude_overlap, hook=hook)
        num_chunks, num_frames, num_speakers = binarized.data.shape
        fbank = np.concatenate(state["fbank"])
        per_chunk = fbank.reshape(num_chunks, num_speakers, *fbank.shape[1:])
        if not all(np.array_equal(per_chunk[:, 0], per_chunk[:, s]) for s in range(1, num_speakers)):
            raise RuntimeError("pyannote computed different fbank for speakers of one chunk")
        dump("06-fbank", "out_waveforms", np.stack(state["crops"]))
        dump("06-fbank", "out_fbank", per_chunk[:, 0])
        masks = np.concatenate(state["masks"]).reshape(num_chunks, num_speakers, num_frames)
        dump("07-masks", "out_masks", masks)
        dump("08-embeddings", "out_embeddings", np.array(embeddings))
        return embeddings

    patch(pipeline, "get_embeddings", get_embeddings)

    original_filter = clustering.filter_embeddings

    def filter_embeddings(embeddings, segmentations=None, **kwargs):
        kept, chunk_idx, speaker_idx = original_filter(embeddings, segmentations=segmentations, **kwargs)
        dump("09-filter", "out_embeddings", np.array(kept))
        dump("09-filter", "out_chunk_idx", np.array(chunk_idx))
        dump("09-filter", "out_speaker_idx", np.array(speaker_idx))
        return kept, chunk_idx, speaker_idx

    patch(clustering, "filter_embeddings", filter_embeddings)

    original_linkage = clustering_module.linkage

    def linkage(X, *args, **kwargs):
        X_in = np.array(X)
        Z = original_linkage(X, *args, **kwargs)
        dump("10-linkage", "in_X", X_in)
        dump("10-linkage", "out_Z", np.array(Z))
        return Z

    patch(clustering_module, "linkage", linkage)

    original_fcluster = clustering_module.fcluster

    def fcluster(Z, t, *args, **kwargs):
        k = calls["fcluster"]
        calls["fcluster"] += 1
        Z_in = np.array(Z)
        labels = original_fcluster(Z, t, *args, **kwargs)
        dump("11-fcluster", f"call{k}_in_Z", Z_in)
        dump("11-fcluster", f"call{k}_in_t", np.float64(t))
        dump("11-fcluster", f"call{k}_out_labels", np.array(labels))
        return labels

    patch(clustering_module, "fcluster", fcluster)

    original_cluster = clustering.cluster

    def cluster(embeddings, min_clusters=None, max_clusters=None, num_clusters=None):
        for name, value in (
            ("min_clusters", min_clusters),
            ("max_clusters", max_clusters),
            ("num_clusters", num_clusters),
            ("threshold", clustering.threshold),
            ("min_cluster_size", clustering.min_cluster_size),
        ):
            dump("11-fcluster", f"in_{name}", encode_optional(value))
        clusters = original_cluster(embeddings, min_clusters=min_clusters, max_clusters=max_clusters, num_clusters=num_clusters)
        dump("11-fcluster", "out_clusters", np.array(clusters))
        return clusters

    patch(clustering, "cluster", cluster)

    def cluster_all(embeddings=None, segmentations=None, num_clusters=None, min_clusters=None, max_clusters=None, **kwargs):
        for name, value in (("num_clusters", num_clusters), ("min_clusters", min_clusters), ("max_clusters", max_clusters)):
            dump("12-assign", f"in_{name}", encode_optional(value))
        hard, soft, centroids = clustering(
            embeddings=embeddings, segmentations=segmentations, num_clusters=num_clusters,
            min_clusters=min_clusters, max_clusters=max_clusters, **kwargs,
        )
        dump("12-assign", "out_hard_clusters", np.array(hard))
        dump("12-assign", "out_soft_clusters", np.array(soft))
        dump("12-assign", "out_centroids", np.array(centroids))
        return hard, soft, centroids

    patch(pipeline, "clustering", _Proxy(clustering, cluster_all))

    original_reconstruct = pipeline.reconstruct

    def reconstruct(segmentations, hard_clusters, count):
        k = calls["reconstruct"]
        calls["reconstruct"] += 1
        dump("13-reconstruct", f"call{k}_in_hard_clusters", np.array(hard_clusters))
        dump("13-reconstruct", f"call{k}_in_count", _copy(count))
        discrete = original_reconstruct(segmentations, hard_clusters, count)
        dump("13-reconstruct", f"call{k}_out_discrete", _copy(discrete))
        dump("13-reconstruct", "out_frames", encode_window(discrete.sliding_window))
        return discrete

    patch(pipeline, "reconstruct", reconstruct)

    original_to_annotation = pipeline.to_annotation

    def to_annotation(discrete, min_duration_on=0.0, min_duration_off=0.0):
        k = calls["annotation"]
        calls["annotation"] += 1
        annotation = original_to_annotation(discrete, min_duration_on=min_duration_on, min_duration_off=min_duration_off)
        dump("14-annotation", "in_min_duration_off", np.float64(min_duration_off))
        dump("14-annotation", f"call{k}_out_segments", annotation_segments(annotation))
        return annotation

    patch(pipeline, "to_annotation", to_annotation)
    try:
        yield
    finally:
        for owner, name, previous in reversed(saved):
            if previous is _MISSING:
                owner.__dict__.pop(name, None)  # not delattr: pyannote.pipeline would drop a sub-pipeline
            else:
                setattr(owner, name, previous)


_MISSING = object()


@dataclass
class ReferenceResult:
    output: object  # pyannote's DiarizeOutput
    uri: str
    seconds: dict = field(default_factory=dict)
    decoder: str = ""  # who decoded the file for pyannote

    @property
    def rttm(self) -> str:
        return self.output.speaker_diarization.to_rttm()

    @property
    def exclusive_rttm(self) -> str:
        return self.output.exclusive_speaker_diarization.to_rttm()


def run(
    path: str | Path,
    pipeline,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    hook: Hook | None = None,
    progress: Callable | None = None,
) -> ReferenceResult:
    """pyannote's pipeline on `path`, stages sent to `hook`; pyannote decodes the file
    itself (torchcodec) when it can, else it gets the port's decode in memory (see
    `pyannote_decoder`). `progress` is handed to pyannote as its own `apply(hook=...)`."""
    decoder = pyannote_decoder()
    if decoder:
        file, preload = {"audio": str(path), "uri": Path(path).stem}, True
    else:
        file, preload = audio_file(path), False
        decoder = f"port: {port_audio.decoder(path)} (torchcodec cannot load FFmpeg)"
    began = time.perf_counter()
    context = instrument(pipeline, hook) if hook is not None else contextlib.nullcontext()
    with context:
        output = pipeline(
            file, preload=preload, num_speakers=num_speakers, min_speakers=min_speakers,
            max_speakers=max_speakers, hook=progress,
        )
    result = ReferenceResult(output, file["uri"], {"total": time.perf_counter() - began}, decoder)
    if hook is not None:
        hook("14-annotation", "out_diarization.rttm", result.rttm)
        hook("14-annotation", "out_exclusive.rttm", result.exclusive_rttm)
    return result


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict:
    import numpy
    import onnxruntime
    import pyannote.audio
    import scipy
    import torch

    return {
        "python": platform.python_version(),
        "pyannote.audio": pyannote.audio.__version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }
