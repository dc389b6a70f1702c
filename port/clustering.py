"""pyannote.audio 4.0.7's ``pipelines/clustering.py``: stages 09-12 of 3.1, 09-15 of community-1.

* ``filter_embeddings``, ``set_num_clusters``, ``assign_embeddings``,
  ``constrained_argmax``: `BaseClustering`'s methods;
* ``AgglomerativeClustering`` (3.1): ``cluster`` and ``clustering`` (its
  ``BaseClustering.__call__``);
* ``VBxClustering`` (community-1), on `port.plda` and `port.vbx`.

The hierarchy itself (centroid linkage, fcluster) is scipy's, mirrored in `port.linkage`.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from .dumps import encode_optional
from .linkage import fcluster, linkage
from .vbx import cluster_vbx

__all__ = [
    "linkage",
    "fcluster",
    "filter_embeddings",
    "set_num_clusters",
    "cluster",
    "assign_embeddings",
    "constrained_argmax",
    "clustering",
    "AgglomerativeClustering",
]

# --- pyannote.audio.pipelines.clustering, AgglomerativeClustering as in pyannote 4.0.7 ---


def filter_embeddings(
    embeddings: np.ndarray, segmentations: np.ndarray, min_active_ratio: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`BaseClustering.filter_embeddings`: keep (chunk, speaker) pairs whose embedding
    has no NaN and who speak alone on at least `min_active_ratio` of the chunk's frames.

    embeddings (num_chunks, num_speakers, dim); segmentations (num_chunks, num_frames, num_speakers).
    Returns (kept embeddings, chunk_idx, speaker_idx)."""
    _, num_frames, _ = segmentations.shape
    single_active_mask = np.sum(segmentations, axis=2, keepdims=True) == 1
    num_clean_frames = np.sum(segmentations * single_active_mask, axis=1)
    active = num_clean_frames >= min_active_ratio * num_frames
    valid = ~np.any(np.isnan(embeddings), axis=2)
    chunk_idx, speaker_idx = np.where(active * valid)
    return embeddings[chunk_idx, speaker_idx], chunk_idx, speaker_idx


def set_num_clusters(
    num_embeddings: int,
    num_clusters: int | None = None,
    min_clusters: int | None = None,
    max_clusters: int | None = None,
) -> tuple[int | None, int, int]:
    """`BaseClustering.set_num_clusters`."""
    min_clusters = num_clusters or min_clusters or 1
    min_clusters = max(1, min(num_embeddings, min_clusters))
    max_clusters = num_clusters or max_clusters or num_embeddings
    max_clusters = max(1, min(num_embeddings, max_clusters))
    if min_clusters > max_clusters:
        raise ValueError(
            f"min_clusters must be smaller than (or equal to) max_clusters "
            f"(here: min_clusters={min_clusters:g} and max_clusters={max_clusters:g})."
        )
    if min_clusters == max_clusters:
        num_clusters = min_clusters
    return num_clusters, min_clusters, max_clusters


def _large_clusters(clusters: np.ndarray, min_cluster_size: int):
    cluster_unique, cluster_counts = np.unique(clusters, return_counts=True)
    return cluster_unique, cluster_counts, cluster_unique[cluster_counts >= min_cluster_size]


def cluster(
    embeddings: np.ndarray,
    min_clusters: int,
    max_clusters: int,
    num_clusters: int | None = None,
    threshold: float = 0.7045654963945799,
    min_cluster_size: int = 12,
    method: str = "centroid",
    metric: str = "cosine",
    trace=None,
) -> np.ndarray:
    """`AgglomerativeClustering.cluster`: centroid linkage of unit-normalised embeddings,
    cut at `threshold`, small clusters merged into the nearest large one, and a walk of
    the dendrogram when the number of large clusters breaks the speaker constraints.

    `trace(stage, name, value)`, when given, sees every linkage and fcluster call
    (the dump hook of `port.pipeline`)."""
    num_embeddings, _ = embeddings.shape
    min_cluster_size = min(min_cluster_size, max(1, round(0.1 * num_embeddings)))
    if num_embeddings == 1:
        return np.zeros((1,), dtype=np.uint8)

    embeddings = np.array(embeddings)  # pyannote normalises its own copy in place
    if metric == "cosine" and method in ("centroid", "median", "ward"):
        with np.errstate(divide="ignore", invalid="ignore"):
            embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
        dendrogram = _traced_linkage(embeddings, method, "euclidean", trace)
    else:
        dendrogram = _traced_linkage(embeddings, method, metric, trace)

    calls = itertools.count()

    def cut(Z, t):
        labels = fcluster(Z, t, criterion="distance")
        if trace is not None:
            k = next(calls)
            trace("11-fcluster", f"call{k}_in_Z", Z)
            trace("11-fcluster", f"call{k}_in_t", np.float64(t))
            trace("11-fcluster", f"call{k}_out_labels", labels)
        return labels - 1

    clusters = cut(dendrogram, threshold)
    cluster_unique, cluster_counts, large_clusters = _large_clusters(clusters, min_cluster_size)
    num_large_clusters = len(large_clusters)

    if num_large_clusters < min_clusters:
        num_clusters = min_clusters
    elif num_large_clusters > max_clusters:
        num_clusters = max_clusters

    if num_clusters is not None and num_large_clusters != num_clusters:
        # switch the stopping criterion from distance to iteration index
        _dendrogram = np.copy(dendrogram)
        _dendrogram[:, 2] = np.arange(num_embeddings - 1)
        best_iteration = num_embeddings - 1
        best_num_large_clusters = 1
        # walk away from the threshold, nearest merges first
        for iteration in np.argsort(np.abs(dendrogram[:, 2] - threshold)):
            new_cluster_size = _dendrogram[iteration, 3]
            if new_cluster_size < min_cluster_size:
                continue
            clusters = cut(_dendrogram, iteration)
            cluster_unique, cluster_counts, large_clusters = _large_clusters(clusters, min_cluster_size)
            num_large_clusters = len(large_clusters)
            if abs(num_large_clusters - num_clusters) < abs(best_num_large_clusters - num_clusters):
                best_iteration = iteration
                best_num_large_clusters = num_large_clusters
            if num_large_clusters == num_clusters:
                break
        if best_num_large_clusters != num_clusters:
            clusters = cut(_dendrogram, best_iteration)
            cluster_unique, cluster_counts, large_clusters = _large_clusters(clusters, min_cluster_size)
            num_large_clusters = len(large_clusters)

    if num_large_clusters == 0:
        clusters[:] = 0
        return clusters

    small_clusters = cluster_unique[cluster_counts < min_cluster_size]
    if len(small_clusters) == 0:
        return clusters

    # re-assign each small cluster to the most similar large cluster (centroid distance)
    large_centroids = np.vstack([np.mean(embeddings[clusters == k], axis=0) for k in large_clusters])
    small_centroids = np.vstack([np.mean(embeddings[clusters == k], axis=0) for k in small_clusters])
    centroids_cdist = cdist(large_centroids, small_centroids, metric=metric)
    for small_k, large_k in enumerate(np.argmin(centroids_cdist, axis=0)):
        clusters[clusters == small_clusters[small_k]] = large_clusters[large_k]
    _, clusters = np.unique(clusters, return_inverse=True)
    return clusters


def _traced_linkage(X: np.ndarray, method: str, metric: str, trace) -> np.ndarray:
    Z = linkage(X, method=method, metric=metric)
    if trace is not None:
        trace("10-linkage", "in_X", X)
        trace("10-linkage", "out_Z", Z)
    return Z


def constrained_argmax(soft_clusters: np.ndarray) -> np.ndarray:
    """`BaseClustering.constrained_argmax`: per chunk, the Hungarian assignment of
    local speakers to clusters maximising the scores (NaN scored as the minimum)."""
    soft_clusters = np.nan_to_num(soft_clusters, nan=np.nanmin(soft_clusters))
    num_chunks, num_speakers, _ = soft_clusters.shape
    hard_clusters = -2 * np.ones((num_chunks, num_speakers), dtype=np.int8)
    for c, cost in enumerate(soft_clusters):
        speakers, clusters = linear_sum_assignment(cost, maximize=True)
        for s, k in zip(speakers, clusters):
            hard_clusters[c, s] = k
    return hard_clusters


def _mean_rows(x: np.ndarray) -> np.ndarray:
    """`np.mean(x, axis=0)`, NaN (in mean's dtype) when `x` has no rows, as numpy returns it,
    without numpy's "Mean of empty slice" RuntimeWarning (one-speaker input: nothing to cluster)."""
    if x.shape[0] == 0:
        return np.full(x.shape[1:], np.nan, dtype=np.mean(np.zeros((1,) + x.shape[1:], dtype=x.dtype), axis=0).dtype)
    return np.mean(x, axis=0)


def assign_embeddings(
    embeddings: np.ndarray,
    train_chunk_idx: np.ndarray,
    train_speaker_idx: np.ndarray,
    train_clusters: np.ndarray,
    constrained: bool = False,
    metric: str = "cosine",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`BaseClustering.assign_embeddings`: centroids of the clustered embeddings, then
    every (chunk, speaker) embedding to its most similar centroid (score 2 - distance).
    Returns (hard_clusters, soft_clusters, centroids)."""
    num_clusters = np.max(train_clusters) + 1
    num_chunks, num_speakers, dimension = embeddings.shape
    train_embeddings = embeddings[train_chunk_idx, train_speaker_idx]
    centroids = np.vstack([_mean_rows(train_embeddings[train_clusters == k]) for k in range(num_clusters)])
    e2k_distance = cdist(embeddings.reshape(num_chunks * num_speakers, dimension), centroids, metric=metric)
    soft_clusters = 2 - e2k_distance.reshape(num_chunks, num_speakers, -1)
    if constrained:
        hard_clusters = constrained_argmax(soft_clusters)
    else:
        hard_clusters = np.argmax(soft_clusters, axis=2)
    return hard_clusters, soft_clusters, centroids


def clustering(
    embeddings: np.ndarray,
    segmentations: np.ndarray,
    num_clusters: int | None = None,
    min_clusters: int | None = None,
    max_clusters: int | None = None,
    threshold: float = 0.7045654963945799,
    min_cluster_size: int = 12,
    method: str = "centroid",
    metric: str = "cosine",
    constrained_assignment: bool = False,
    trace=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`BaseClustering.__call__` with `AgglomerativeClustering.cluster`:
    (hard_clusters (chunks, speakers), soft_clusters (chunks, speakers, k), centroids (k, dim)).

    `trace(stage, name, value)` sees the intermediate results (filter, linkage, fcluster)."""
    train_embeddings, train_chunk_idx, train_speaker_idx = filter_embeddings(embeddings, segmentations)
    if trace is not None:
        trace("09-filter", "out_embeddings", train_embeddings)
        trace("09-filter", "out_chunk_idx", train_chunk_idx)
        trace("09-filter", "out_speaker_idx", train_speaker_idx)
    num_embeddings, _ = train_embeddings.shape
    num_clusters, min_clusters, max_clusters = set_num_clusters(
        num_embeddings, num_clusters=num_clusters, min_clusters=min_clusters, max_clusters=max_clusters
    )
    if max_clusters < 2:
        # no clustering when min_clusters = max_clusters = 1
        num_chunks, num_speakers, _ = embeddings.shape
        hard_clusters = np.zeros((num_chunks, num_speakers), dtype=np.int8)
        soft_clusters = np.ones((num_chunks, num_speakers, 1))
        centroids = _mean_rows(train_embeddings)[None]
        return hard_clusters, soft_clusters, centroids

    if trace is not None:
        for name, value in (
            ("min_clusters", min_clusters),
            ("max_clusters", max_clusters),
            ("num_clusters", num_clusters),
            ("threshold", threshold),
            ("min_cluster_size", min_cluster_size),
        ):
            trace("11-fcluster", f"in_{name}", encode_optional(value))

    train_clusters = cluster(
        train_embeddings,
        min_clusters=min_clusters,
        max_clusters=max_clusters,
        num_clusters=num_clusters,
        threshold=threshold,
        min_cluster_size=min_cluster_size,
        method=method,
        metric=metric,
        trace=trace,
    )
    if trace is not None:
        trace("11-fcluster", "out_clusters", np.asarray(train_clusters))
    return assign_embeddings(
        embeddings,
        train_chunk_idx,
        train_speaker_idx,
        train_clusters,
        constrained=constrained_assignment,
        metric=metric,
    )


class AgglomerativeClustering:
    """`pipelines.clustering.AgglomerativeClustering` (the 3.1 pipeline's): centroid
    linkage of unit-normalised embeddings, fcluster at `threshold`, small clusters
    merged into large ones, argmax assignment."""

    def __init__(self, threshold: float = 0.7045654963945799, min_cluster_size: int = 12, method: str = "centroid",
                 metric: str = "cosine", constrained_assignment: bool = False):
        self.threshold, self.min_cluster_size, self.method = threshold, min_cluster_size, method
        self.metric, self.constrained_assignment = metric, constrained_assignment

    def cluster(self, embeddings, min_clusters, max_clusters, num_clusters=None, trace=None) -> np.ndarray:
        """`AgglomerativeClustering.cluster`."""
        return cluster(embeddings, min_clusters, max_clusters, num_clusters, threshold=self.threshold,
                       min_cluster_size=self.min_cluster_size, method=self.method, metric=self.metric, trace=trace)

    def __call__(self, embeddings, segmentations, num_clusters=None, min_clusters=None, max_clusters=None, trace=None):
        """`BaseClustering.__call__`: (hard_clusters, soft_clusters, centroids)."""
        return clustering(embeddings, segmentations, num_clusters=num_clusters, min_clusters=min_clusters,
                          max_clusters=max_clusters, threshold=self.threshold, min_cluster_size=self.min_cluster_size,
                          method=self.method, metric=self.metric, constrained_assignment=self.constrained_assignment,
                          trace=trace)


# --- pyannote.audio.pipelines.clustering, VBxClustering as in pyannote 4.0.7 (community-1) ---
#
# Stages, each a function that can run alone on dumped inputs:
#   09-filter     filter_embeddings (above)
#   10/11         vbx_ahc_init: centroid linkage of the L2-normalised embeddings, cut at threshold
#   12-plda       vbx_plda: x-vectors into the PLDA space (port.plda.PLDA)
#   13-vbx        port.vbx.cluster_vbx
#   14-centroids  vbx_centroids: VBx-weighted centroids, K-Means when the count breaks the constraints
#   15-assign     vbx_assign: 2 - cosine distance to each centroid, constrained (Hungarian) or argmax

__all__ += ["vbx_ahc_init", "vbx_ahc_labels", "vbx_plda", "vbx_centroids", "vbx_assign", "VBxClustering"]


def _segmentation_data(segmentations) -> np.ndarray:
    """The (num_chunks, num_frames, num_speakers) array of a SlidingWindowFeature or of a plain array."""
    return np.asarray(getattr(segmentations, "data", segmentations))


def vbx_ahc_init(train_embeddings: np.ndarray, threshold: float = 0.6, trace=None) -> tuple[np.ndarray, np.ndarray]:
    """`VBxClustering.__call__`'s AHC: centroid linkage of the L2-normalised train embeddings,
    fcluster at `threshold` (distance), labels renumbered 0..K-1 by np.unique.

    Returns (ahc_clusters (E,) int64, train_embeddings_normed (E, D), the array K-Means reuses)."""
    train_embeddings_normed = train_embeddings / np.linalg.norm(train_embeddings, axis=1, keepdims=True)
    dendrogram = linkage(train_embeddings_normed, method="centroid", metric="euclidean")
    if trace is not None:
        # a copy: K-Means (copy_x=False) later shifts this array in place by its mean and back
        trace("10-linkage", "in_X", np.array(train_embeddings_normed, copy=True))
        trace("10-linkage", "out_Z", dendrogram)
    return vbx_ahc_labels(dendrogram, threshold, trace=trace), train_embeddings_normed


def vbx_ahc_labels(dendrogram: np.ndarray, threshold: float = 0.6, trace=None) -> np.ndarray:
    """The AHC labels VBx starts from: ``fcluster(dendrogram, threshold, "distance") - 1``,
    renumbered 0..K-1 by np.unique; (E,) int64."""
    labels = fcluster(dendrogram, threshold, criterion="distance")
    ahc_clusters = labels - 1
    _, ahc_clusters = np.unique(ahc_clusters, return_inverse=True)
    if trace is not None:
        trace("11-fcluster", "in_threshold", np.float64(threshold))
        trace("11-fcluster", "call0_in_Z", dendrogram)
        trace("11-fcluster", "call0_in_t", np.float64(threshold))
        trace("11-fcluster", "call0_out_labels", labels)
        trace("11-fcluster", "out_ahc_clusters", ahc_clusters.astype(np.int64, copy=False))
    return ahc_clusters


def vbx_plda(plda, train_embeddings: np.ndarray, trace=None) -> np.ndarray:
    """`VBxClustering.__call__`'s ``fea = self.plda(train_embeddings)``, as its two transforms
    (``xvec_tf`` then ``plda_tf``, as `PLDA.__call__` composes them). Returns fea (E, lda_dimension)."""
    xvec = plda.xvec_tf(train_embeddings)
    fea = plda.plda_tf(xvec, lda_dim=plda.lda_dimension)
    if trace is not None:
        trace("12-plda", "in_lda_dimension", np.int64(plda.lda_dimension))
        trace("12-plda", "out_xvec", xvec)
        trace("12-plda", "out_fea", fea)
        trace("12-plda", "out_phi", plda.phi)
    return fea


def vbx_centroids(
    q: np.ndarray,
    sp: np.ndarray,
    train_embeddings: np.ndarray,
    train_embeddings_normed: np.ndarray,
    num_clusters: int | None = None,
    min_clusters: int | float = 1,
    max_clusters: int | float = np.inf,
    trace=None,
) -> tuple[np.ndarray, bool]:
    """`VBxClustering.__call__`'s centroids: responsibility-weighted means of the speakers VBx
    kept (``sp > 1e-7``); re-clustered with K-Means (n_init=3, random_state=42, copy_x=False, on
    the normalised embeddings, which it shifts in place and back) when the automatic count is
    below `min_clusters`, above `max_clusters` or differs from `num_clusters`.

    Returns (centroids (K', D): float64, or the embeddings' dtype after K-Means, as pyannote's
    np.mean gives; kmeans_ran: constrained assignment is disabled when True)."""
    if trace is not None:
        trace("14-centroids", "in_num_clusters", encode_optional(num_clusters))
        trace("14-centroids", "in_min_clusters", encode_optional(min_clusters))
        trace("14-centroids", "in_max_clusters", encode_optional(max_clusters))
    dimension = train_embeddings.shape[-1]
    kept = sp > 1e-7
    W = q[:, kept]  # responsibilities of speakers that VBx kept
    centroids = W.T @ train_embeddings.reshape(-1, dimension) / W.sum(0, keepdims=True).T

    auto_num_clusters, _ = centroids.shape
    if auto_num_clusters < min_clusters:
        num_clusters = min_clusters
    elif auto_num_clusters > max_clusters:
        num_clusters = max_clusters
    kmeans_ran = bool(num_clusters and num_clusters != auto_num_clusters)
    kmeans_clusters = None
    if kmeans_ran:
        from sklearn.cluster import KMeans  # pyannote's own K-Means, same seed

        kmeans_clusters = KMeans(n_clusters=num_clusters, n_init=3, random_state=42, copy_x=False).fit_predict(
            train_embeddings_normed
        )
        centroids = np.vstack([np.mean(train_embeddings[kmeans_clusters == k], axis=0) for k in range(num_clusters)])
    if trace is not None:
        trace("14-centroids", "out_kept", kept)
        trace("14-centroids", "out_centroids", centroids)
        if kmeans_clusters is not None:
            trace("14-centroids", "out_kmeans_clusters", kmeans_clusters)
    return centroids, kmeans_ran


def vbx_assign(
    embeddings: np.ndarray,
    centroids: np.ndarray,
    segmentations,
    constrained: bool = True,
    metric: str = "cosine",
    trace=None,
) -> tuple[np.ndarray, np.ndarray]:
    """`VBxClustering.__call__`'s assignment: soft = 2 - cdist(embeddings, centroids); when
    constrained, inactive (chunk, speaker) pairs get ``soft.min() - 1`` and the Hungarian
    assignment decides (int8 labels), otherwise argmax (int64). Returns (hard (C, S), soft (C, S, K'))."""
    data = _segmentation_data(segmentations)
    num_chunks, num_speakers, dimension = embeddings.shape
    e2k_distance = cdist(embeddings.reshape(num_chunks * num_speakers, dimension), centroids, metric=metric).reshape(
        num_chunks, num_speakers, -1
    )
    soft_clusters = 2 - e2k_distance
    if constrained:
        const = soft_clusters.min() - 1.0  # const < any valid score (NaN when an embedding is NaN, as in pyannote)
        soft_clusters[data.sum(1) == 0] = const
        hard_clusters = constrained_argmax(soft_clusters)
    else:
        hard_clusters = np.argmax(soft_clusters, axis=2)
    hard_clusters = hard_clusters.reshape(num_chunks, num_speakers)
    if trace is not None:
        trace("15-assign", "out_soft_clusters", soft_clusters)
        trace("15-assign", "out_hard_clusters", hard_clusters)
    return hard_clusters, soft_clusters


class VBxClustering:
    """`pyannote.audio.pipelines.clustering.VBxClustering` (community-1: threshold 0.6,
    Fa 0.07, Fb 0.8, 20 VBx iterations, init smoothing 7, cosine, constrained assignment).

    `plda`: a `port.plda.PLDA` (anything with ``xvec_tf``, ``plda_tf``, ``phi``, ``lda_dimension``)."""

    expects_num_clusters = False

    def __init__(
        self,
        plda,
        threshold: float = 0.6,
        Fa: float = 0.07,
        Fb: float = 0.8,
        metric: str = "cosine",
        constrained_assignment: bool = True,
        max_iters: int = 20,
        init_smoothing: float = 7.0,
    ):
        self.plda = plda
        self.threshold = threshold
        self.Fa = Fa
        self.Fb = Fb
        self.metric = metric
        self.constrained_assignment = constrained_assignment
        self.max_iters = max_iters
        self.init_smoothing = init_smoothing

    def __call__(
        self,
        embeddings: np.ndarray,
        segmentations,
        num_clusters: int | None = None,
        min_clusters: int | None = None,
        max_clusters: int | None = None,
        trace=None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`VBxClustering.__call__`: (hard_clusters (C, S), soft_clusters (C, S, K'), centroids (K', D)).

        `segmentations`: (C, F, S) binarized, a SlidingWindowFeature or its array. pyannote gets
        min/max from `SpeakerDiarization.apply` (set_num_speakers: 1 and inf by default) and
        fails on None; here None means those defaults. No set_num_clusters, as in pyannote."""
        min_clusters = 1 if min_clusters is None else min_clusters
        max_clusters = np.inf if max_clusters is None else max_clusters
        constrained_assignment = self.constrained_assignment
        data = _segmentation_data(segmentations)

        train_embeddings, train_chunk_idx, train_speaker_idx = filter_embeddings(embeddings, data)
        if trace is not None:
            trace("09-filter", "out_embeddings", train_embeddings)
            trace("09-filter", "out_chunk_idx", train_chunk_idx)
            trace("09-filter", "out_speaker_idx", train_speaker_idx)

        if train_embeddings.shape[0] < 2:
            # do NOT apply clustering when the number of training embeddings is less than 2
            num_chunks, num_speakers, _ = embeddings.shape
            hard_clusters = np.zeros((num_chunks, num_speakers), dtype=np.int8)
            soft_clusters = np.ones((num_chunks, num_speakers, 1))
            centroids = _mean_rows(train_embeddings)[None]  # np.mean(..., keepdims=True)
            if trace is not None:
                trace("15-assign", "out_soft_clusters", soft_clusters)
                trace("15-assign", "out_hard_clusters", hard_clusters)
            return hard_clusters, soft_clusters, centroids

        ahc_clusters, train_embeddings_normed = vbx_ahc_init(train_embeddings, self.threshold, trace=trace)
        fea = vbx_plda(self.plda, train_embeddings, trace=trace)
        q, sp = cluster_vbx(
            ahc_clusters,
            fea,
            self.plda.phi,
            Fa=self.Fa,
            Fb=self.Fb,
            maxIters=self.max_iters,
            init_smoothing=self.init_smoothing,
            trace=trace,
        )
        centroids, kmeans_ran = vbx_centroids(
            q,
            sp,
            train_embeddings,
            train_embeddings_normed,
            num_clusters=num_clusters,
            min_clusters=min_clusters,
            max_clusters=max_clusters,
            trace=trace,
        )
        if kmeans_ran:
            # disable constrained assignment when forcing the number of clusters
            constrained_assignment = False
        hard_clusters, soft_clusters = vbx_assign(
            embeddings, centroids, data, constrained=constrained_assignment, metric=self.metric, trace=trace
        )
        return hard_clusters, soft_clusters, centroids
