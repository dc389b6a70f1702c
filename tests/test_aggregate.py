"""Properties of port.aggregate against pyannote's own Inference.aggregate / trim,
on random inputs: shapes, NaNs (partial stitching), warm-up, hamming, skip_average."""

from __future__ import annotations

import numpy as np
import pytest

from port.aggregate import SlidingWindow, aggregate, trim


def _pyannote(scores, chunks, frames, **kwargs):
    from pyannote.audio.core.inference import Inference
    from pyannote.core import SlidingWindow as PSW
    from pyannote.core import SlidingWindowFeature

    out = Inference.aggregate(
        SlidingWindowFeature(scores.copy(), PSW(start=chunks.start, duration=chunks.duration, step=chunks.step)),
        PSW(start=frames.start, duration=frames.duration, step=frames.step),
        **kwargs,
    )
    w = out.sliding_window
    return out.data, (w.start, w.duration, w.step)


CASES = [
    dict(),
    dict(hamming=True),
    dict(warm_up=(0.5, 0.5)),
    dict(warm_up=(1.0, 0.0), hamming=True, missing=0.0),
    dict(skip_average=True, missing=0.0),
    dict(epsilon=1e-6, missing=-1.0),
]


@pytest.mark.parametrize("kwargs", CASES)
@pytest.mark.parametrize("seed", range(6))
def test_aggregate_matches_pyannote(seed, kwargs):
    rng = np.random.default_rng(seed)
    num_chunks = int(rng.integers(1, 30))
    num_frames = int(rng.integers(5, 120))
    num_classes = int(rng.integers(1, 5))
    duration = float(rng.choice([5.0, 10.0]))
    chunks = SlidingWindow(start=float(rng.choice([0.0, 0.25])), duration=duration, step=duration * float(rng.choice([0.1, 0.25, 0.5])))
    frames = SlidingWindow(start=float(rng.uniform(-0.01, 0.01)), duration=duration / num_frames * 1.3, step=duration / num_frames)
    scores = rng.random((num_chunks, num_frames, num_classes)).astype(np.float32)
    if seed % 2:  # NaNs, as left by reconstruct for clusters absent from a chunk
        scores[rng.random(scores.shape) < 0.3] = np.nan
        scores[0] = np.nan
    if seed == 5:
        scores = (scores > 0.5).astype(np.float64)
    before = scores.copy()
    data, window = aggregate(scores, chunks, frames, **kwargs)
    expected, expected_window = _pyannote(scores, chunks, frames, **kwargs)
    assert data.dtype == expected.dtype and data.shape == expected.shape
    np.testing.assert_array_equal(data, expected)  # bitwise, NaNs included
    assert (window.start, window.duration, window.step) == expected_window
    np.testing.assert_array_equal(scores, before)  # the port leaves its input alone


@pytest.mark.parametrize("warm_up", [(0.0, 0.0), (0.1, 0.1), (0.25, 0.0)])
def test_trim_matches_pyannote(warm_up):
    from pyannote.audio.core.inference import Inference
    from pyannote.core import SlidingWindow as PSW
    from pyannote.core import SlidingWindowFeature

    scores = np.random.default_rng(0).random((7, 589, 3)).astype(np.float32)
    chunks = SlidingWindow(0.0, 10.0, 1.0)
    data, window = trim(scores, chunks, warm_up=warm_up)
    expected = Inference.trim(SlidingWindowFeature(scores, PSW(start=0.0, duration=10.0, step=1.0)), warm_up=warm_up)
    np.testing.assert_array_equal(data, expected.data)
    w = expected.sliding_window
    assert (window.start, window.duration, window.step) == (w.start, w.duration, w.step)


def test_sliding_window_matches_pyannote_core():
    from pyannote.core import Segment
    from pyannote.core import SlidingWindow as PSW

    ours, theirs = SlidingWindow(-0.0123, 0.0619, 0.0169), PSW(start=-0.0123, duration=0.0619, step=0.0169)
    for i in (0, 1, 17, 588, 10_000):
        assert ours[i] == (theirs[i].start, theirs[i].end)
        assert ours.middles(i + 1)[i] == theirs[i].middle
    for t in (0.0, 0.5, 3.2, 1234.5):
        assert ours.closest_frame(t) == theirs.closest_frame(t)
    assert ours.range_to_segment(3, 7) == tuple(theirs.range_to_segment(3, 7))
    for start, end in ((0.0, 1.0), (0.31, 12.7), (5.0, 5.5)):
        i, j = ours.crop_loose(start, end)
        assert list(range(i, j)) == list(theirs.crop(Segment(start, end), mode="loose"))
