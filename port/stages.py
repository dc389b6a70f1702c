"""Each stage of the port run alone on another side's dumped inputs.

`run_stage(stage, dumps, pipeline)` feeds the port the inputs the reference dumped
(`dumps.load(stage, name)`) and returns the port's outputs under the same names,
so a stage's drift is measured without any drift from earlier stages. The
functions called are the ones `port.pipeline` runs end to end; the dumps each
runner reads are the stage's `inputs` in `port.vocabulary` (a test holds them to it).
`runner(pipeline)` is what the harness's verdict is handed (it never imports this).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import audio, clustering, reconstruct, segmentation
from .aggregate import SlidingWindow
from .dumps import DumpReader, decode_optional, encode_window
from .embedding import masks as embedding_masks
from .pipeline import Pipeline, segments_array
from .vbx import cluster_vbx
from .vocabulary import pipeline as describe


def _frames(dumps: DumpReader, stage: str) -> SlidingWindow:
    start, duration, step = dumps.load(stage, "out_frames")
    return SlidingWindow(float(start), float(duration), float(step))


def _calls(dumps: DumpReader, stage: str, suffix: str) -> list[int]:
    """Indices k of the call<k>_... names present for a stage."""
    found = set()
    for name in dumps.names(stage):
        if name.startswith("call") and name.endswith(suffix):
            found.add(int(name[4:].split("_", 1)[0]))
    return sorted(found)


def audio_stage(d: DumpReader, p: Pipeline) -> dict:
    native = d.load("01-audio", "in_waveform")
    rate = int(d.load("01-audio", "in_sample_rate"))
    return {"out_waveform": audio.downmix_and_resample(native, rate, p.segmentation.sample_rate)[0]}


def chunks_stage(d: DumpReader, p: Pipeline) -> dict:
    window_size, step_size = segmentation.window_sizes(p.segmentation.sample_rate, p.chunks.duration, p.chunks.step)
    return {"out_chunks": segmentation.slide(d.load("01-audio", "out_waveform"), window_size, step_size)}


def segmentation_stage(d: DumpReader, p: Pipeline) -> dict:
    chunks = d.load("02-chunks", "out_chunks")
    size = p.segmentation.batch_size
    return {"out_log_probs": np.concatenate([p.segmentation(chunks[i : i + size]) for i in range(0, len(chunks), size)])}


def multilabel_stage(d: DumpReader, p: Pipeline) -> dict:
    return {"out_multilabel": p.segmentation.to_multilabel(d.load("03-segmentation", "out_log_probs"))}


def count_stage(d: DumpReader, p: Pipeline) -> dict:
    count, frames = segmentation.speaker_count(
        d.load("04-multilabel", "out_multilabel"), p.chunks, p.segmentation.receptive_field
    )
    return {"out_count": count, "out_frames": encode_window(frames)}


def fbank_stage(d: DumpReader, p: Pipeline) -> dict:
    num_chunks = d.load("04-multilabel", "out_multilabel").shape[0]
    starts = p.chunks.start + np.arange(num_chunks) * p.chunks.step
    crops = audio.crop_chunks(
        d.load("01-audio", "in_waveform"), int(d.load("01-audio", "in_sample_rate")), starts,
        p.chunks.duration, p.embedding.sample_rate,
    )
    # fbank on the reference's own crops: its drift, not the resampler's
    return {"out_waveforms": crops, "out_fbank": p.embedding.fbank(d.load("06-fbank", "out_waveforms"))}


def masks_stage(d: DumpReader, p: Pipeline) -> dict:
    binarized = d.load("04-multilabel", "out_multilabel")
    min_num_frames = p.embedding.min_num_frames(binarized.shape[1], p.chunks.duration)
    return {"out_masks": embedding_masks(binarized, min_num_frames, p.parameters.exclude_overlap)}


def embeddings_stage(d: DumpReader, p: Pipeline) -> dict:
    fbank = d.load("06-fbank", "out_fbank")
    weights = d.load("07-masks", "out_masks")
    size = p.embedding.batch_size
    return {"out_embeddings": np.concatenate(
        [p.embedding(fbank[i : i + size], weights[i : i + size]) for i in range(0, len(fbank), size)]
    )}


def filter_stage(d: DumpReader, p: Pipeline) -> dict:
    kept, chunk_idx, speaker_idx = clustering.filter_embeddings(
        d.load("08-embeddings", "out_embeddings"), d.load("04-multilabel", "out_multilabel")
    )
    return {"out_embeddings": kept, "out_chunk_idx": chunk_idx, "out_speaker_idx": speaker_idx}


def linkage_stage(d: DumpReader, p: Pipeline) -> dict:
    if not d.has("10-linkage", "in_X"):
        return {}
    method = p.parameters.method or "centroid"  # VBxClustering's AHC is always centroid linkage
    return {"out_Z": clustering.linkage(d.load("10-linkage", "in_X"), method=method, metric="euclidean")}


def fcluster_stage(d: DumpReader, p: Pipeline) -> dict:
    out = {}
    for k in _calls(d, "11-fcluster", "_in_Z"):
        Z = d.load("11-fcluster", f"call{k}_in_Z")
        t = float(d.load("11-fcluster", f"call{k}_in_t"))
        out[f"call{k}_out_labels"] = clustering.fcluster(Z, t, criterion="distance")
    if d.has("11-fcluster", "in_min_clusters"):
        out["out_clusters"] = np.asarray(clustering.cluster(
            d.load("09-filter", "out_embeddings"),
            min_clusters=decode_optional(d.load("11-fcluster", "in_min_clusters")),
            max_clusters=decode_optional(d.load("11-fcluster", "in_max_clusters")),
            num_clusters=decode_optional(d.load("11-fcluster", "in_num_clusters")),
            threshold=float(d.load("11-fcluster", "in_threshold")),
            min_cluster_size=int(d.load("11-fcluster", "in_min_cluster_size")),
            method=p.parameters.method,
        ))
    return out


def assign_stage(d: DumpReader, p: Pipeline) -> dict:
    embeddings = d.load("08-embeddings", "out_embeddings")
    if not d.has("11-fcluster", "out_clusters"):  # clustering skipped (one cluster, < 2 embeddings)
        hard, soft, centroids = clustering.clustering(
            embeddings,
            d.load("04-multilabel", "out_multilabel"),
            num_clusters=decode_optional(d.load("12-assign", "in_num_clusters")),
            min_clusters=decode_optional(d.load("12-assign", "in_min_clusters")),
            max_clusters=decode_optional(d.load("12-assign", "in_max_clusters")),
        )
    else:
        hard, soft, centroids = clustering.assign_embeddings(
            embeddings, d.load("09-filter", "out_chunk_idx"), d.load("09-filter", "out_speaker_idx"),
            d.load("11-fcluster", "out_clusters"),
        )
    return {"out_hard_clusters": hard, "out_soft_clusters": soft, "out_centroids": centroids}


def reconstruct_stage(d: DumpReader, p: Pipeline) -> dict:
    binarized = d.load("04-multilabel", "out_multilabel")
    count_frames = _frames(d, "05-count")
    stage = describe(d.pipeline).named("reconstruct")
    out = {}
    for k in _calls(d, stage, "_out_discrete"):
        discrete, frames, activations = reconstruct.reconstruct(
            binarized, p.chunks, d.load(stage, f"call{k}_in_hard_clusters"),
            d.load(stage, f"call{k}_in_count"), count_frames,
        )
        out[f"call{k}_out_discrete"] = discrete
        if d.has(stage, f"call{k}_out_activations"):  # dumps made before the name existed lack it
            out[f"call{k}_out_activations"] = activations
        out["out_frames"] = encode_window(frames)
    return out


def annotation_stage(d: DumpReader, p: Pipeline) -> dict:
    description = describe(d.pipeline)
    source, stage = description.named("reconstruct"), description.named("annotation")
    uri = d.manifest.get("uri", d.path.name)
    if source not in d.stages():  # nobody speaks: pyannote returned early, only the (empty) RTTMs
        empty = reconstruct.to_rttm([], uri, {})
        return {name: empty for name in ("out_diarization.rttm", "out_exclusive.rttm") if d.has(stage, name)}
    frames = _frames(d, source)
    min_duration_off = float(d.load(stage, "in_min_duration_off"))
    out, all_turns = {}, []
    for k in _calls(d, source, "_out_discrete"):
        turns = reconstruct.to_annotation(
            d.load(source, f"call{k}_out_discrete"), frames, min_duration_off=min_duration_off
        )
        out[f"call{k}_out_segments"] = segments_array(turns)
        all_turns.append(turns)
    if all_turns:
        labels = reconstruct.speaker_labels(all_turns[0])
        out["out_diarization.rttm"] = reconstruct.to_rttm(all_turns[0], uri, labels)
        if len(all_turns) > 1:
            out["out_exclusive.rttm"] = reconstruct.to_rttm(all_turns[1], uri, labels)
    return out


# --------------------------------------------------------------------------- community-1
def _outputs(stage: str):
    """A trace that keeps what one stage outputs: (trace, kept)."""
    kept: dict = {}

    def trace(s: str, name: str, value) -> None:
        if s == stage and (name.startswith("out_") or "_out_" in name):
            kept[name] = value

    return trace, kept


def ahc_stage(d: DumpReader, p: Pipeline) -> dict:
    trace, out = _outputs("11-fcluster")
    clustering.vbx_ahc_labels(d.load("11-fcluster", "call0_in_Z"), float(d.load("11-fcluster", "call0_in_t")), trace)
    return out


def plda_stage(d: DumpReader, p: Pipeline) -> dict:
    trace, out = _outputs("12-plda")
    clustering.vbx_plda(p.plda, d.load("09-filter", "out_embeddings"), trace)
    return out


def vbx_stage(d: DumpReader, p: Pipeline) -> dict:
    trace, out = _outputs("13-vbx")
    cluster_vbx(
        d.load("11-fcluster", "out_ahc_clusters"), d.load("12-plda", "out_fea"), d.load("12-plda", "out_phi"),
        Fa=float(d.load("13-vbx", "in_Fa")), Fb=float(d.load("13-vbx", "in_Fb")),
        maxIters=int(d.load("13-vbx", "in_max_iters")), init_smoothing=float(d.load("13-vbx", "in_init_smoothing")),
        trace=trace,
    )
    return out


def centroids_stage(d: DumpReader, p: Pipeline) -> dict:
    trace, out = _outputs("14-centroids")
    clustering.vbx_centroids(
        d.load("13-vbx", "out_gamma"), d.load("13-vbx", "out_pi"), d.load("09-filter", "out_embeddings"),
        np.array(d.load("10-linkage", "in_X")),
        num_clusters=decode_optional(d.load("14-centroids", "in_num_clusters")),
        min_clusters=decode_optional(d.load("14-centroids", "in_min_clusters")),
        max_clusters=decode_optional(d.load("14-centroids", "in_max_clusters")),
        trace=trace,
    )
    return out


def vbx_assign_stage(d: DumpReader, p: Pipeline) -> dict:
    trace, out = _outputs("15-assign")
    embeddings, binarized = d.load("08-embeddings", "out_embeddings"), d.load("04-multilabel", "out_multilabel")
    if not d.has("14-centroids", "out_centroids"):  # < 2 embeddings: pyannote's early exit
        clustering.VBxClustering(p.plda)(embeddings, binarized, trace=trace)
    else:
        constrained = not d.has("14-centroids", "out_kmeans_clusters")  # K-Means turns it off
        clustering.vbx_assign(embeddings, d.load("14-centroids", "out_centroids"), binarized, constrained, trace=trace)
    return out


FRONT_END: dict[str, Callable[[DumpReader, Pipeline], dict]] = {
    "01-audio": audio_stage,
    "02-chunks": chunks_stage,
    "03-segmentation": segmentation_stage,
    "04-multilabel": multilabel_stage,
    "05-count": count_stage,
    "06-fbank": fbank_stage,
    "07-masks": masks_stage,
    "08-embeddings": embeddings_stage,
    "09-filter": filter_stage,
    "10-linkage": linkage_stage,
}

# each pipeline's stages, by the names of its description (port.vocabulary)
RUNNERS: dict[str, dict[str, Callable[[DumpReader, Pipeline], dict]]] = {
    "3.1": {
        **FRONT_END,
        "11-fcluster": fcluster_stage,
        "12-assign": assign_stage,
        "13-reconstruct": reconstruct_stage,
        "14-annotation": annotation_stage,
    },
    "community-1": {
        **FRONT_END,
        "11-fcluster": ahc_stage,
        "12-plda": plda_stage,
        "13-vbx": vbx_stage,
        "14-centroids": centroids_stage,
        "15-assign": vbx_assign_stage,
        "16-reconstruct": reconstruct_stage,
        "17-annotation": annotation_stage,
    },
}


def run_stage(stage: str, dumps: DumpReader, pipeline: Pipeline) -> dict:
    """The port's outputs for `stage`, computed from `dumps`' inputs (empty when the
    reference never reached that stage, e.g. after an early exit on silence)."""
    if not dumps.names(stage):
        return {}
    return RUNNERS[dumps.pipeline][stage](dumps, pipeline)


def runner(pipeline: Pipeline) -> Callable[[str, DumpReader], dict]:
    """`run_stage` bound to a port pipeline: what `harness.compare.judge` is handed."""
    return lambda stage, dumps: run_stage(stage, dumps, pipeline)
