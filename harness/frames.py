"""pyannote's frame grid: diarizations as (frames, clusters) arrays, and the tie-order rule.

`SpeakerDiarizationMixin.to_diarization` keeps, on each frame, the `count` clusters
with the largest overlap-added activations, ranked by numpy's default (unstable)
argsort. Activations are sums of binarized segmentations, so exact ties are common,
and the order numpy gives equal values depends on the CPU (docs/machines.md). Any
top-`count` set of the same activations is then as much pyannote's answer as the one
the reference machine chose: `tie_order` accepts exactly those, and nothing else.

Turns (RTTM lines, dumped segments) are put on the same grid with `raster`: a frame
is active in a turn when its middle lies in [start, end), within the RTTM's
millisecond rounding. Memory is bounded by the grid (the reference's own dump), never
by a turn's times.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

# RTTM times have 3 decimals: a turn boundary that is a frame middle is written within
# 0.5 ms (start) or 1 ms (start + duration) of it; frames are ~17 ms apart
RTTM_TOLERANCE = 0.0015
NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


class TurnsError(ValueError):
    """An RTTM or segment array that cannot be read as turns; the message is one line."""


@dataclass(frozen=True)
class Grid:
    """pyannote's output frames: `frames` windows of `duration` every `step` from `start`."""

    start: float
    duration: float
    step: float
    frames: int

    def middles(self) -> np.ndarray:
        return self.start + self.duration / 2 + self.step * np.arange(self.frames)

    def time(self, frame: int) -> float:
        """The middle of `frame`, in seconds."""
        return float(self.start + self.duration / 2 + self.step * frame)

    @property
    def end(self) -> float:
        """The end of the last frame: how far pyannote's output reaches."""
        return float(self.start + self.step * max(self.frames - 1, 0) + self.duration)


@dataclass(frozen=True)
class Turn:
    start: float
    duration: float
    label: str
    line: int = 0  # 1-based line in its file (0: not from a file)

    @property
    def end(self) -> float:
        return self.start + self.duration


def parse_rttm(text: str, source: str = "RTTM") -> list[Turn]:
    """The SPEAKER lines of an RTTM as turns; one-line TurnsError naming the line when a
    line is not ``SPEAKER uri channel start duration <NA> <NA> label ...`` with finite
    start and non-negative finite duration."""
    turns = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith((";", "#")):
            continue
        if fields[0] != "SPEAKER":
            continue  # other RTTM record types say nothing about speaker turns
        if len(fields) < 8:
            raise TurnsError(f"{source}: line {number}: a SPEAKER line needs 8 fields or more, it has {len(fields)}")
        start, duration = fields[3], fields[4]
        if not (NUMBER.match(start) and NUMBER.match(duration)):
            raise TurnsError(f"{source}: line {number}: start {start!r} and duration {duration!r} must be numbers")
        begin, length = float(start), float(duration)
        if not (math.isfinite(begin) and math.isfinite(length)) or length < 0:
            raise TurnsError(f"{source}: line {number}: start {begin!r}, duration {length!r} "
                             "(want finite numbers, duration >= 0)")
        turns.append(Turn(begin, length, fields[7], number))
    return turns


def raster(turns: list[tuple[float, float, int]], grid: Grid, columns: int,
           tolerance: float = 0.0) -> np.ndarray:
    """(frames, columns) bool: frame f is active in column k when a turn (start, end, k)
    has start - tolerance <= middle_f < end - tolerance. Turns outside the grid add nothing."""
    out = np.zeros((grid.frames, columns), dtype=bool)
    if not turns or grid.frames == 0:
        return out
    middles = grid.middles()
    for start, end, column in turns:
        first = int(np.searchsorted(middles, start - tolerance, side="left"))
        last = int(np.searchsorted(middles, end - tolerance, side="left"))
        if last > first:
            out[first:last, column] = True
    return out


def tolerance(grid: Grid) -> float:
    """The RTTM rounding allowed around a frame middle (never a quarter frame or more)."""
    return min(RTTM_TOLERANCE, grid.step / 4)


@dataclass
class TieCheck:
    """Frames where two diarizations differ, and how many of them are another valid tie order."""

    differing: int = 0
    tied: int = 0
    first_bad: int | None = None  # the first differing frame that is no valid tie order

    @property
    def passed(self) -> bool:
        return self.first_bad is None


def valid_ties(reference: np.ndarray, candidate: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """Per frame: the two differ and the candidate's choice is another top-count set of the
    same activations (as many clusters, the same multiset of values). NaN activations (a
    column the reference has no value for) never tie."""
    reference = np.asarray(reference) > 0.5
    candidate = np.asarray(candidate) > 0.5
    differ = np.flatnonzero(np.any(reference != candidate, axis=1))
    out = np.zeros(reference.shape[0], dtype=bool)
    if not differ.size:
        return out
    values = np.asarray(activations, dtype=np.float64)[differ]
    ref, cand = reference[differ], candidate[differ]
    same_count = ref.sum(axis=1) == cand.sum(axis=1)
    # the chosen values, ascending, padded with +inf: equal rows <=> equal multisets
    chosen_ref = np.sort(np.where(ref, values, np.inf), axis=1)
    chosen_cand = np.sort(np.where(cand, values, np.inf), axis=1)
    out[differ] = same_count & np.all(chosen_ref == chosen_cand, axis=1)
    return out


def tie_order(reference: np.ndarray, candidate: np.ndarray, activations: np.ndarray) -> TieCheck:
    """Judge `candidate` (frames, clusters) 0/1 against pyannote's `reference`, both chosen
    from the same `activations`: a frame where they differ passes only when the candidate
    chose as many clusters as the reference (the count) and the multiset of the chosen
    activations equals the reference's, i.e. the candidate's clusters are another
    top-`count` set of the same values."""
    reference = np.asarray(reference) > 0.5
    candidate = np.asarray(candidate) > 0.5
    differ = np.any(reference != candidate, axis=1)
    valid = valid_ties(reference, candidate, activations)
    check = TieCheck(differing=int(differ.sum()), tied=int(valid.sum()))
    bad = np.flatnonzero(differ & ~valid)
    if bad.size:
        check.first_bad = int(bad[0])
    return check


def tie_frames(activations: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Frames where another top-count set exists: the count-th largest activation equals
    the next one (bool, per frame). `chosen`: the reference's (frames, clusters) 0/1."""
    values = -np.sort(-np.asarray(activations, dtype=np.float64), axis=1)
    count = (np.asarray(chosen) > 0.5).sum(axis=1)
    rows = np.flatnonzero((count > 0) & (count < values.shape[1]))
    out = np.zeros(values.shape[0], dtype=bool)
    out[rows] = values[rows, count[rows] - 1] == values[rows, count[rows]]
    return out


def clusters_at(rows: np.ndarray, frame: int) -> list[int]:
    """The clusters active at `frame` of a (frames, clusters) 0/1 array."""
    return [int(k) for k in np.flatnonzero(np.asarray(rows[frame]) > 0.5)]
