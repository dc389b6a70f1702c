"""Overlap-add aggregation of chunk-level scores: `pyannote.audio.core.inference.Inference.aggregate`.

Also the small piece of `pyannote.core.SlidingWindow` the pipeline relies on, with
pyannote.core's float arithmetic kept as is (frame times must match to the frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SlidingWindow:
    """`pyannote.core.SlidingWindow` (start, duration, step in seconds; no end)."""

    start: float = 0.0
    duration: float = 0.030
    step: float = 0.010

    def __getitem__(self, i: int) -> tuple[float, float]:
        """(start, end) of window i, as `SlidingWindow.__getitem__` computes it."""
        start = self.start + i * self.step
        return start, start + self.duration

    def closest_frame(self, t: float) -> int:
        """`SlidingWindow.closest_frame`: index of the window whose middle is closest to t."""
        return int(np.rint((t - self.start - 0.5 * self.duration) / self.step))

    def middles(self, n: int) -> np.ndarray:
        """`Segment.middle` of the first n windows: 0.5 * (start + end), float64."""
        starts = self.start + np.arange(n) * self.step
        return 0.5 * (starts + (starts + self.duration))

    def range_to_segment(self, i0: int, n: int) -> tuple[float, float]:
        """`SlidingWindow.range_to_segment`: extent of frames [i0, i0 + n)."""
        start = self.start + (i0 - 0.5) * self.step + 0.5 * self.duration
        end = start + n * self.step
        if i0 == 0:
            start = self.start
        return start, end

    def crop_loose(self, start: float, end: float) -> tuple[int, int]:
        """Frame range [i, j) intersecting (start, end): `SlidingWindow.crop(mode="loose")`."""
        i = int(np.ceil((start - self.duration - self.start) / self.step))
        j = int(np.floor((end - self.start) / self.step))
        return i, j + 1


def crop(data: np.ndarray, window: SlidingWindow, start: float, end: float) -> tuple[np.ndarray, SlidingWindow]:
    """`SlidingWindowFeature.crop(Segment(start, end), mode="loose", return_data=False)`."""
    i, j = window.crop_loose(start, end)
    n = data.shape[0]
    first, last = max(i, 0), min(j, n)
    cropped = data[first:last] if j >= 0 and i < n else data[:0]
    return cropped, SlidingWindow(window[first][0], window.duration, window.step)


def extent(num_frames: int, window: SlidingWindow) -> tuple[float, float]:
    """`SlidingWindowFeature.extent`."""
    return window.range_to_segment(0, num_frames)


def trim(scores: np.ndarray, chunks: SlidingWindow, warm_up: tuple[float, float] = (0.1, 0.1)):
    """`Inference.trim`: drop the warm-up frames at both ends of each chunk."""
    _, num_frames, _ = scores.shape
    left = round(num_frames * warm_up[0])
    right = round(num_frames * warm_up[1])
    new_chunks = SlidingWindow(
        start=chunks.start + warm_up[0] * chunks.duration,
        step=chunks.step,
        duration=(1 - warm_up[0] - warm_up[1]) * chunks.duration,
    )
    return scores[:, left : num_frames - right], new_chunks


def aggregate(
    scores: np.ndarray,
    chunks: SlidingWindow,
    frames: SlidingWindow,
    warm_up: tuple[float, float] = (0.0, 0.0),
    epsilon: float = 1e-12,
    hamming: bool = False,
    missing: float = np.nan,
    skip_average: bool = False,
) -> tuple[np.ndarray, SlidingWindow]:
    """`Inference.aggregate`: (num_chunks, num_frames_per_chunk, num_classes) chunk scores,
    overlap-added onto the frame grid; returns (num_frames, num_classes) float32 and
    the frames' sliding window.

    The accumulation runs chunk by chunk in float32 with float64 weights, in
    pyannote's order, so results are bitwise equal to pyannote's.
    """
    num_chunks, num_frames_per_chunk, num_classes = scores.shape
    frames = SlidingWindow(start=chunks.start, duration=frames.duration, step=frames.step)

    hamming_window = (
        np.hamming(num_frames_per_chunk).reshape(-1, 1) if hamming else np.ones((num_frames_per_chunk, 1))
    )
    warm_up_window = np.ones((num_frames_per_chunk, 1))
    warm_up_left = round(warm_up[0] / chunks.duration * num_frames_per_chunk)
    warm_up_window[:warm_up_left] = epsilon
    warm_up_right = round(warm_up[1] / chunks.duration * num_frames_per_chunk)
    warm_up_window[num_frames_per_chunk - warm_up_right :] = epsilon

    num_frames = (
        frames.closest_frame(chunks.start + chunks.duration + (num_chunks - 1) * chunks.step + 0.5 * frames.duration)
        + 1
    )
    aggregated_output = np.zeros((num_frames, num_classes), dtype=np.float32)
    overlapping_chunk_count = np.zeros((num_frames, num_classes), dtype=np.float32)
    aggregated_mask = np.zeros((num_frames, num_classes), dtype=np.float32)

    for c in range(num_chunks):
        score = np.array(scores[c])  # pyannote zeroes NaNs in place; the caller's array stays intact here
        chunk_start = chunks[c][0]
        mask = 1 - np.isnan(score)
        np.nan_to_num(score, copy=False, nan=0.0)
        start_frame = frames.closest_frame(chunk_start + 0.5 * frames.duration)
        window = slice(start_frame, start_frame + num_frames_per_chunk)
        aggregated_output[window] += score * mask * hamming_window * warm_up_window
        overlapping_chunk_count[window] += mask * hamming_window * warm_up_window
        aggregated_mask[window] = np.maximum(aggregated_mask[window], mask)

    if skip_average:
        average = aggregated_output
    else:
        average = aggregated_output / np.maximum(overlapping_chunk_count, epsilon)
    average[aggregated_mask == 0.0] = missing
    return average, frames
