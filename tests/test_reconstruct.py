"""port.reconstruct against pyannote's reconstruct / to_diarization / to_annotation on
random clusterings, with ties between clusters and min_duration_off > 0."""

from __future__ import annotations

import numpy as np
import pytest

from port import reconstruct
from port.aggregate import SlidingWindow

CHUNKS = SlidingWindow(0.0, 10.0, 1.0)
FRAMES = SlidingWindow(-0.00859375, 0.0619375, 0.016875)  # segmentation-3.0's receptive field


def _inputs(rng, num_chunks=15, num_frames=589, local=3, clusters=3):
    segmentations = (rng.random((num_chunks, num_frames, local)) > 0.6).astype(np.float32)
    # long runs rather than frame noise, so turns are turns
    segmentations = np.repeat(segmentations[:, ::31], 31, axis=1)[:, :num_frames]
    hard = rng.integers(0, clusters, size=(num_chunks, local)).astype(np.int8)
    hard[rng.random(hard.shape) < 0.15] = -2
    return segmentations, hard


def _reference_reconstruct(segmentations, hard, count, count_window):
    from types import SimpleNamespace

    from pyannote.audio.pipelines import SpeakerDiarization
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin
    from pyannote.core import SlidingWindow as PSW
    from pyannote.core import SlidingWindowFeature

    # reconstruct only needs `self.to_diarization` (a staticmethod): no models needed
    this = SimpleNamespace(to_diarization=SpeakerDiarizationMixin.to_diarization)
    seg = SlidingWindowFeature(segmentations, PSW(start=0.0, duration=10.0, step=1.0))
    cnt = SlidingWindowFeature(count, PSW(start=count_window.start, duration=count_window.duration, step=count_window.step))
    return SpeakerDiarization.reconstruct(this, seg, hard, cnt)


@pytest.mark.parametrize("seed", range(10))
def test_reconstruct_matches_pyannote(seed):
    from port.segmentation import speaker_count

    rng = np.random.default_rng(seed)
    segmentations, hard = _inputs(rng, clusters=int(rng.integers(1, 5)))
    count, count_window = speaker_count(segmentations, CHUNKS, FRAMES)
    count = np.minimum(count, int(rng.integers(1, 4))).astype(np.int8)
    ours, window, _ = reconstruct.reconstruct(segmentations, CHUNKS, hard, count, count_window)
    theirs = _reference_reconstruct(segmentations, hard, count, count_window)
    np.testing.assert_array_equal(ours, theirs.data)
    w = theirs.sliding_window
    assert (window.start, window.duration, window.step) == (w.start, w.duration, w.step)


@pytest.mark.parametrize("min_duration_off", [0.0, 0.1, 0.5, 2.0])
@pytest.mark.parametrize("seed", range(6))
def test_to_annotation_and_rttm_match_pyannote(seed, min_duration_off):
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin
    from pyannote.core import SlidingWindow as PSW
    from pyannote.core import SlidingWindowFeature

    rng = np.random.default_rng(seed)
    num_frames, num_speakers = 900, int(rng.integers(1, 5))
    discrete = np.repeat((rng.random((num_frames // 15, num_speakers)) > 0.5), 15, axis=0).astype(np.float32)
    if num_speakers > 1:
        discrete[100:200, 1] = discrete[100:200, 0]  # identical turns for two speakers: track order
    discrete[-20:, 0] = 1.0  # a turn running to the end
    frames = SlidingWindow(0.0, 0.0619375, 0.016875)
    turns = reconstruct.to_annotation(discrete, frames, min_duration_off=min_duration_off)
    annotation = SpeakerDiarizationMixin.to_annotation(
        SlidingWindowFeature(discrete, PSW(start=0.0, duration=0.0619375, step=0.016875)),
        min_duration_off=min_duration_off,
    )
    expected = [(s.start, s.end, label) for s, _, label in annotation.itertracks(yield_label=True)]
    assert [(t.start, t.end, t.label) for t in turns] == expected
    mapping = {label: f"SPEAKER_{i:02d}" for i, label in enumerate(annotation.labels())}
    annotation = annotation.rename_labels(mapping=mapping)
    annotation.uri = "rec"
    assert reconstruct.to_rttm(turns, "rec") == annotation.to_rttm()
