"""port.linkage.linkage / fcluster against scipy.cluster.hierarchy.

Merge columns (ids, counts) and flat labels must be exactly equal; heights
within rtol 1e-9 (in practice they are bit-identical).
"""

from __future__ import annotations

import itertools
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster import hierarchy as H

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from port import linkage as C  # noqa: E402
from port.linkage import fcluster, linkage  # noqa: E402


def scipy_linkage(X):
    with warnings.catch_warnings():
        # square inputs may look like distance matrices to scipy
        warnings.simplefilter("ignore", H.ClusterWarning)
        return H.linkage(X, method="centroid", metric="euclidean")


def assert_same_linkage(X) -> np.ndarray:
    expected = scipy_linkage(X)
    actual = linkage(X, method="centroid", metric="euclidean")
    assert actual.dtype == np.float64
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual[:, :2], expected[:, :2])
    np.testing.assert_array_equal(actual[:, 3], expected[:, 3])
    np.testing.assert_allclose(actual[:, 2], expected[:, 2], rtol=1e-9, atol=0)
    return expected


def thresholds(Z) -> list[float]:
    """Every merge height (ties with t), midpoints, and out-of-range values."""
    h = np.unique(Z[:, 2])
    mids = (h[:-1] + h[1:]) / 2 if h.size > 1 else h
    return [*h.tolist(), *mids.tolist(), -1.0, 0.0, float(h.max()) * 2 + 1, np.inf]


def assert_same_fcluster(Z, t, criterion="distance"):
    expected = H.fcluster(Z, t, criterion=criterion)
    actual = fcluster(Z, t, criterion=criterion)
    assert actual.dtype == expected.dtype == np.int32
    np.testing.assert_array_equal(actual, expected)


def assert_fcluster_everywhere(Z, max_thresholds: int | None = None):
    n = Z.shape[0] + 1
    ts = thresholds(Z)
    if max_thresholds is not None and len(ts) > max_thresholds:
        rng = np.random.default_rng(0)
        ts = [*rng.choice(ts[:-4], max_thresholds, replace=False), *ts[-4:]]
    for t in ts:
        assert_same_fcluster(Z, t)
    # pyannote: heights replaced by the iteration index, t = an iteration index
    Za = Z.copy()
    Za[:, 2] = np.arange(n - 1)
    its = range(-1, n) if max_thresholds is None else np.linspace(-1, n - 1, 25).astype(int)
    for t in its:
        assert_same_fcluster(Za, int(t))
    ks = range(1, n + 2) if max_thresholds is None else [1, 2, 3, 5, 10, n // 2, n - 1, n]
    for k in ks:
        assert_same_fcluster(Z, k, "maxclust")
        assert_same_fcluster(Za, k, "maxclust")


def sphere(rng, n, d=256):
    X = rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def blobs_on_sphere(rng, n, k=5, d=256, spread=0.06):
    centers = sphere(rng, k, d)
    X = centers[rng.integers(0, k, size=n)] + spread * rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


# --------------------------------------------------------------------------
# linkage: generic data


@pytest.mark.parametrize("n", [2, 3, 4, 5, 10, 50, 200, 600])
@pytest.mark.parametrize("d", [1, 2, 3, 16, 256])
def test_linkage_random(n, d):
    rng = np.random.default_rng(1000 * n + d)
    Z = assert_same_linkage(rng.normal(size=(n, d)))
    if n <= 50:
        assert_fcluster_everywhere(Z)
    else:
        assert_fcluster_everywhere(Z, max_thresholds=40)


@pytest.mark.parametrize("n", [10, 100, 500, 1000])
def test_linkage_unit_256(n):
    rng = np.random.default_rng(n)
    Z = assert_same_linkage(sphere(rng, n))
    assert_fcluster_everywhere(Z, max_thresholds=40)


@pytest.mark.parametrize("n", [30, 300, 1000])
def test_linkage_blobs_on_sphere(n):
    rng = np.random.default_rng(7 + n)
    Z = assert_same_linkage(blobs_on_sphere(rng, n))
    assert_fcluster_everywhere(Z, max_thresholds=40)


def test_linkage_heights_bit_identical():
    # stronger than required: same operation order as scipy's C code gives
    # the very same doubles
    rng = np.random.default_rng(21)
    for n, d in [(300, 256), (300, 3), (100, 1)]:
        X = sphere(rng, n, d) if d > 1 else rng.normal(size=(n, d))
        np.testing.assert_array_equal(linkage(X), scipy_linkage(X))


def test_linkage_has_inversions_and_is_not_sorted():
    # centroid linkage is not monotone; scipy keeps merge order
    rng = np.random.default_rng(0)
    Z = assert_same_linkage(rng.normal(size=(50, 2)))
    assert np.any(np.diff(Z[:, 2]) < 0)


def test_linkage_condensed_input():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 5))
    from scipy.spatial.distance import pdist

    y = pdist(X)
    np.testing.assert_array_equal(linkage(y), scipy_linkage(y))
    np.testing.assert_array_equal(linkage(y), linkage(X))


def test_linkage_small_random_exhaustive():
    rng = np.random.default_rng(12345)
    for trial in range(600):
        n = int(rng.integers(2, 25))
        d = int(rng.integers(1, 5))
        kind = trial % 4
        if kind == 0:
            X = rng.normal(size=(n, d))
        elif kind == 1:
            X = rng.integers(0, 3, size=(n, d)).astype(float)
        elif kind == 2:
            X = rng.choice([0.1, 0.2, 0.3, 0.7, 1.1], size=(n, d))
        else:
            X = sphere(rng, n, 8)
        Z = assert_same_linkage(X)
        if trial % 10 == 0:
            assert_fcluster_everywhere(Z)


# --------------------------------------------------------------------------
# linkage: ties and duplicates


@pytest.mark.parametrize("n", [2, 3, 4, 10, 100])
def test_all_identical(n):
    Z = assert_same_linkage(np.full((n, 3), 0.25))
    assert_fcluster_everywhere(Z)


@pytest.mark.parametrize("n", [2, 5, 20, 60])
def test_two_groups_of_identical_points(n):
    rng = np.random.default_rng(n)
    X = np.vstack([np.zeros((n, 2)), np.ones((n, 2))])
    Z = assert_same_linkage(X)
    assert_fcluster_everywhere(Z)
    Z = assert_same_linkage(X[rng.permutation(2 * n)])
    assert_fcluster_everywhere(Z)


@pytest.mark.parametrize("seed", range(6))
def test_repeated_points(seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(15, 3)) if seed % 2 else sphere(rng, 15)
    X = np.repeat(base, rng.integers(1, 5, size=15), axis=0)
    X = X[rng.permutation(len(X))]
    Z = assert_same_linkage(X)
    assert_fcluster_everywhere(Z)


@pytest.mark.parametrize("n", [5, 17, 64, 300])
def test_integer_grid_1d(n):
    Z = assert_same_linkage(np.arange(n, dtype=float)[:, None])
    assert_fcluster_everywhere(Z, max_thresholds=60)
    rng = np.random.default_rng(n)
    Z = assert_same_linkage(rng.integers(0, max(2, n // 4), size=(n, 1)).astype(float))
    assert_fcluster_everywhere(Z, max_thresholds=60)


@pytest.mark.parametrize("side", [2, 3, 5, 8, 15])
def test_integer_grid_2d(side):
    g = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)
    Z = assert_same_linkage(g.astype(float))
    assert_fcluster_everywhere(Z, max_thresholds=60)
    rng = np.random.default_rng(side)
    Z = assert_same_linkage(g[rng.permutation(len(g))].astype(float))
    assert_fcluster_everywhere(Z, max_thresholds=60)


def test_unit_256_with_duplicates():
    rng = np.random.default_rng(99)
    X = sphere(rng, 120)
    X = np.vstack([X, X[:40], X[:10]])[rng.permutation(170)]
    Z = assert_same_linkage(X)
    assert_fcluster_everywhere(Z, max_thresholds=60)


def test_n2_n3_all_orderings():
    configs = [
        [[0.0], [1.0]],
        [[0.0], [0.0]],
        [[0.0], [1.0], [2.0]],
        [[0.0], [0.0], [1.0]],
        [[0.0], [0.0], [0.0]],
        [[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]],  # equilateral
        [[0.0], [1.0], [3.0]],
        [[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]],
    ]
    for config in configs:
        for perm in itertools.permutations(config):
            Z = assert_same_linkage(np.array(perm))
            assert_fcluster_everywhere(Z)


def test_n1_and_empty_raise_like_scipy():
    for X in (np.zeros((1, 3)), np.zeros((0, 3))):
        with pytest.raises(ValueError):
            scipy_linkage(X)
        with pytest.raises(ValueError, match="empty distance matrix"):
            linkage(X)


def test_linkage_argument_errors():
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError):
        linkage(X, method="ward")
    with pytest.raises(ValueError):
        linkage(X, metric="cosine")
    with pytest.raises(ValueError):
        linkage(np.array([[0.0], [np.nan], [1.0]]))
    with pytest.raises(ValueError):
        linkage(np.zeros(4))  # not a condensed length
    with pytest.raises(ValueError):
        linkage(np.zeros((2, 2, 2)))


# --------------------------------------------------------------------------
# fcluster details


def test_fcluster_scalar_reference_matches_scipy():
    # the verbatim ports of scipy's walks (what a compiled port would use)
    rng = np.random.default_rng(5)
    for trial in range(60):
        n = int(rng.integers(2, 30))
        X = rng.integers(0, 3, size=(n, 2)).astype(float) if trial % 2 else rng.normal(size=(n, 2))
        Z = scipy_linkage(X)
        Za = Z.copy()
        Za[:, 2] = np.arange(n - 1)
        for ZZ in (Z, Za):
            MD = C._max_dist_for_each_cluster(ZZ, n)
            for t in thresholds(ZZ):
                np.testing.assert_array_equal(
                    C._cluster_monocrit(ZZ, MD, t, n), H.fcluster(ZZ, t, "distance")
                )
            for k in range(1, n):
                np.testing.assert_array_equal(
                    C._cluster_maxclust_monocrit(ZZ, MD, n, k),
                    H.fcluster(ZZ, k, "maxclust"),
                )


def test_fcluster_nan_heights_fallback():
    rng = np.random.default_rng(6)
    for _ in range(30):
        n = int(rng.integers(3, 30))
        Z = scipy_linkage(rng.normal(size=(n, 2)))
        Z[rng.random(n - 1) < 0.3, 2] = np.nan
        h = Z[:, 2][~np.isnan(Z[:, 2])]
        for t in [*h.tolist(), 0.0, 1e9, np.nan]:
            assert_same_fcluster(Z, t)


def test_fcluster_inconsistent_count_column():
    # scipy's walks ignore Z[:, 3]; the vectorised path must not trust it
    rng = np.random.default_rng(8)
    n = 40
    Z = scipy_linkage(rng.normal(size=(n, 2)))
    Z[:, 3] = 2.0
    for t in thresholds(Z):
        assert_same_fcluster(Z, t)
    for k in range(1, n + 1):
        assert_same_fcluster(Z, k, "maxclust")


def test_fcluster_argument_handling():
    Z = scipy_linkage(np.random.default_rng(0).normal(size=(6, 2)))
    with pytest.raises(ValueError):
        fcluster(Z, 1.0, criterion="inconsistent")
    with pytest.raises(ValueError):
        fcluster(Z[:0], 1.0)
    with pytest.raises(ValueError):
        fcluster(Z[:, :3], 1.0)
    assert_same_fcluster(Z, np.float32(0.7))
    assert_same_fcluster(Z, np.int64(3), "maxclust")
    assert_same_fcluster(Z, 2.7, "maxclust")  # truncated like scipy's int cast
    assert_same_fcluster(Z, 100, "maxclust")
    assert_same_fcluster(Z, np.nan)


def test_fcluster_large_tree():
    rng = np.random.default_rng(11)
    n = 3000
    Z = scipy_linkage(blobs_on_sphere(rng, n, d=32, spread=0.1))
    assert_fcluster_everywhere(Z, max_thresholds=30)


def test_module_imports_no_torch():
    import subprocess

    code = (
        "import sys; sys.path.insert(0, %r); import port.clustering, port.linkage; "
        "bad = [m for m in ('torch', 'torchaudio', 'pyannote', 'scipy.cluster') "
        "if m in sys.modules]; print(bad); assert not bad"
    ) % str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------


@pytest.mark.slow
def test_linkage_10000_x_256():
    rng = np.random.default_rng(2024)
    Z = assert_same_linkage(blobs_on_sphere(rng, 10_000, k=8))
    assert_fcluster_everywhere(Z, max_thresholds=20)
    Z = assert_same_linkage(sphere(rng, 10_000))
    assert_fcluster_everywhere(Z, max_thresholds=20)
