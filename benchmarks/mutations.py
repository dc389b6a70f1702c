#!/usr/bin/env python3
"""The mutation matrix: how many realistic porting bugs the harness catches, and where.

    python benchmarks/mutations.py                    # every mutation, table and score
    python benchmarks/mutations.py --only fbank_povey_window,count_floor
    python benchmarks/mutations.py --json mutations.json

Each mutation is one bug that real ports of pyannote have had (wrong fbank options,
frame timing, resampler, powerset order, count rounding, clustering details, ...),
applied to the port one at a time by monkeypatching a port function or parameter
inside a context manager (no file is edited). The mutated port is run on bundled
recordings and judged exactly as ``verify.py run`` judges a port: chain comparison of
its dump tree plus isolated comparison of every stage on the reference's inputs;
the first failing stage is the first isolated failure in pipeline order, else the
first chain failure.

A mutation whose port output (every dumped value, and every isolated comparison) is
identical to the unmutated port's on all its recordings changed nothing the harness
could see: it is shown as "no effect", with the reason, and not scored.

Score: caught / counted, and how many were first caught at the stage where the bug
lives. Models: the fixture models (reference/fixtures), exported to ONNX.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from port import audio, clustering, embedding, reconstruct, segmentation  # noqa: E402
from port import linkage as hierarchy  # noqa: E402
from port import fbank as kaldi  # noqa: E402
from port.aggregate import SlidingWindow, aggregate, trim  # noqa: E402
from port.dumps import DumpReader  # noqa: E402
from port.stages import runner  # noqa: E402

DATA = REPO / "tests" / "data"
RECORDINGS = {
    "sample": DATA / "sample.wav",  # 16 kHz mono, 30 s, lengths a multiple of the step
    "test_with_noise_48k": DATA / "test_with_noise_48k.wav",  # resampled 48 -> 16 kHz
    "ami_padded": DATA / "ami_padded.wav",  # last chunk zero-padded (23.45 s)
    "ami_8k": DATA / "ami_8k.wav",  # upsampled 8 -> 16 kHz
    "ami_stereo": DATA / "ami_stereo.wav",  # different speech per channel: downmix
    "ami_stereo_5s": DATA / "ami_stereo_5s.wav",  # 5 s stereo, one zero-padded chunk: wav_norm1d's precision matters
}


# ----------------------------------------------------------------------------- patching
@contextlib.contextmanager
def replaced(original: Callable, replacement: Callable):
    """Bind `replacement` wherever a port module holds `original` (module globals and
    `from ... import` names alike), for the duration of the block."""
    spots = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "port" or name.startswith("port.")):
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                spots.append((module, attr))
    if not spots:
        raise RuntimeError(f"{original!r} is bound nowhere in port/: the mutation would do nothing")
    for module, attr in spots:
        setattr(module, attr, replacement)
    try:
        yield
    finally:
        for module, attr in spots:
            setattr(module, attr, original)


@contextlib.contextmanager
def attribute(owner, name: str, value):
    """Set `owner.name = value` for the duration of the block."""
    had = name in vars(owner)
    old = vars(owner).get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, old)
        else:
            delattr(owner, name)


class _Numpy:
    """numpy with a few functions swapped: a port module's ``np`` during a mutation."""

    def __init__(self, **overrides):
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(np, name)


class _Float16Session:
    """An ONNX session whose inputs and outputs go through float16 (half-precision inference)."""

    def __init__(self, session):
        self.session = session

    def run(self, names, feeds, run_options=None):
        half = {k: np.asarray(v).astype(np.float16).astype(np.float32) for k, v in feeds.items()}
        return [np.asarray(o).astype(np.float16).astype(np.float32) for o in self.session.run(names, half, run_options)]

    def __getattr__(self, name):
        return getattr(self.session, name)


class _Memo:
    """An ONNX session remembering its outputs by input bytes. Models are pure functions
    of their inputs, so a mutation that leaves a model's inputs unchanged gets the same
    outputs without running it again; one that changes them misses and runs it."""

    def __init__(self, session):
        self.session = session
        self.cache: dict = {}

    def run(self, names, feeds, run_options=None):
        import hashlib

        key = [repr(names)]
        for k in sorted(feeds):
            v = np.ascontiguousarray(feeds[k])
            key.append(f"{k}{v.dtype}{v.shape}{hashlib.blake2b(v.tobytes(), digest_size=16).hexdigest()}")
        key = "|".join(key)
        if key not in self.cache:
            self.cache[key] = self.session.run(names, feeds, run_options)
        return [np.array(o) for o in self.cache[key]]

    def __getattr__(self, name):
        return getattr(self.session, name)


@contextlib.contextmanager
def memoised(pipeline):
    """Memoise the pipeline's ONNX sessions (segmentation, embedding trunk and head)."""
    spots = [(pipeline.segmentation, "session")]
    spots += [(pipeline.embedding, n) for n in ("trunk", "head", "whole") if n in vars(pipeline.embedding)]
    with contextlib.ExitStack() as stack:
        for owner, name in spots:
            stack.enter_context(attribute(owner, name, _Memo(getattr(owner, name))))
        yield


def _fbank_with(**options) -> Callable:
    """`port.fbank.fbank` called with some Kaldi options changed."""
    original = kaldi.fbank

    def mutated(waveforms, **kwargs):
        return original(waveforms, **{**kwargs, **options})

    return lambda p: replaced(original, mutated)


# ----------------------------------------------------------------------------- the bugs
def _resample_poly(waveform, orig_freq, new_freq):
    """scipy's polyphase resampler (Kaiser window) instead of torchaudio's windowed sinc."""
    from scipy.signal import resample_poly

    if orig_freq == new_freq:
        return waveform
    g = math.gcd(int(orig_freq), int(new_freq))
    x = np.asarray(waveform, dtype=np.float64)
    return resample_poly(x, int(new_freq) // g, int(orig_freq) // g, axis=-1).astype(np.asarray(waveform).dtype)


def _first_channel(waveform):
    """Keep channel 0 instead of averaging the channels."""
    return np.asarray(waveform)[:1].astype(np.float32)


def _iter_chunks_end_aligned(waveform, window_size, step_size, batch_size):
    """The last chunk taken as the file's last 10 s (no zero padding)."""
    _, num_samples = waveform.shape
    num_chunks, has_last_chunk = segmentation.chunk_layout(num_samples, window_size, step_size)
    for c in range(0, num_chunks, batch_size):
        starts = np.arange(c, min(c + batch_size, num_chunks)) * step_size
        yield waveform[0][starts[:, None] + np.arange(window_size)[None, :]][:, None, :]
    if has_last_chunk:
        if num_samples >= window_size:
            yield waveform[None, :, num_samples - window_size :]
        else:
            padded = np.zeros((1, 1, window_size), dtype=waveform.dtype)
            padded[0, :, :num_samples] = waveform
            yield padded


def _speaker_count_floor(binarized, chunks, frames, warm_up=(0.0, 0.0)):
    """speaker_count with the average truncated (astype) instead of rounded."""
    trimmed, trimmed_chunks = trim(binarized, chunks, warm_up=warm_up)
    count, count_frames = aggregate(
        np.sum(trimmed, axis=-1, keepdims=True), trimmed_chunks, frames, hamming=False, missing=0.0
    )
    return count.astype(np.uint8), count_frames


_speaker_count = segmentation.speaker_count


def _speaker_count_warm_up(binarized, chunks, frames, warm_up=(0.0, 0.0)):
    """speaker_count with pyannote 3.0's warm-up (0.1 s of each chunk's ends dropped)."""
    return _speaker_count(binarized, chunks, frames, warm_up=(0.1, 0.1))


def _to_multilabel_last_max(log_probs, mapping):
    """argmax keeping the last maximum on ties (numpy/torch keep the first)."""
    if mapping is None:
        return log_probs
    flipped = log_probs[..., ::-1]
    best = log_probs.shape[-1] - 1 - np.argmax(flipped, axis=-1)
    return mapping[best].astype(np.float32)


def _masks_no_fallback(binarized, min_num_frames, exclude_overlap=True):
    """Overlap always excluded, even when it leaves a speaker too few frames."""
    keep = 1.0 * (np.sum(binarized, axis=2, keepdims=True) < 2) if exclude_overlap else 1.0
    used = np.nan_to_num(binarized * keep, nan=0.0).astype(np.float32)
    return np.ascontiguousarray(used.transpose(0, 2, 1))


def _filter_counting_overlap(embeddings, segmentations, min_active_ratio=0.2):
    """filter_embeddings counting every active frame, overlapped ones too."""
    _, num_frames, _ = segmentations.shape
    active = np.sum(segmentations, axis=1) >= min_active_ratio * num_frames
    valid = ~np.any(np.isnan(embeddings), axis=2)
    chunk_idx, speaker_idx = np.where(active * valid)
    return embeddings[chunk_idx, speaker_idx], chunk_idx, speaker_idx


def _linkage_median(y, method="centroid", metric="euclidean"):
    """scipy's median (WPGMC) linkage where pyannote asks for centroid (UPGMC)."""
    from scipy.cluster.hierarchy import linkage

    return linkage(y, method="median", metric=metric)


def _argmin_last(a, axis=None, **kwargs):
    """argmin keeping the last minimum on ties (scipy's scans keep the first)."""
    a = np.asarray(a)
    if axis is None:
        return a.size - 1 - int(np.argmin(a.ravel()[::-1]))
    return a.shape[axis] - 1 - np.argmin(np.flip(a, axis=axis), axis=axis)


_fcluster = clustering.fcluster


def _fcluster_strict(Z, t, criterion="distance"):
    """fcluster keeping merges strictly below the threshold (< instead of <=)."""
    if criterion == "distance":
        t = np.nextafter(float(t), -np.inf)
    return _fcluster(Z, t, criterion=criterion)


def _all_clusters_large(clusters, min_cluster_size):
    """min_cluster_size ignored: small clusters are never merged into large ones."""
    cluster_unique, cluster_counts = np.unique(clusters, return_counts=True)
    return cluster_unique, cluster_counts, cluster_unique


_cluster = clustering.cluster


def _cluster_unnormalised(*args, **kwargs):
    """Linkage on raw embeddings: the L2 normalisation (metric="cosine") skipped."""
    return _cluster(*args, **{**kwargs, "metric": "euclidean"})


def _cluster_raw_reassignment(embeddings, min_clusters, max_clusters, num_clusters=None, threshold=0.7045654963945799,
                              min_cluster_size=12, method="centroid", metric="cosine", trace=None):
    """AgglomerativeClustering.cluster whose small-cluster reassignment averages the raw
    embeddings, where pyannote averages the unit-normalised ones (its in-place copy)."""
    seen = []
    large_clusters = clustering._large_clusters

    def recording(clusters, size):
        seen.append((np.array(clusters), size))
        return large_clusters(clusters, size)

    with attribute(clustering, "_large_clusters", recording):
        result = _cluster(embeddings, min_clusters, max_clusters, num_clusters=num_clusters, threshold=threshold,
                          min_cluster_size=min_cluster_size, method=method, metric=metric, trace=trace)
    if not seen:
        return result
    clusters, size = seen[-1]  # the cut the reassignment started from
    unique, counts = np.unique(clusters, return_counts=True)
    large, small = unique[counts >= size], unique[counts < size]
    if len(large) == 0 or len(small) == 0:
        return result
    raw = np.asarray(embeddings)
    large_centroids = np.vstack([np.mean(raw[clusters == k], axis=0) for k in large])
    small_centroids = np.vstack([np.mean(raw[clusters == k], axis=0) for k in small])
    from scipy.spatial.distance import cdist

    for small_k, large_k in enumerate(np.argmin(cdist(large_centroids, small_centroids, metric=metric), axis=0)):
        clusters[clusters == small[small_k]] = large[large_k]
    _, clusters = np.unique(clusters, return_inverse=True)
    return clusters


_assign = clustering.assign_embeddings


def _assign_hungarian(*args, **kwargs):
    """constrained_argmax (Hungarian) where the 3.1 pipeline takes the plain argmax."""
    return _assign(*args, **{**kwargs, "constrained": True})


def _reconstruct_sum(segmentations, chunks, hard_clusters, count, count_frames):
    """reconstruct summing, not max-ing, local speakers assigned to one cluster."""
    num_chunks, num_frames, _ = segmentations.shape
    num_clusters = np.max(hard_clusters) + 1
    clustered = np.nan * np.zeros((num_chunks, num_frames, num_clusters))
    for c, (clusters, seg) in enumerate(zip(hard_clusters, segmentations)):
        for k in np.unique(clusters):
            if k == -2:
                continue
            clustered[c, :, k] = np.sum(seg[:, clusters == k], axis=1)
    return reconstruct.to_diarization(clustered, chunks, count, count_frames)


_to_diarization = reconstruct.to_diarization


def _to_diarization_reversed_ties(segmentations, chunks, count, count_frames):
    """to_diarization ranking clusters with argsort(a)[::-1]: ties in reverse order."""
    with attribute(reconstruct, "np", _Numpy(argsort=lambda a, axis=-1: np.argsort(-a, axis=axis)[..., ::-1])):
        return _to_diarization(segmentations, chunks, count, count_frames)


def _ranking_ties(binary: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """Frames where the count-th and the next most active clusters have equal activations."""
    chosen = (binary > 0.5).sum(axis=1)
    values = -np.sort(-activations, axis=1)
    rows = np.flatnonzero((chosen > 0) & (chosen < activations.shape[1]))
    return rows[values[rows, chosen[rows] - 1] == values[rows, chosen[rows]]]


def _on_tie_frames(rule):
    """to_diarization, then `rule(binary_row, activations_row)` on each frame whose ranking
    ties at the count (the frames where pyannote's own sort order decides)."""
    def mutated(segmentations, chunks, count, count_frames):
        binary, frames, activations = _to_diarization(segmentations, chunks, count, count_frames)
        for t in _ranking_ties(binary, activations):
            rule(binary[t], activations[t])
        return binary, frames, activations

    mutated.__doc__ = rule.__doc__
    return mutated


def _tie_to_lowest(row, values):
    """The tied slot's cluster replaced by the least active cluster not chosen."""
    chosen = np.flatnonzero(row > 0.5)
    slot = chosen[np.argmin(values[chosen])]
    others = np.flatnonzero(row < 0.5)
    lowest = others[np.argmin(values[others])]
    if values[lowest] < values[slot]:  # equal would be another valid tie order, not this bug
        row[slot], row[lowest] = 0.0, 1.0


def _tie_count_minus_one(row, values):
    """count - 1 clusters on a tie frame: the tied slot left empty."""
    chosen = np.flatnonzero(row > 0.5)
    row[chosen[np.argmin(values[chosen])]] = 0.0


def _stable_argsort(a, axis=-1):
    return np.argsort(a, axis=axis, kind="stable")


def _ascending_argsort(a, axis=-1):
    """argsort of the activations themselves: to_diarization hands it -activations."""
    return np.argsort(-np.asarray(a), axis=axis)


def _labels_by_appearance(turns):
    """Speakers named in order of first speech, not by cluster index."""
    order = []
    for turn in sorted(turns, key=lambda t: (t.start, t.end)):
        if turn.label not in order:
            order.append(turn.label)
    return {k: f"SPEAKER_{i:02d}" for i, k in enumerate(order)}


def _frame_starts(self, n):
    """Turn boundaries at frame starts instead of frame middles."""
    return self.start + np.arange(n) * self.step


# ----------------------------------------------------------------------------- crafted inputs
# Branches no bundled recording exercises (exact ties, a height at the threshold, two local
# speakers in one cluster, a non-trivial small-cluster reassignment, ...): each builder edits
# a copy of a real reference dump (from its own data where it can) so that the branch runs.
# The crafted stage's expected outputs are the unmutated port's on those inputs (the port is
# bit-identical to pyannote on stages 04-14 of the bundled recordings), and the mutated
# port's stage run alone on them must differ and fail (`crafted_run`).
def _crafted_powerset_ties(d: DumpReader) -> dict:
    """Frames whose two best powerset classes have exactly equal log-probabilities."""
    log_probs = np.array(d.load("03-segmentation", "out_log_probs"))
    log_probs[0, :50, :] = -9.0
    log_probs[0, :50, 1] = log_probs[0, :50, 4] = -0.5  # {0} and {0, 1} tie
    return {"03-segmentation": {"out_log_probs": log_probs}}


def _crafted_few_clean_frames(d: DumpReader) -> dict:
    """A speaker active on every frame of chunk 0 but overlapped on all but 5."""
    multilabel = np.array(d.load("04-multilabel", "out_multilabel"))
    multilabel[0] = 0.0
    multilabel[0, :, 0] = 1.0
    multilabel[0, 5:, 1] = 1.0
    return {"04-multilabel": {"out_multilabel": multilabel}}


def _crafted_linkage_ties(d: DumpReader) -> dict:
    """Four unit vectors on a square (exactly equal nearest distances)."""
    dim = np.asarray(d.load("10-linkage", "in_X")).shape[1]
    square = np.zeros((4, dim), np.float32)  # exact coordinates: the ties are exact
    square[[0, 1, 2, 3], [0, 1, 0, 1]] = [1.0, 1.0, -1.0, -1.0]
    return {"10-linkage": {"in_X": square}}


def _crafted_height_at_threshold(d: DumpReader) -> dict:
    """The first fcluster call's dendrogram with the merge nearest the threshold moved onto it."""
    Z = np.array(d.load("11-fcluster", "call0_in_Z"))
    t = float(d.load("11-fcluster", "call0_in_t"))
    above = np.flatnonzero(Z[:, 2] > t)
    j = above[np.argmin(Z[above, 2])] if above.size else int(np.argmax(Z[:, 2]))
    Z[j, 2] = t
    return {"11-fcluster": {"call0_in_Z": Z}}


def _crafted_small_cluster(d: DumpReader) -> dict:
    """Two large clusters and one small one whose normalised mean is nearer the first and
    raw mean nearer the second (one of its rows has a large norm), from real rows made orthonormal."""
    X = np.asarray(d.load("09-filter", "out_embeddings"), dtype=np.float64)
    q, _ = np.linalg.qr(X[:8].T)
    e1, e2, e3 = q[:, 0], q[:, 1], q[:, 2]
    rng = np.random.default_rng(0)
    rows = [e1 + 0.05 * rng.standard_normal(3) @ q[:, 3:6].T for _ in range(12)]
    rows += [e2 + 0.05 * rng.standard_normal(3) @ q[:, 3:6].T for _ in range(12)]
    s1 = e3 + 0.35 * e1
    s2 = e3 + 0.30 * e2
    rows += [s1 / np.linalg.norm(s1), 100.0 * s2 / np.linalg.norm(s2)]
    return {"09-filter": {"out_embeddings": np.asarray(rows, np.float32)}}


def _crafted_shared_cluster(d: DumpReader) -> dict:
    """Chunks whose two local speakers (overlapping) have the same embedding: one cluster for both."""
    embeddings = np.array(d.load("08-embeddings", "out_embeddings"))
    multilabel = np.array(d.load("04-multilabel", "out_multilabel"))
    for c in range(len(embeddings)):
        if not np.any(np.isnan(embeddings[c, :2])):
            embeddings[c, 1] = embeddings[c, 0]
            multilabel[c, :300, :2] = 1.0  # both speak (overlap) on the first 300 frames
    return {"08-embeddings": {"out_embeddings": embeddings}, "04-multilabel": {"out_multilabel": multilabel}}


def _crafted_reconstruct_shared(d: DumpReader) -> dict:
    """Local speakers 0 and 1 of every chunk in one cluster, overlapping on half the chunk."""
    stage = "13-reconstruct"
    multilabel = np.array(d.load("04-multilabel", "out_multilabel"))
    multilabel[:, :300, :2] = 1.0
    out = {"04-multilabel": {"out_multilabel": multilabel}, stage: {}}
    for name in d.names(stage):
        if name.endswith("_in_hard_clusters"):
            hard = np.array(d.load(stage, name))
            hard[:, 0] = 0
            hard[:, 1] = 0
            hard[:, 2] = np.where(hard[:, 2] >= 0, 1, hard[:, 2])
            out[stage][name] = hard
    return out


def _crafted_ranking_ties(d: DumpReader) -> dict:
    """Every chunk's local speakers 0 and 1 equally active, in clusters 0 and 1, local speaker 2
    silent in cluster 2, and one speaker counted wherever one speaks: every spoken frame ties at
    the count, with a less active cluster left to take."""
    stage = "13-reconstruct"
    multilabel = np.array(d.load("04-multilabel", "out_multilabel"))
    either = np.maximum(multilabel[..., 0], multilabel[..., 1])
    multilabel[..., 0], multilabel[..., 1], multilabel[..., 2:] = either, either, 0.0
    out = {"04-multilabel": {"out_multilabel": multilabel}, stage: {}}
    for name in d.names(stage):
        if name.endswith("_in_hard_clusters"):
            hard = np.array(d.load(stage, name))
            hard[:] = np.arange(hard.shape[1], dtype=hard.dtype)
            out[stage][name] = hard
        elif name.endswith("_in_count"):
            count = np.array(d.load(stage, name))
            out[stage][name] = np.minimum(count, 1).astype(count.dtype)
    return out


def _crafted_labels_order(d: DumpReader) -> dict:
    """The first two clusters' columns swapped, so that cluster 1 speaks first."""
    stage = "13-reconstruct"
    out = {stage: {}}
    for name in d.names(stage):
        if name.endswith("_out_discrete"):
            discrete = np.array(d.load(stage, name))
            if discrete.shape[1] >= 2:
                discrete[:, [0, 1]] = discrete[:, [1, 0]]
            out[stage][name] = discrete
    return out


def crafted_run(mutation, pipeline, source: Path, root: Path) -> dict:
    """The mutation's branch exercised on a crafted copy of the reference dump `source`:
    {"effect", "caught", "first_failure", "failures"} like a recording's entry."""
    from harness.compare import isolated_rows
    from port.stages import run_stage

    folder = Path(root) / f"crafted-{mutation.name}"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder)

    def write(stage, values):
        for name, value in values.items():
            for old in [*(folder / stage).glob(f"{name}.npy"), *(folder / stage).glob(f"{name}.txt")]:
                old.unlink()
            if isinstance(value, str):  # RTTM text
                (folder / stage / name).write_text(value)
            else:
                np.save(folder / stage / f"{name}.npy", np.asarray(value), allow_pickle=False)

    for stage, values in mutation.crafted(DumpReader(source)).items():
        write(stage, values)
    stage = mutation.stage
    write(stage, run_stage(stage, DumpReader(folder), pipeline))
    reader = DumpReader(folder)
    with mutation.apply(pipeline):
        produced = run_stage(stage, reader, pipeline)
    rows = isolated_rows(reader, stage, lambda s, d: produced)
    failing = [r for r in rows if not r.passed]
    return {"effect": bool(failing), "caught": bool(failing), "first_failure": stage if failing else None,
            "rttm_changed": None, "crafted": True,
            "failures": [{"check": "isolated", "stage": r.stage, "name": r.name, "max_abs": r.max_abs, "note": r.note}
                         for r in failing[:4]]}


@dataclass(frozen=True)
class Mutation:
    name: str
    stage: str  # where the bug lives: the stage the harness should name first
    bug: str  # what the port does wrong, one line
    apply: Callable  # apply(pipeline) -> context manager
    recordings: tuple[str, ...] = ("sample",)
    inert: str = ""  # why it may change nothing on these recordings
    crafted: Callable | None = None  # crafted(reference_reader) -> {stage: {name: value}}: inputs that exercise it
    # not a bug: another of pyannote's equally valid answers (why, in words); the verdict must
    # accept it ("equivalent, accepted"), and failing it is the harness's error
    equivalent: str = ""


def _powerset_bitmask_order(p):
    """Powerset classes in bitmask order ({}, {0}, {1}, {0,1}, {2}, ...) instead of pyannote's
    by-size order ({}, {0}, {1}, {2}, {0,1}, ...)."""
    mapping = p.segmentation.mapping
    bits = mapping @ (2 ** np.arange(mapping.shape[1]))
    return attribute(p.segmentation, "mapping", mapping[np.argsort(bits, kind="stable")])


def _frame_step_from_count(p):
    """Frame step as duration / frames per chunk (10 s / 589) instead of the receptive field's."""
    field_ = p.segmentation.receptive_field
    wrong = SlidingWindow(field_.start, field_.duration, p.segmentation.duration / p.segmentation.num_frames)
    return attribute(p.segmentation, "receptive_field", wrong)


def _float16(owner_attr):
    def apply(p):
        owner = p.segmentation if owner_attr == "segmentation" else p.embedding
        name = "session" if owner_attr == "segmentation" else "trunk"
        return attribute(owner, name, _Float16Session(getattr(owner, name)))

    return apply


def float32_instance_norms(path: str | Path) -> bytes:
    """The segmentation graph at `path` with each normalisation back to one float32
    InstanceNormalization node, as exporter v1 shipped it: ONNX Runtime accumulates the
    mean and variance in float32 (wav_norm1d over the chunk's 160,000 samples, SincNet's
    norms over 5,325 / 1,771 / 589 frames). The audit names wav_norm1d first (55x torch's
    error on ami_stereo_5s) but norm1d.0 absorbs it; the drift that reaches 03 comes from
    the SincNet norms as well, so the mutation reverts them all."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(path))
    graph = proto.graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    scopes = list(dict.fromkeys(n.name.rsplit("/", 1)[0] for n in graph.node if "/ExactNorm/" in n.name))
    if not scopes:
        raise RuntimeError(f"{path}: no ExactNorm block (an export before v2?)")
    nodes = list(graph.node)
    for scope in scopes:
        block = [n for n in nodes if n.name.startswith(scope + "/")]
        for kind in ("scale", "bias"):
            graph.initializer.append(numpy_helper.from_array(
                values[f"{scope}/{kind}"].astype(np.float32).reshape(-1), f"{scope}/{kind}32"))
        node = helper.make_node(
            "InstanceNormalization", [block[0].input[0], f"{scope}/scale32", f"{scope}/bias32"], [block[-1].output[0]],
            name=scope.removesuffix("/ExactNorm") + "/InstanceNormalization", epsilon=float(values[f"{scope}/epsilon"]))
        at = nodes.index(block[0])
        nodes = [n for n in nodes if n not in block]
        nodes.insert(at, node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for n in nodes for name in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return proto.SerializeToString()


def _instance_norms_float32(p):
    """Segmentation session whose instance norms accumulate in float32 (exporter v1's graph)."""
    import hashlib

    from port import runtime

    data = float32_instance_norms(p.segmentation.path)
    path = Path(tempfile.gettempdir()) / f"instance-norms-f32-{hashlib.sha256(data).hexdigest()[:16]}.onnx"
    if not path.is_file():
        tmp = path.with_name(path.name + f".{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return attribute(p.segmentation, "session", runtime.session(path, device="cpu", threads=1))


def _dither(p):
    """Kaldi's default dither (1.0): Gaussian noise added to every sample before framing."""
    original = kaldi.fbank
    rng = np.random.default_rng(0)

    def mutated(waveforms, **kwargs):
        x = np.asarray(waveforms, dtype=np.float32)
        return original(x + rng.standard_normal(x.shape).astype(np.float32), **kwargs)

    return replaced(original, mutated)


def _unscaled(p):
    """Waveform fed to fbank in [-1, 1] (the x 2**15 of compute_fbank forgotten)."""
    original = kaldi.fbank

    def mutated(waveforms, **kwargs):
        return original(np.asarray(waveforms, dtype=np.float32) / np.float32(1 << 15), **kwargs)

    return replaced(original, mutated)


def _param(name, value):
    return lambda p: attribute(p.parameters, name, value)


def _swap(original, replacement):
    return lambda p: replaced(original, replacement)


def _numpy_in(module, **overrides):
    return lambda p: attribute(module, "np", _Numpy(**overrides))


CATALOGUE: tuple[Mutation, ...] = (
    Mutation("resample_poly", "01-audio", "scipy.signal.resample_poly instead of torchaudio's windowed-sinc resampler",
             _swap(audio.resample, _resample_poly), ("test_with_noise_48k", "ami_8k")),
    Mutation("downmix_first_channel", "01-audio", "stereo taken as its first channel instead of the channel mean",
             _swap(audio.downmix, _first_channel), ("ami_stereo",)),
    Mutation("last_chunk_end_aligned", "02-chunks", "last chunk = the file's last 10 s instead of a zero-padded window",
             _swap(segmentation.iter_chunks, _iter_chunks_end_aligned), ("ami_padded",)),
    Mutation("segmentation_float16", "03-segmentation", "segmentation model run in float16 (inputs and outputs)",
             _float16("segmentation")),
    Mutation("instance_norms_float32", "03-segmentation",
             "waveform and SincNet InstanceNormalization accumulated in float32 (ONNX Runtime's kernel, exporter v1)",
             _instance_norms_float32, ("ami_stereo_5s",)),
    Mutation("powerset_bitmask_order", "04-multilabel", "powerset classes in bitmask order, not pyannote's by-size order",
             _powerset_bitmask_order),
    Mutation("multilabel_last_max", "04-multilabel", "powerset argmax keeps the last maximum on ties",
             _swap(segmentation.to_multilabel, _to_multilabel_last_max),
             inert="no two powerset log-probabilities of a frame are exactly equal", crafted=_crafted_powerset_ties),
    Mutation("frame_step_duration_over_frames", "05-count", "frame step 10 s / 589 frames instead of the receptive field's step",
             _frame_step_from_count),
    Mutation("count_truncated", "05-count", "speaker count truncated (astype) instead of rounded",
             _swap(segmentation.speaker_count, _speaker_count_floor)),
    Mutation("count_warm_up", "05-count", "speaker count with 0.1 s warm-up trimmed (pyannote 3.0's default)",
             _swap(segmentation.speaker_count, _speaker_count_warm_up)),
    Mutation("fbank_povey_window", "06-fbank", "Kaldi's default povey window instead of WeSpeaker's hamming",
             _fbank_with(window_type="povey")),
    Mutation("fbank_no_preemphasis", "06-fbank", "pre-emphasis 0 instead of 0.97",
             _fbank_with(preemphasis_coefficient=0.0)),
    Mutation("fbank_dither", "06-fbank", "Kaldi's default dither 1.0 instead of WeSpeaker's 0.0", _dither),
    Mutation("fbank_no_snip_edges", "06-fbank", "snip_edges=False (reflected edges, one more frame)",
             _fbank_with(snip_edges=False)),
    Mutation("fbank_low_freq_0", "06-fbank", "mel banks from 0 Hz instead of Kaldi's 20 Hz",
             _fbank_with(low_freq=0.0)),
    Mutation("fbank_no_mean_centring", "06-fbank", "features not mean-centred over time",
             _swap(kaldi._time_mean, lambda features: np.zeros_like(features[:, :1]))),
    Mutation("fbank_unscaled", "06-fbank", "waveform not scaled by 2**15 before fbank",
             _unscaled),
    Mutation("fbank_log_floor_float64_eps", "06-fbank", "log floor at float64 epsilon instead of float32's",
             lambda p: attribute(kaldi, "_EPSILON", np.float64(np.finfo(np.float64).eps)), ("ami_padded",)),
    Mutation("masks_keep_overlap", "07-masks", "overlapping frames not excluded from embedding masks",
             _param("exclude_overlap", False)),
    Mutation("masks_no_min_frames_fallback", "07-masks", "no fallback to the full mask when too few clean frames remain",
             _swap(embedding.masks, _masks_no_fallback), ("sample", "ami_padded"),
             inert="no speaker is left with too few non-overlapped frames", crafted=_crafted_few_clean_frames),
    Mutation("embedding_float16", "08-embeddings", "embedding trunk run in float16 (fbank in, features out)",
             _float16("embedding")),
    Mutation("filter_counts_overlap", "09-filter", "filter_embeddings counts overlapped frames as clean",
             _swap(clustering.filter_embeddings, _filter_counting_overlap), ("sample", "ami_padded")),
    Mutation("linkage_median", "10-linkage", "median (WPGMC) linkage instead of centroid (UPGMC)",
             _swap(clustering.linkage, _linkage_median), ("sample", "ami_padded")),
    Mutation("linkage_last_min_ties", "10-linkage", "nearest-neighbour scans keep the last minimum on ties",
             _numpy_in(hierarchy, argmin=_argmin_last), ("sample", "ami_padded"),
             inert="no two candidate distances are exactly equal", crafted=_crafted_linkage_ties),
    Mutation("cluster_unnormalised", "11-fcluster", "embeddings not L2-normalised before linkage (in AgglomerativeClustering.cluster)",
             _swap(clustering.cluster, _cluster_unnormalised), ("sample", "ami_padded")),
    Mutation("fcluster_strict_threshold", "11-fcluster", "fcluster keeps merges with height < t instead of <= t",
             _swap(clustering.fcluster, _fcluster_strict), ("sample", "ami_padded"),
             inert="no merge height equals the threshold, and no speaker constraint made pyannote walk the dendrogram",
             crafted=_crafted_height_at_threshold),
    Mutation("reassign_raw_mean", "11-fcluster", "small clusters reassigned by the mean of raw embeddings, not of the normalised ones",
             _swap(clustering.cluster, _cluster_raw_reassignment), ("sample", "ami_padded"),
             inert="the recordings' small clusters are single embeddings: raw and normalised means pick the same large cluster", crafted=_crafted_small_cluster),
    Mutation("no_min_cluster_size_merge", "11-fcluster", "small clusters (< min_cluster_size) not merged into large ones",
             _swap(clustering._large_clusters, _all_clusters_large), ("sample", "ami_padded")),
    Mutation("assign_hungarian", "12-assign", "Hungarian (constrained_argmax) where the 3.1 pipeline takes the argmax",
             _swap(clustering.assign_embeddings, _assign_hungarian), ("sample", "ami_padded"),
             inert="no chunk had two local speakers assigned to one cluster", crafted=_crafted_shared_cluster),
    Mutation("reconstruct_sum", "13-reconstruct", "local speakers of one cluster summed instead of max-ed",
             _swap(reconstruct.reconstruct, _reconstruct_sum), ("sample", "ami_padded"),
             inert="no chunk had two local speakers assigned to one cluster", crafted=_crafted_reconstruct_shared),
    Mutation("diarization_reversed_ties", "13-reconstruct", "clusters ranked by argsort(a)[::-1]: equal activations in reverse order",
             _swap(reconstruct.to_diarization, _to_diarization_reversed_ties), ("sample", "ami_padded"),
             equivalent="equal activations ranked in another order: another top-count set of the same values"),
    Mutation("diarization_stable_ties", "13-reconstruct", "clusters ranked by a stable argsort (ties in index order)",
             _numpy_in(reconstruct, argsort=_stable_argsort), ("sample", "ami_padded"),
             equivalent="the stable order is what numpy gives without x86-simd-sort (arm64, Apple silicon, x86 without AVX2)"),
    Mutation("ranking_ascending", "13-reconstruct", "clusters ranked by argsort(+activations): the least active kept",
             _numpy_in(reconstruct, argsort=_ascending_argsort), ("sample", "ami_padded")),
    Mutation("ties_to_lowest", "13-reconstruct", "a tie at the count broken by taking the least active cluster",
             _swap(reconstruct.to_diarization, _on_tie_frames(_tie_to_lowest)), ("sample", "ami_padded"),
             inert="where the ranking ties at the count, no less active cluster is left to take",
             crafted=_crafted_ranking_ties),
    Mutation("ties_count_minus_one", "13-reconstruct", "count - 1 clusters kept on frames where the ranking ties at the count",
             _swap(reconstruct.to_diarization, _on_tie_frames(_tie_count_minus_one)), ("sample", "ami_padded"),
             inert="no frame where the ranking ties at the count", crafted=_crafted_ranking_ties),
    Mutation("min_duration_off_0.5", "14-annotation", "min_duration_off 0.5 s from another configuration instead of 0.0",
             _param("min_duration_off", 0.5), ("sample", "ami_padded")),
    Mutation("labels_by_first_turn", "14-annotation", "speakers named by first appearance instead of cluster index",
             _swap(reconstruct.speaker_labels, _labels_by_appearance), ("sample", "ami_padded"),
             inert="cluster indices already follow the order of first speech", crafted=_crafted_labels_order),
    Mutation("turns_at_frame_starts", "14-annotation", "turn boundaries at frame starts instead of frame middles",
             lambda p: attribute(SlidingWindow, "middles", _frame_starts)),
)


# ----------------------------------------------------------------------------- judging
@dataclass
class Verdict:
    passed: bool
    first_failure: str | None
    rows: list[dict] = field(default_factory=list)  # every compared value, isolated then chain
    noise: str = ""  # where the noise the drift was judged against came from


def judge(reference_dir: Path, candidate_dir: Path, pipeline) -> Verdict:
    """`verify.py run`'s verdict on one recording (`harness.compare.judge`): isolated rows
    (each stage of `pipeline` on the reference's inputs) and chain rows (the candidate's
    dump tree), drift judged against pyannote's own float32 noise when the reference
    dump carries it (noise.json), fixed ceilings otherwise; the first failing stage is
    the first isolated failure in pipeline order, else the first failing stage."""
    from harness.compare import judge as harness_judge

    verdict = harness_judge(reference_dir, candidate_dir, runner=runner(pipeline))
    rows = [{"check": "isolated", **r.as_dict()} for r in verdict.isolated]
    rows += [{"check": "chain", **r.as_dict()} for r in verdict.chain]
    return Verdict(verdict.passed, verdict.first_failure, rows, verdict.noise)


def same_dumps(a: Path, b: Path) -> bool:
    """Whether two dump trees hold the same names with bit-identical values."""
    ra, rb = DumpReader(a), DumpReader(b)
    if ra.stages() != rb.stages():
        return False
    for stage in ra.stages():
        names = ra.names(stage)
        if names != rb.names(stage):
            return False
        for name in names:
            x, y = ra.load(stage, name), rb.load(stage, name)
            if isinstance(x, str) or isinstance(y, str):
                if x != y:
                    return False
            elif not (x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")):
                return False
    return True


# ----------------------------------------------------------------------------- running
class Bench:
    """Reference dumps (made once per recording, kept under `root`), the unmutated port's
    dumps and verdict, and mutated runs judged against them."""

    def __init__(self, root: Path, pipeline, reference_pipeline=None, manifest: dict | None = None, torch_models=None):
        self.root = Path(root)
        self.torch_models = torch_models  # (segmentation, embedding): pyannote's noise is measured with them
        self.pipeline = pipeline
        self.reference_pipeline = reference_pipeline
        self.manifest = manifest or {}
        self.references: dict[str, Path] = {}
        self.paths: dict[str, Path] = dict(RECORDINGS)
        self.baselines: dict[str, tuple[Path, Verdict]] = {}

    def add_reference(self, name: str, path: Path, reference_dir: Path, baseline_dir: Path | None = None) -> None:
        """Use dumps already made (the tests' session dumps) of the recording at `path`."""
        self.paths[name] = Path(path)
        self.references[name] = Path(reference_dir)
        if baseline_dir is not None:
            self.baselines[name] = (Path(baseline_dir), judge(reference_dir, baseline_dir, self.pipeline))

    def reference(self, name: str) -> Path:
        if name not in self.references:
            from port.dumps import DumpError, DumpWriter
            from reference import run as reference_run

            path = self.paths[name]
            manifest = {**self.manifest, "uri": path.stem, "audio_sha256": reference_run.sha256_file(path)}
            folder = self.root / "reference" / name
            try:
                DumpReader(folder).check(manifest)
                fresh = DumpReader(folder).manifest.get("uri") == path.stem
            except DumpError:
                fresh = False
            if not fresh:
                with warnings.catch_warnings(), DumpWriter(self.root, "reference", name) as writer:
                    warnings.simplefilter("ignore")
                    reference_run.run(path, self.reference_pipeline, hook=writer)
                    writer.commit(manifest)
            self.references[name] = folder
        return self.references[name]

    def _port(self, name: str, root: Path, side: str) -> Path:
        from port.dumps import DumpWriter

        with DumpWriter(root, side, name) as writer:
            self.pipeline(self.paths[name], hook=writer)
            writer.commit({**self.manifest, "uri": name})
        return root / side / name

    def baseline(self, name: str) -> tuple[Path, Verdict]:
        """The unmutated port on this recording: it must pass."""
        if name not in self.baselines:
            folder = self._port(name, self.root, "port")
            if self.torch_models is not None:
                from reference import noise

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    noise.ensure(self.reference(name), *self.torch_models, folder)
            self.baselines[name] = (folder, judge(self.reference(name), folder, self.pipeline))
        return self.baselines[name]

    def run(self, mutation: Mutation, recordings: tuple[str, ...] | None = None) -> dict:
        """Run one mutation on its recordings; the row of the matrix."""
        per: dict[str, dict] = {}
        for name in recordings or mutation.recordings:
            reference = self.reference(name)
            baseline_dir, baseline = self.baseline(name)
            began = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
                with mutation.apply(self.pipeline):
                    try:
                        candidate = self._port(name, Path(tmp), "port")
                        verdict = judge(reference, candidate, self.pipeline)
                    except Exception as error:  # a crash is a loud bug, but say it plainly
                        per[name] = {"effect": True, "caught": True, "first_failure": None,
                                     "error": f"{type(error).__name__}: {error}", "rttm_changed": None}
                        continue
                changed = not same_dumps(baseline_dir, candidate) or verdict.rows != baseline.rows
                annotation = self.pipeline.description.named("annotation")
                rttm_changed = (DumpReader(candidate).load(annotation, "out_diarization.rttm")
                                != DumpReader(reference).load(annotation, "out_diarization.rttm"))
            failing = [r for r in verdict.rows if not r["passed"]]
            per[name] = {"effect": changed, "caught": not verdict.passed, "first_failure": verdict.first_failure,
                         "rttm_changed": rttm_changed, "noise": verdict.noise,
                         "within_fixed_ceilings": bool(failing) and all(_within_ceiling(r) for r in failing),
                         "failures": [{k: r.get(k) for k in ("check", "stage", "name", "max_abs", "noise_ratio", "note")}
                                      for r in failing[:4]],
                         "seconds": round(time.perf_counter() - began, 1)}
        if mutation.crafted is not None:  # the branch no recording reaches, on a crafted copy of one
            with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
                per["crafted"] = crafted_run(mutation, self.pipeline, self.reference((recordings or mutation.recordings)[0]),
                                             Path(tmp))
        return summarise(mutation, per)


def _within_ceiling(row: dict) -> bool:
    """A failing float row whose drift is within the stage's fixed bound (atol / chain_atol):
    failed only by the noise-based rule."""
    from harness.compare import tolerances

    if row.get("kind") != "float" or row.get("mismatches"):
        return False
    config = tolerances()[row["stage"]]
    atol = config.get("chain_atol", config.get("atol", 0.0)) if row["check"] == "chain" else config.get("atol", 0.0)
    return row["max_abs"] <= float(atol)


def summarise(mutation: Mutation, per: dict[str, dict], ran: bool = True) -> dict:
    effect = [r for r in per.values() if r["effect"]]
    caught = [r for r in effect if r["caught"]]
    firsts = [r["first_failure"] for r in caught if r["first_failure"]]
    first = min(firsts) if firsts else None  # stage folders sort in pipeline order (NN-)
    status = "no effect" if not effect else ("caught" if len(caught) == len(effect) and caught else "MISSED")
    if mutation.equivalent and effect:  # a valid answer: the verdict must accept it
        status = "WRONGLY FAILED" if caught else "equivalent, accepted"
    if not ran:
        status = "not run"
    return {
        "mutation": mutation.name,
        "bug": mutation.bug,
        "expected_stage": mutation.stage,
        "status": status,
        "caught": status == "caught",
        "first_failure": first,
        "at_expected_stage": first == mutation.stage,
        "rttm_changed": any(r.get("rttm_changed") for r in per.values()),
        "noise_verdict_only": bool(caught) and all(r.get("within_fixed_ceilings") for r in caught),
        "reason": ((mutation.inert or "the same output as the unmutated port on these recordings")
                   if status == "no effect" else mutation.equivalent),
        "equivalent": bool(mutation.equivalent),
        "recordings": per,
    }


def score(rows: list[dict]) -> dict:
    counted = [r for r in rows if r["status"] not in ("no effect", "not run") and not r.get("equivalent")]
    caught = [r for r in counted if r["caught"]]
    at_stage = [r for r in caught if r["at_expected_stage"]]
    return {
        "mutations": len(rows),
        "counted": len(counted),
        "no_effect": sum(r["status"] == "no effect" for r in rows),
        "not_run": sum(r["status"] == "not run" for r in rows),
        "caught": len(caught),
        "at_expected_stage": len(at_stage),
        "equivalent_accepted": sum(r["status"] == "equivalent, accepted" for r in rows),
        "equivalent_failed": sum(r["status"] == "WRONGLY FAILED" for r in rows),
        "caught_ratio": len(caught) / len(counted) if counted else None,
        "at_expected_stage_ratio": len(at_stage) / len(counted) if counted else None,
    }


# ----------------------------------------------------------------------------- community-1
# The community-1 matrix judges the clustering half (09-17) on pyannote's own
# intermediates captured with the real models (tests/data/community1/<clip>/): both
# sides start from the capture's segmentations and raw embeddings (`verify.py run
# --embeddings`), so no ONNX model runs and each mutated run takes about a second.
from port import plda as plda_module  # noqa: E402
from port import vbx  # noqa: E402
from port.dumps import encode_window  # noqa: E402

C1_DATA = DATA / "community1"


@dataclass(frozen=True)
class Given:
    """A community-1 recording: a capture folder (segmentations.npz, raw_embeddings.npz,
    reconstruction.npz) and the speaker constraints it is diarized with."""

    folder: Path
    speakers: tuple[tuple[str, int], ...] = ()
    plda: str = ""  # a constructed variant of the real PLDA (`PLDA_VARIANTS`); "" = the real one

    def __str__(self) -> str:
        return (str(self.folder.relative_to(REPO)) + "".join(f" --{k.replace('_', '-')} {v}" for k, v in self.speakers)
                + (f" --plda <{self.plda}>" if self.plda else ""))


def _plda_psi_ascending(folder: Path) -> None:
    """The real PLDA stored with its dimensions in ascending order of psi (plda.npz's rows of
    tr and entries of psi reversed). The model is the same: W and B, hence pyannote's
    eigen-decomposition, phi and features, do not depend on the order of tr's rows."""
    from port.pipeline import PLDA_DIR

    shutil.copyfile(PLDA_DIR / "xvec_transform.npz", folder / "xvec_transform.npz")
    with np.load(PLDA_DIR / "plda.npz") as npz:
        np.savez(folder / "plda.npz", mu=npz["mu"], tr=npz["tr"][::-1], psi=npz["psi"][::-1])


PLDA_VARIANTS = {"psi-ascending": _plda_psi_ascending}


C1_RECORDINGS = {
    "01_dialogue": Given(C1_DATA / "01_dialogue"),
    "02_pyannote_sample": Given(C1_DATA / "02_pyannote_sample"),
    "03_dual_speaker": Given(C1_DATA / "03_dual_speaker"),
    # VBx keeps 2 speakers on 01 and 02, 1 on 03: these constraints make pyannote re-cluster with K-Means
    "01_dialogue-num3": Given(C1_DATA / "01_dialogue", (("num_speakers", 3),)),
    "02_pyannote_sample-num3": Given(C1_DATA / "02_pyannote_sample", (("num_speakers", 3),)),
    "03_dual_speaker-min2": Given(C1_DATA / "03_dual_speaker", (("min_speakers", 2),)),
    # the real PLDA's plda.npz already holds psi in descending order, equal to the generalised
    # eigenvalues within 1.6e-15 relative: a PLDA stored in another order tells the two apart
    "01_dialogue-plda-ascending": Given(C1_DATA / "01_dialogue", plda="psi-ascending"),
    "02_pyannote_sample-plda-ascending": Given(C1_DATA / "02_pyannote_sample", plda="psi-ascending"),
    "03_dual_speaker-plda-ascending": Given(C1_DATA / "03_dual_speaker", plda="psi-ascending"),
    # 820 frames where the reconstruction's ranking ties at the count (7 speakers, 10 min)
    "10_mrbeast_clean_water": Given(C1_DATA / "10_mrbeast_clean_water"),
}
_C1_PLAIN = ("01_dialogue", "02_pyannote_sample", "03_dual_speaker")
_C1_KMEANS = ("01_dialogue-num3", "02_pyannote_sample-num3", "03_dual_speaker-min2")
_C1_PLDA_ASCENDING = tuple(f"{name}-plda-ascending" for name in _C1_PLAIN)
_C1_TIES = ("10_mrbeast_clean_water",)


def _xvec_tf_unscaled(self):
    """xvec_tf without its two sqrt(D) scalings (only the L2 normalisations)."""
    lda, mean1, mean2 = self._lda, self._mean1, self._mean2
    return lambda x: plda_module.l2_norm(lda.T.dot(plda_module.l2_norm(x - mean1).T).T - mean2)


def _xvec_tf_lda_first(self):
    """xvec_tf projecting with the LDA before centring: mean1 subtracted after the projection."""
    lda, mean1, mean2 = self._lda, self._mean1, self._mean2
    D, L = lda.shape
    return lambda x: np.sqrt(L) * plda_module.l2_norm(
        lda.T.dot(np.sqrt(D) * plda_module.l2_norm(x).T).T - mean1.dot(lda) - mean2)


def _plda_instance(make):
    """Bind `make(plda)` as the pipeline's PLDA's xvec_tf."""
    return lambda p: attribute(p.plda, "xvec_tf", make(p.plda))


@contextlib.contextmanager
def _eigen_ascending(p):
    """eigh's eigenvalues (and eigenvectors) kept in ascending order: the [::-1] forgotten."""
    with attribute(p.plda, "_plda_psi", p.plda._plda_psi[::-1].copy()), \
            attribute(p.plda, "_plda_tr", p.plda._plda_tr[::-1].copy()):
        yield


def _phi_from_raw_psi(p):
    """phi = plda.npz's psi (the PLDA's own diagonal), not the generalised eigenvalues of (B, W)."""
    raw = plda_module.load_npz(p.plda.plda_npz, ("psi",))["psi"]
    return attribute(p.plda, "_plda_psi", raw.astype(np.float64))


_cluster_vbx = vbx.cluster_vbx


def _cluster_vbx_with(**overrides):
    def mutated(ahc_init, fea, Phi, Fa, Fb, maxIters=20, init_smoothing=7.0, trace=None):
        kwargs = {"Fa": Fa, "Fb": Fb, "maxIters": maxIters, "init_smoothing": init_smoothing, **overrides}
        return _cluster_vbx(ahc_init, fea, Phi, trace=trace, **kwargs)

    return lambda p: replaced(_cluster_vbx, mutated)


def _cluster_vbx_fa_fb_swapped(ahc_init, fea, Phi, Fa, Fb, maxIters=20, init_smoothing=7.0, trace=None):
    """Fa and Fb swapped."""
    return _cluster_vbx(ahc_init, fea, Phi, Fa=Fb, Fb=Fa, maxIters=maxIters, init_smoothing=init_smoothing, trace=trace)


def _cluster_vbx_float32(ahc_init, fea, Phi, Fa, Fb, maxIters=20, init_smoothing=7.0, trace=None):
    """VBx in float32: features and Phi cast down (as a port keeping its tensors float32)."""
    return _cluster_vbx(ahc_init, np.asarray(fea, dtype=np.float32), np.asarray(Phi, dtype=np.float32),
                        Fa=np.float32(Fa), Fb=np.float32(Fb), maxIters=maxIters, init_smoothing=init_smoothing,
                        trace=trace)


_VBx = vbx.VBx


def _vbx_abs_stop(X, Phi, Fa=1.0, Fb=1.0, pi=10, gamma=None, maxIters=10, epsilon=1e-4, alphaQInit=1.0, ref=None,
                  plot=False, return_model=False, alpha=None, invL=None, trace=None):
    """`port.vbx.VBx` stopping when |ELBO - previous| < epsilon (pyannote stops as soon as the
    ELBO gains less than epsilon, a decrease included)."""
    from scipy.special import logsumexp

    D = X.shape[1]
    if type(pi) is int:
        pi = np.ones(pi) / pi
    G = -0.5 * (np.sum(X**2, axis=1, keepdims=True) + D * np.log(2 * np.pi))
    V = np.sqrt(Phi)
    rho = X * V
    Li = []
    for ii in range(maxIters):
        if ii > 0 or alpha is None or invL is None:
            invL = 1.0 / (1 + Fa / Fb * gamma.sum(axis=0, keepdims=True).T * Phi)
            alpha = Fa / Fb * invL * gamma.T.dot(rho)
        log_p_ = Fa * (rho.dot(alpha.T) - 0.5 * (invL + alpha**2).dot(Phi) + G)
        lpi = np.log(pi + 1e-8)
        log_p_x = logsumexp(log_p_ + lpi, axis=-1)
        log_pX_ = np.sum(log_p_x, axis=0)
        gamma = np.exp(log_p_ + lpi - log_p_x[:, None])
        pi = np.sum(gamma, axis=0)
        pi = pi / pi.sum()
        ELBO = log_pX_ + Fb * 0.5 * np.sum(np.log(invL) - invL - alpha**2 + 1)
        Li.append([ELBO])
        if trace is not None:
            trace(vbx.STAGE, f"iter{ii}_out_gamma", gamma)
            trace(vbx.STAGE, f"iter{ii}_out_pi", pi)
            trace(vbx.STAGE, f"iter{ii}_out_elbo", np.float64(ELBO))
        if ii > 0 and abs(ELBO - Li[-2][0]) < epsilon:
            break
    return (gamma, pi, Li) + ((alpha, invL) if return_model else ())


_vbx_centroids = clustering.vbx_centroids


def _centroids_unpruned(q, sp, train_embeddings, train_embeddings_normed, *args, **kwargs):
    """Every VBx speaker kept (all columns of gamma): the sp > 1e-7 pruning forgotten."""
    return _vbx_centroids(q, np.ones_like(sp), train_embeddings, train_embeddings_normed, *args, **kwargs)


def _centroids_normalised(q, sp, train_embeddings, train_embeddings_normed, *args, **kwargs):
    """Centroids averaged from the L2-normalised embeddings instead of the raw ones."""
    return _vbx_centroids(q, sp, np.array(train_embeddings_normed), train_embeddings_normed, *args, **kwargs)


def _kmeans_seed(seed: int):
    """sklearn's KMeans with random_state=`seed` where pyannote fixes 42."""
    import sklearn.cluster

    original = sklearn.cluster.KMeans

    def seeded(*args, **kwargs):
        return original(*args, **{**kwargs, "random_state": seed})

    return lambda p: attribute(sklearn.cluster, "KMeans", seeded)


_vbx_assign = clustering.vbx_assign


def _assign_euclidean(embeddings, centroids, segmentations, constrained=True, metric="cosine", trace=None):
    """Soft clusters as 2 - euclidean distance instead of 2 - cosine distance."""
    return _vbx_assign(embeddings, centroids, segmentations, constrained, "euclidean", trace)


_constrained_argmax = clustering.constrained_argmax


def _hungarian_rows_reversed(soft_clusters):
    """constrained_argmax solving each chunk with its speakers in reverse order: another
    solver's choice among the tied (inactive) rows."""
    return _constrained_argmax(soft_clusters[:, ::-1, :])[:, ::-1].copy()


def _argmax_not_hungarian(soft_clusters):
    """Each local speaker its best cluster (argmax): two speakers of a chunk may share one."""
    return np.argmax(np.nan_to_num(soft_clusters, nan=np.nanmin(soft_clusters)), axis=2).astype(np.int8)


def _exclusive_uncapped(p):
    """The exclusive diarization reconstructed from the count capped at max_speakers only,
    not at 1 (the second reconstruct call gets the first call's count)."""
    def mutated(self, binarized, hard_clusters, count, count_frames, max_speakers, hook=None):
        stage = self.description.named("reconstruct")
        count = np.minimum(count, max_speakers).astype(np.int8)
        hard_clusters[np.sum(binarized, axis=1) == 0] = -2
        discrete, frames, _ = reconstruct.reconstruct(binarized, self.chunks, hard_clusters, count, count_frames)
        exclusive, _, _ = reconstruct.reconstruct(binarized, self.chunks, hard_clusters, count, count_frames)
        if hook:
            for k, (c, d) in enumerate(((count, discrete), (count, exclusive))):
                hook(stage, f"call{k}_in_hard_clusters", hard_clusters)
                hook(stage, f"call{k}_in_count", c)
                hook(stage, f"call{k}_out_discrete", d)
            hook(stage, "out_frames", encode_window(frames))
        return discrete, exclusive, frames

    import types

    return attribute(p, "reconstruct", types.MethodType(mutated, p))


C1_CATALOGUE: tuple[Mutation, ...] = (
    Mutation("ahc_threshold_31", "11-fcluster", "AHC cut at 3.1's threshold (0.7046) instead of community-1's 0.6",
             _param("threshold", 0.7045654963945799), _C1_PLAIN),
    Mutation("plda_no_sqrt_scaling", "12-plda", "xvec_tf without the sqrt(D) and sqrt(L) scalings of its L2 normalisations",
             _plda_instance(_xvec_tf_unscaled), _C1_PLAIN),
    Mutation("plda_lda_before_centring", "12-plda", "LDA applied before centring (mean1 subtracted after the projection)",
             _plda_instance(_xvec_tf_lda_first), _C1_PLAIN),
    Mutation("plda_eigen_ascending", "12-plda", "eigh's eigenvalues left ascending: phi and the feature columns reversed",
             _eigen_ascending, _C1_PLAIN),
    Mutation("plda_phi_from_raw_psi", "12-plda", "phi taken from plda.npz's psi, before the eigen-decomposition",
             _phi_from_raw_psi, _C1_PLDA_ASCENDING),
    Mutation("vbx_init_smoothing_1", "13-vbx", "AHC one-hot smoothed with softmax(1 x onehot) instead of 7",
             _cluster_vbx_with(init_smoothing=1.0), _C1_PLAIN),
    Mutation("vbx_fa_fb_swapped", "13-vbx", "Fa and Fb swapped (Fa 0.8, Fb 0.07)",
             _swap(_cluster_vbx, _cluster_vbx_fa_fb_swapped), _C1_PLAIN),
    Mutation("vbx_abs_elbo_stop", "13-vbx", "VBx stops when |ELBO gain| < epsilon, so it goes on after a decrease",
             _swap(_VBx, _vbx_abs_stop), _C1_PLAIN,
             inert="VBx's ELBO never decreases on these captures (nor on 900 chunk ranges of them tried): "
                   "both stop tests end at the same iteration"),
    Mutation("vbx_float32", "13-vbx", "VBx run in float32 (features, Phi, Fa, Fb)",
             _swap(_cluster_vbx, _cluster_vbx_float32), _C1_PLAIN),
    Mutation("centroids_unpruned", "14-centroids", "every VBx speaker kept: the pi > 1e-7 pruning forgotten",
             _swap(_vbx_centroids, _centroids_unpruned), _C1_PLAIN),
    Mutation("centroids_normalised", "14-centroids", "centroids averaged from the L2-normalised embeddings",
             _swap(_vbx_centroids, _centroids_normalised), _C1_PLAIN),
    Mutation("kmeans_seed_0", "14-centroids", "K-Means seeded with random_state=0 instead of pyannote's 42",
             _kmeans_seed(0), _C1_KMEANS),
    Mutation("assign_euclidean", "15-assign", "soft clusters from the euclidean distance instead of the cosine",
             _swap(_vbx_assign, _assign_euclidean), _C1_PLAIN),
    Mutation("assign_argmax", "15-assign", "argmax where community-1 takes the Hungarian (constrained_argmax)",
             _swap(clustering.constrained_argmax, _argmax_not_hungarian), _C1_PLAIN),
    Mutation("exclusive_uncapped_count", "16-reconstruct", "exclusive diarization reconstructed from the count not capped at 1",
             _exclusive_uncapped, _C1_PLAIN),
    Mutation("assign_other_solver", "15-assign", "the Hungarian solved with each chunk's speakers in reverse order",
             _swap(clustering.constrained_argmax, _hungarian_rows_reversed), _C1_PLAIN + _C1_TIES,
             equivalent="inactive speakers score min - 1 for every cluster: any free cluster is an optimal assignment"),
    Mutation("c1_ranking_ascending", "16-reconstruct", "clusters ranked by argsort(+activations): the least active kept",
             _numpy_in(reconstruct, argsort=_ascending_argsort), _C1_PLAIN + _C1_TIES),
    Mutation("c1_ties_to_lowest", "16-reconstruct", "a tie at the count broken by taking the least active cluster",
             _swap(reconstruct.to_diarization, _on_tie_frames(_tie_to_lowest)), _C1_TIES,
             inert="no frame where the ranking ties at the count"),
    Mutation("c1_ties_count_minus_one", "16-reconstruct", "count - 1 clusters kept on frames where the ranking ties at the count",
             _swap(reconstruct.to_diarization, _on_tie_frames(_tie_count_minus_one)), _C1_TIES,
             inert="no frame where the ranking ties at the count"),
    Mutation("c1_stable_ties", "16-reconstruct", "clusters ranked by a stable argsort (ties in index order)",
             _numpy_in(reconstruct, argsort=_stable_argsort), _C1_TIES,
             equivalent="the stable order is what numpy gives without x86-simd-sort (arm64, Apple silicon, x86 without AVX2)"),
    Mutation("c1_reversed_ties", "16-reconstruct", "clusters ranked by argsort(a)[::-1]: equal activations in reverse order",
             _swap(reconstruct.to_diarization, _to_diarization_reversed_ties), _C1_TIES,
             equivalent="equal activations ranked in another order: another top-count set of the same values"),
)

CATALOGUES = {"3.1": CATALOGUE, "community-1": C1_CATALOGUE}


class GivenBench(Bench):
    """The community-1 bench: each recording a capture (`Given`), both sides started at 09
    from its segmentations and raw embeddings (`reference.run.run_embeddings`,
    `Pipeline.from_embeddings`), judged as `verify.py run --embeddings` judges."""

    def __init__(self, root: Path, pipeline, reference_pipeline=None, manifest: dict | None = None,
                 recordings: dict[str, Given] | None = None):
        super().__init__(root, pipeline, reference_pipeline, manifest)
        self.given: dict[str, Given] = dict(recordings or C1_RECORDINGS)
        self.paths = {name: g.folder for name, g in self.given.items()}
        self._loaded: dict[Path, dict] = {}
        self._pldas: dict[str, tuple] = {}

    def _plda_variant(self, variant: str) -> tuple:
        """(the port's PLDA, pyannote's PLDA) of a constructed variant, written under root."""
        if variant not in self._pldas:
            from port.pipeline import load_plda
            from reference.run import community1_plda

            folder = self.root / "plda" / variant
            folder.mkdir(parents=True, exist_ok=True)
            PLDA_VARIANTS[variant](folder)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._pldas[variant] = (load_plda(folder), community1_plda(folder))
        return self._pldas[variant]

    @contextlib.contextmanager
    def _with_plda(self, name: str):
        """Both sides on the recording's PLDA (the real one unless it names a variant)."""
        variant = self.given[name].plda
        if not variant:
            yield
            return
        port_plda, reference_plda = self._plda_variant(variant)
        with attribute(self.pipeline, "plda", port_plda), \
                attribute(self.reference_pipeline.clustering, "plda", reference_plda):
            yield

    def baseline(self, name: str):
        with self._with_plda(name):
            return super().baseline(name)

    def run(self, mutation: Mutation, recordings: tuple[str, ...] | None = None) -> dict:
        per: dict[str, dict] = {}
        for name in recordings or mutation.recordings:
            with self._with_plda(name):
                per.update(super().run(mutation, (name,))["recordings"])
        return summarise(mutation, per)

    def _inputs(self, name: str) -> tuple[dict, dict]:
        from port import inputs

        given = self.given[name]
        if given.folder not in self._loaded:
            self._loaded[given.folder] = inputs.load_given(given.folder)
        return self._loaded[given.folder], dict(given.speakers)

    def _manifest(self, name: str) -> dict:
        from port import inputs

        folder = self.given[name].folder
        return {**self.manifest, "uri": name, "audio_sha256": inputs.given_sha256(folder),
                "given": ["04-multilabel", "08-embeddings"], "embeddings": str(folder),
                "speakers": dict(self.given[name].speakers)}

    def reference(self, name: str) -> Path:
        if name not in self.references:
            from port.dumps import DumpWriter
            from reference import run as reference_run

            given, speakers = self._inputs(name)
            with warnings.catch_warnings(), DumpWriter(self.root, "reference", name) as writer:
                warnings.simplefilter("ignore")
                reference_run.run_embeddings(name, given["segmentations"], given["embeddings"], self.reference_pipeline,
                                             given["chunks"], given["frames"], **speakers, hook=writer)
                writer.commit(self._manifest(name))
            self.references[name] = self.root / "reference" / name
        return self.references[name]

    def _port(self, name: str, root: Path, side: str) -> Path:
        from port.dumps import DumpWriter

        given, speakers = self._inputs(name)
        window = lambda w: SlidingWindow(*w) if w else None  # noqa: E731
        with warnings.catch_warnings(), DumpWriter(root, side, name) as writer:
            warnings.simplefilter("ignore")
            self.pipeline.from_embeddings(name, np.array(given["segmentations"]), np.array(given["embeddings"]),
                                          **speakers, chunks=window(given["chunks"]), frames=window(given["frames"]),
                                          hook=writer)
            writer.commit(self._manifest(name))
        return root / side / name


# ----------------------------------------------------------------------------- main
def _table(rows: list[dict], total: dict, title: str = "mutation matrix (fixture models)"):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("mutation", "expected stage", "first failing stage", "result", "RTTM changed", "recordings"):
        table.add_column(column)
    for r in rows:
        if r["status"] == "no effect":
            result = f"[dim]no effect: {r['reason']}[/dim]"
        elif r["status"] == "not run":
            result = "[dim]not run: the unmutated port fails on its recordings[/dim]"
        elif _crash(r):
            result = f"[yellow]port crashed[/yellow]: {_crash(r)}"
        elif r["status"] == "equivalent, accepted":
            result = f"[green]equivalent, accepted[/green]: {r['reason']}"
        elif r["status"] == "WRONGLY FAILED":
            result = f"[red]WRONGLY FAILED[/red] (a valid answer: {r['reason']})"
        elif r["caught"]:
            result = "[green]caught[/green]" + ("" if r["at_expected_stage"] else " [yellow](other stage)[/yellow]")
        else:
            result = "[red]MISSED[/red]"
        table.add_row(r["mutation"], r["expected_stage"], r["first_failure"] or "-", result,
                      "yes" if r["rttm_changed"] else "no", ", ".join(r["recordings"]))
    return table


def _crash(row: dict) -> str:
    """The error a mutated port stopped with (no dump to judge), shortened; '' if none."""
    errors = [r["error"] for r in row["recordings"].values() if r.get("error")]
    return errors[0].splitlines()[0][:90] if errors else ""


def markdown(rows: list[dict], total: dict) -> str:
    lines = ["| mutation: the bug | recordings | expected stage | first failing stage | result | RTTM changed |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] in ("no effect", "not run"):
            result = f"{r['status']}: {r['reason'] or 'the unmutated port fails on its recordings'}"
        elif _crash(r):
            result = f"port crashed: {_crash(r)}"
        elif r["status"] == "equivalent, accepted":
            result = f"equivalent, accepted: {r['reason']}"
        elif r["status"] == "WRONGLY FAILED":
            result = f"**wrongly failed** (a valid answer: {r['reason']})"
        else:
            result = "caught" if r["caught"] and r["at_expected_stage"] else ("caught elsewhere" if r["caught"] else "**missed**")
        lines.append(f"| `{r['mutation']}`: {r['bug']} | {', '.join(r['recordings']) or '-'} | {r['expected_stage']} | "
                     f"{r['first_failure'] or '-'} | {result} | {'yes' if r['rttm_changed'] else 'no'} |")
    lines.append(f"\n{total['caught']} of {total['counted']} counted mutations caught, {total['at_expected_stage']} first at the "
                 f"expected stage; {total['no_effect']} without effect on these recordings; "
                 f"{total['equivalent_accepted']} equivalent answers accepted, {total['equivalent_failed']} wrongly failed.")
    return "\n".join(lines) + "\n"


MODELS = {"3.1": "fixture",
          "community-1": "real-model captures of pyannote's own community-1 intermediates (tests/data/community1), real PLDA"}


def make_bench(pipeline_name: str, dumps: Path, recordings: dict | None = None):
    """(bench, its recordings): 3.1 on the fixture models through the whole pipeline;
    community-1 on the captures from stage 09 (no model runs; the fixture models only
    build both pipelines)."""
    from port.pipeline import Parameters, Pipeline
    from reference import export, models
    from reference.run import build_pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg, emb = models.fixture_segmentation(), models.fixture_embedding()
        folder = export.export(seg, emb)["segmentation"].parent
        parameters = Parameters(pipeline=pipeline_name)
        manifest = {"segmentation_sha256": models.checksum(seg), "embedding_sha256": models.checksum(emb),
                    "models": "fixture", "parameters": parameters.as_dict(), "pipeline": pipeline_name}
        port = Pipeline.from_folder(folder, device="cpu", parameters=parameters)
        reference = build_pipeline(seg, emb, parameters)
    if pipeline_name == "community-1":
        recordings = dict(recordings or C1_RECORDINGS)
        manifest["models"] = MODELS["community-1"]
        return GivenBench(dumps / pipeline_name, port, reference, manifest, recordings), recordings
    return Bench(dumps / pipeline_name, port, reference, manifest, (seg, emb)), dict(recordings or RECORDINGS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated mutation names")
    parser.add_argument("--json", help="write the matrix and score as JSON")
    parser.add_argument("--markdown", help="write the matrix as a markdown table")
    parser.add_argument("--dumps", default=str(REPO / "dumps" / "mutations"), help="where reference dumps are kept")
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    parser.add_argument("--pipeline", choices=list(CATALOGUES), default="3.1",
                        help="which pipeline's catalogue (community-1: on the real-model captures, from stage 09)")
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    catalogue = list(CATALOGUES[args.pipeline])
    if args.list:
        for m in catalogue:
            console.print(f"{m.name:36} {m.stage:16} {m.bug}")
        return 0
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {m.name for m in catalogue})
        if unknown:
            console.print(f"unknown mutation: {', '.join(unknown)} (see --list)")
            return 2
        catalogue = [m for m in catalogue if m.name in wanted]

    bench, recordings_of = make_bench(args.pipeline, Path(args.dumps))
    rows = []
    began = time.perf_counter()
    from rich.progress import Progress

    memo = memoised(bench.pipeline) if args.pipeline == "3.1" else contextlib.nullcontext()
    with memo, Progress(console=console, transient=True) as progress:
        recordings = sorted({r for m in catalogue for r in m.recordings}, key=list(recordings_of).index)
        task = progress.add_task("reference and unmutated port", total=len(recordings))
        baselines = {}
        for name in recordings:
            progress.update(task, description=f"pyannote + unmutated port: {name}")
            _, verdict = bench.baseline(name)
            baselines[name] = {"passed": verdict.passed, "first_failure": verdict.first_failure, "noise": verdict.noise}
            if not verdict.passed:  # a mutation on it would prove nothing
                console.print(f"[red]the unmutated port fails on {name} (first at {verdict.first_failure}): "
                              "no mutation is run on it[/red]")
            progress.advance(task)
        usable = {name for name, b in baselines.items() if b["passed"]}
        task = progress.add_task("mutations", total=len(catalogue))
        for mutation in catalogue:
            progress.update(task, description=f"mutation: {mutation.name}")
            on = tuple(r for r in mutation.recordings if r in usable)
            rows.append(bench.run(mutation, on) if on else summarise(mutation, {}, ran=False))
            progress.advance(task)
    total = score(rows)
    models = MODELS[args.pipeline]
    console.print(_table(rows, total, f"{args.pipeline} mutation matrix ({models})"))
    console.print(
        f"{total['caught']} of {total['counted']} counted mutations caught, {total['at_expected_stage']} at the expected stage "
        f"({100 * (total['at_expected_stage_ratio'] or 0):.0f} %); {total['no_effect']} without effect on these recordings; "
        f"{total['equivalent_accepted']} equivalent answers accepted, {total['equivalent_failed']} wrongly failed; "
        f"{time.perf_counter() - began:.0f} s"
    )
    report = {"pipeline": args.pipeline, "models": models, "score": total, "baselines": baselines, "mutations": rows,
              "recordings": {k: str(v) if isinstance(v, Given) else str(v.relative_to(REPO)) for k, v in recordings_of.items()}}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows, total))
    ok = (total["caught"] == total["counted"] and (total["at_expected_stage_ratio"] or 0) >= 0.9
          and not total["equivalent_failed"])
    return 0 if ok else 1


def _interrupted(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _interrupted)  # dumps are written atomically: nothing half-written
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
