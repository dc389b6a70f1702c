"""port.clustering's pyannote half (filter, AgglomerativeClustering.cluster, assignment)
against pyannote 4.0.7's own classes on random speaker-like embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from port import clustering

THRESHOLD = 0.7045654963945799


def _pyannote_clustering(min_cluster_size=12, threshold=THRESHOLD, constrained=False):
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    pipeline = AgglomerativeClustering(metric="cosine", constrained_assignment=constrained)
    pipeline.instantiate({"method": "centroid", "min_cluster_size": min_cluster_size, "threshold": threshold})
    return pipeline


def _blobs(rng, num_speakers, num_chunks, spread, dimension=16):
    """(chunks, 3, dim) embeddings around `num_speakers` directions, and a 0/1 segmentation."""
    centres = rng.standard_normal((num_speakers, dimension))
    who = rng.integers(0, num_speakers, size=(num_chunks, 3))
    embeddings = (centres[who] + spread * rng.standard_normal((num_chunks, 3, dimension))).astype(np.float32)
    segmentations = (rng.random((num_chunks, 50, 3)) > 0.4).astype(np.float32)
    return embeddings, segmentations


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "constraints",
    [{}, {"num_clusters": 2}, {"min_clusters": 3}, {"max_clusters": 2}, {"min_clusters": 2, "max_clusters": 4}, {"num_clusters": 1}],
)
def test_clustering_matches_pyannote(seed, constraints):
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    rng = np.random.default_rng(seed)
    embeddings, segmentations = _blobs(rng, num_speakers=int(rng.integers(1, 5)), num_chunks=int(rng.integers(5, 60)),
                                       spread=float(rng.choice([0.3, 1.0, 3.0])))
    if seed % 3 == 0:
        embeddings[rng.random(embeddings.shape[:2]) < 0.1] = np.nan  # invalid embeddings are filtered out
    min_cluster_size = int(rng.choice([1, 3, 12]))
    expected = _pyannote_clustering(min_cluster_size)(
        embeddings=embeddings.copy(),
        segmentations=SlidingWindowFeature(segmentations, SlidingWindow(start=0.0, duration=10.0, step=1.0)),
        **constraints,
    )
    got = clustering.clustering(embeddings.copy(), segmentations, min_cluster_size=min_cluster_size, **constraints)
    for name, a, b in zip(("hard", "soft", "centroids"), got, expected):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


@pytest.mark.parametrize("seed", range(5))
def test_cluster_walks_the_dendrogram_like_pyannote(seed):
    """num_clusters far from what the threshold gives: the iteration walk and the
    'Found only ... clusters' fallback."""
    rng = np.random.default_rng(100 + seed)
    embeddings, _ = _blobs(rng, num_speakers=3, num_chunks=30, spread=0.5)
    flat = embeddings.reshape(-1, embeddings.shape[-1])
    for num_clusters in (1, 2, 5, 12):
        ours = clustering.cluster(flat.copy(), min_clusters=num_clusters, max_clusters=num_clusters,
                                  num_clusters=num_clusters, min_cluster_size=5)
        theirs = _pyannote_clustering(5).cluster(flat.copy(), min_clusters=num_clusters, max_clusters=num_clusters,
                                                  num_clusters=num_clusters)
        np.testing.assert_array_equal(ours, theirs)


def test_filter_embeddings_matches_pyannote():
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    rng = np.random.default_rng(7)
    embeddings, segmentations = _blobs(rng, 2, 40, 1.0)
    embeddings[3, 1] = np.nan
    segmentations[5] = 0.0
    ours = clustering.filter_embeddings(embeddings, segmentations)
    theirs = _pyannote_clustering().filter_embeddings(
        embeddings, segmentations=SlidingWindowFeature(segmentations, SlidingWindow(start=0.0, duration=10.0, step=1.0))
    )
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_constrained_argmax_matches_pyannote():
    rng = np.random.default_rng(3)
    soft = rng.random((20, 3, 4))
    soft[2, 1] = np.nan
    np.testing.assert_array_equal(clustering.constrained_argmax(soft), _pyannote_clustering().constrained_argmax(soft))
    hard, soft_out, centroids = clustering.assign_embeddings(
        rng.standard_normal((20, 3, 8)).astype(np.float32), np.arange(20), np.zeros(20, dtype=int),
        rng.integers(0, 3, 20), constrained=True,
    )
    assert hard.shape == (20, 3) and soft_out.shape == (20, 3, 3) and centroids.shape == (3, 8)


def test_set_num_clusters_matches_pyannote():
    pipeline = _pyannote_clustering()
    for args in [(10, None, None, None), (10, 3, None, None), (10, None, 2, 5), (3, None, 5, None), (10, None, 4, 4)]:
        assert clustering.set_num_clusters(*args) == pipeline.set_num_clusters(*args)
    with pytest.raises(ValueError):
        clustering.set_num_clusters(10, None, 5, 2)
