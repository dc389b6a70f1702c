"""From clusters back to time: `SpeakerDiarization.reconstruct`, `to_diarization`,
`to_annotation` (pyannote's `Binarize`), label renaming and RTTM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .aggregate import SlidingWindow, aggregate, crop, extent

SEGMENT_PRECISION = 1e-6  # pyannote.core: a segment is empty below 1 microsecond


def reconstruct(
    segmentations: np.ndarray,
    chunks: SlidingWindow,
    hard_clusters: np.ndarray,
    count: np.ndarray,
    count_frames: SlidingWindow,
) -> tuple[np.ndarray, SlidingWindow, np.ndarray]:
    """`SpeakerDiarization.reconstruct`: per chunk, each cluster's activation is the max
    of its local speakers' (-2 marks inactive speakers); then `to_diarization`
    (the discrete diarization, its frames, and the activations it ranked)."""
    num_chunks, num_frames, _ = segmentations.shape
    num_clusters = np.max(hard_clusters) + 1
    clustered = np.nan * np.zeros((num_chunks, num_frames, num_clusters))
    for c, (clusters, segmentation) in enumerate(zip(hard_clusters, segmentations)):
        for k in np.unique(clusters):
            if k == -2:
                continue
            clustered[c, :, k] = np.max(segmentation[:, clusters == k], axis=1)
    return to_diarization(clustered, chunks, count, count_frames)


def to_diarization(
    segmentations: np.ndarray, chunks: SlidingWindow, count: np.ndarray, count_frames: SlidingWindow
) -> tuple[np.ndarray, SlidingWindow, np.ndarray]:
    """`SpeakerDiarizationMixin.to_diarization`: overlap-add the clustered activations,
    then keep, on each frame, the `count` most active clusters. Ties are broken by
    numpy's default argsort of the negated activations, exactly as pyannote does (its
    order of equal values depends on the CPU: docs/machines.md). Returns the discrete
    diarization, its frames and the activations that were ranked."""
    activations, frames = aggregate(
        segmentations, chunks, count_frames, hamming=False, missing=0.0, skip_average=True
    )
    _, num_speakers = activations.shape
    max_speakers_per_frame = int(np.max(count))
    if num_speakers < max_speakers_per_frame:
        activations = np.pad(activations, ((0, 0), (0, max_speakers_per_frame - num_speakers)))

    a_start, a_end = extent(activations.shape[0], frames)
    c_start, c_end = extent(count.shape[0], count_frames)
    start, end = max(a_start, c_start), min(a_end, c_end)
    activations, frames = crop(activations, frames, start, end)
    count, _ = crop(count, count_frames, start, end)

    sorted_speakers = np.argsort(-activations, axis=-1)
    binary = np.zeros_like(activations)
    num_frames = min(len(count), len(sorted_speakers))
    keep = np.arange(binary.shape[1])[None, :] < count[:num_frames].astype(np.int64).reshape(-1, 1)
    rows = np.arange(num_frames)[:, None]
    binary[rows, sorted_speakers[:num_frames]] = keep
    return binary, frames, activations


def _string_generator() -> Iterator[str]:
    """pyannote.core's track names: A..Z, AA..ZZ, AAA..."""
    import itertools
    from string import ascii_uppercase

    size = 1
    while True:
        for letters in itertools.product(ascii_uppercase, repeat=size):
            yield "".join(letters)
        size += 1


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    track: str
    label: int

    @property
    def duration(self) -> float:
        return self.end - self.start if self.end - self.start > SEGMENT_PRECISION else 0.0


def _support(segments: list[tuple[float, float]], collar: float) -> list[tuple[float, float]]:
    """`Timeline.support(collar)`: merge sorted segments separated by gaps < collar."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(segments):
        if merged:
            m_start, m_end = merged[-1]
            gap_start, gap_end = min(end, m_end), max(start, m_start)
            if not gap_end - gap_start > SEGMENT_PRECISION or gap_end - gap_start < collar:
                merged[-1] = (min(start, m_start), max(end, m_end))
                continue
        merged.append((start, end))
    return merged


def to_annotation(
    discrete: np.ndarray, frames: SlidingWindow, min_duration_on: float = 0.0, min_duration_off: float = 0.0
) -> list[Turn]:
    """`SpeakerDiarizationMixin.to_annotation` (`Binarize(onset=0.5, offset=0.5)`):
    speech turns between frame middles, in `Annotation.itertracks` order."""
    num_frames, num_classes = discrete.shape
    timestamps = frames.middles(num_frames)
    tracks = _string_generator()
    turns: list[Turn] = []
    for k in range(num_classes):
        scores = discrete[:, k]
        track = next(tracks)
        start = timestamps[0]
        is_active = scores[0] > 0.5
        for t, y in zip(timestamps[1:], scores[1:]):
            if is_active:
                if y < 0.5:
                    turns.append(Turn(float(start), float(t), track, k))
                    start, is_active = t, False
            elif y > 0.5:
                start, is_active = t, True
        if is_active:
            turns.append(Turn(float(start), float(timestamps[-1]), track, k))

    turns = [turn for turn in turns if turn.end - turn.start > SEGMENT_PRECISION]
    if min_duration_off > 0.0:
        tracks = _string_generator()
        merged = []
        for label in sorted({turn.label for turn in turns}):
            segments = _support([(t.start, t.end) for t in turns if t.label == label], min_duration_off)
            for start, end in _support(segments, 0.0):
                merged.append(Turn(start, end, next(tracks), label))
        turns = merged
    if min_duration_on > 0.0:
        turns = [turn for turn in turns if turn.duration >= min_duration_on]
    return sorted(turns, key=lambda turn: (turn.start, turn.end, turn.track, str(turn.label)))


def speaker_labels(turns: list[Turn]) -> dict[int, str]:
    """pyannote's renaming: sorted cluster indices -> SPEAKER_00, SPEAKER_01, ..."""
    return {k: f"SPEAKER_{i:02d}" for i, k in enumerate(sorted({turn.label for turn in turns}))}


def to_rttm(turns: list[Turn], uri: str, labels: dict[int, str] | None = None) -> str:
    """`Annotation.write_rttm` after renaming."""
    labels = labels or speaker_labels(turns)
    uri = uri or "<NA>"
    return "".join(
        f"SPEAKER {uri} 1 {turn.start:.3f} {turn.duration:.3f} <NA> <NA> {labels[turn.label]} <NA> <NA>\n"
        for turn in turns
    )
