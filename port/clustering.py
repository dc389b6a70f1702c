"""Clustering of speaker embeddings: stages 09-12.

* ``linkage`` / ``fcluster``: hand-written ``scipy.cluster.hierarchy`` (centroid
  linkage, distance and maxclust criteria), so the whole pipeline can be ported to
  a compiled language line by line;
* ``filter_embeddings``, ``cluster``, ``assign_embeddings``, ``constrained_argmax``,
  ``clustering``: pyannote.audio 4.0.7's ``AgglomerativeClustering`` on top of them.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist, pdist

from .dumps import encode_optional
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
]


# --- hierarchical clustering (scipy.cluster.hierarchy, by hand) ---
#
# Mirrors scipy 1.17.1 (``scipy/cluster/hierarchy.py`` and the Cython
# ``_hierarchy.pyx`` / ``_structures.pxi`` / ``_hierarchy_distance_update.pxi``).
# Ties must break exactly as in scipy, so the code below keeps scipy's
# arithmetic order, its strict ``<`` comparisons and its binary heap verbatim.
# Facts that matter for a porter:
#
# * ``method="centroid"`` runs ``fast_linkage`` (Muellner's "generic
#   clustering algorithm"), NOT the nearest-neighbour chain and NOT fastcluster.
#   Its output is returned in merge order: it is *not* sorted by height, and
#   centroid linkage has inversions (a later merge may be lower).  Row ``k``
#   creates cluster ``n + k``; columns 0/1 are ``min(id)``/``max(id)``.
# * The distances are the plain (not squared) euclidean distances of ``pdist``,
#   updated with the Lance-Williams centroid formula evaluated *on distances*
#   (``sqrt`` of the squared-distance formula), in C double arithmetic, without
#   FMA, in the operation order of ``_centroid``.  The radicand cannot go
#   negative: the merged pair's distance is the exact minimum of all stored
#   distances, so the radicand is >= 3/4 of its square.  (scipy multiplies the
#   two cluster sizes as C ints: fine below n = 92 680.)
# * The merged cluster keeps the larger slot index ``y``; slot ``x < y`` dies.
#   Slot ``n - 1`` therefore never dies.
# * Ties: the pair found first wins -- the heap (strict comparisons, scipy's
#   sift order) decides among equal lower bounds, a row scan keeps the lowest
#   index among equal distances, and ``dist == D[x, y]`` is an exact equality.


def _condensed_row_base(n: int) -> np.ndarray:
    """``base[i]`` such that the condensed index of ``(i, j)``, ``i < j``, is
    ``base[i] + j`` (scipy's ``condensed_index``:
    ``n*i - i*(i+1)/2 + (j - i - 1)``)."""
    i = np.arange(n, dtype=np.int64)
    return n * i - (i * (i + 1)) // 2 - i - 1


class _Heap:
    """Binary min-heap of ``scipy/cluster/_structures.pxi`` (``Heap``), verbatim.

    Keys are the integers ``0 .. size-1``; values are doubles.  The array
    layout is the usual one (children of ``i`` at ``2i+1``, ``2i+2``) and
    every comparison is strict, exactly as in scipy, so that equal values end
    up in the same order (this decides which of several tied pairs is merged
    first).  ``index_by_key`` keeps the position of every key, including keys
    already removed (they sit past ``size``)."""

    __slots__ = ("index_by_key", "key_by_index", "values", "size")

    def __init__(self, values) -> None:
        self.size = len(values)
        self.index_by_key = list(range(self.size))
        self.key_by_index = list(range(self.size))
        self.values = [float(v) for v in values]
        # linear-time build: sift down every internal node, last one first
        for i in reversed(range(self.size // 2)):
            self._sift_down(i)

    def get_min(self) -> tuple[int, float]:
        return self.key_by_index[0], self.values[0]

    def remove_min(self) -> None:
        self._swap(0, self.size - 1)
        self.size -= 1
        self._sift_down(0)

    def change_value(self, key: int, value: float) -> None:
        index = self.index_by_key[key]
        old_value = self.values[index]
        self.values[index] = value
        if value < old_value:
            self._sift_up(index)
        else:
            self._sift_down(index)

    def change_values(self, keys, values) -> None:
        """``change_value(k, v)`` for each pair in order (inlined for speed)."""
        vals = self.values
        index_by_key = self.index_by_key
        for key, value in zip(keys, values):
            index = index_by_key[key]
            old_value = vals[index]
            vals[index] = value
            if value < old_value:
                if index > 0 and vals[(index - 1) >> 1] > value:
                    self._sift_up(index)
            else:
                self._sift_down(index)

    def _sift_up(self, index: int) -> None:
        values = self.values
        parent = (index - 1) >> 1
        while index > 0 and values[parent] > values[index]:
            self._swap(index, parent)
            index = parent
            parent = (index - 1) >> 1

    def _sift_down(self, index: int) -> None:
        values = self.values
        size = self.size
        child = (index << 1) + 1
        while child < size:
            if child + 1 < size and values[child + 1] < values[child]:
                child += 1
            if values[index] > values[child]:
                self._swap(index, child)
                index = child
                child = (index << 1) + 1
            else:
                break

    def _swap(self, i: int, j: int) -> None:
        values = self.values
        values[i], values[j] = values[j], values[i]
        key_by_index = self.key_by_index
        key_i = key_by_index[i]
        key_j = key_by_index[j]
        key_by_index[i] = key_j
        key_by_index[j] = key_i
        self.index_by_key[key_i] = j
        self.index_by_key[key_j] = i


def _num_obs_y(y: np.ndarray) -> int:
    """Number of observations of a condensed distance vector
    (``scipy.spatial.distance.num_obs_y`` + ``is_valid_y``)."""
    k = y.shape[0]
    if k == 0:
        raise ValueError(
            "The number of observations cannot be determined on an empty "
            "distance matrix."
        )
    d = int(np.ceil(np.sqrt(k * 2)))
    if d * (d - 1) != k * 2:
        raise ValueError(
            "Length n of condensed distance matrix 'y' must be a binomial "
            "coefficient, i.e. there must be a k such that (k \\choose 2)=n)!"
        )
    return d


def linkage(y, method: str = "centroid", metric: str = "euclidean") -> np.ndarray:
    """Centroid (UPGMC) hierarchical clustering; mirrors
    ``scipy.cluster.hierarchy.linkage(y, method="centroid", metric="euclidean")``.

    ``y`` is either an ``(n, d)`` observation matrix (its euclidean ``pdist``
    is used) or a condensed distance vector of length ``n*(n-1)/2``.  Returns
    the ``(n-1, 4)`` float64 matrix ``[id_a, id_b, height, count]`` where row
    ``k`` creates cluster ``n + k`` -- in merge order, not sorted by height.

    Algorithm (scipy's ``fast_linkage``, Muellner's generic algorithm): every
    live slot ``x`` keeps a candidate nearest neighbour ``neighbor[x] > x`` and a
    lower bound ``min_dist[x]`` of its distance, in a min-heap.  To merge, pop
    the heap top ``x`` until its stored value still equals ``D[x, neighbor[x]]``
    (otherwise recompute x's true neighbour among higher slots, first minimum
    wins).  Merge ``x`` into ``y = neighbor[x]``, update ``D[z, y]`` for all live
    ``z`` with the centroid formula, redirect neighbours pointing at ``x`` to
    ``y``, lower the bounds of ``z < y`` that got closer to ``y`` (in increasing
    ``z``, each a heap update), and recompute ``y``'s own neighbour.
    """
    if method != "centroid":
        raise ValueError(f"Invalid method: {method} (only 'centroid' is ported)")
    y = np.asarray(y, dtype=np.float64, order="C")
    if y.ndim == 2:
        if metric != "euclidean":
            raise ValueError(
                f"`method={method}` requires the distance metric to be Euclidean"
            )
        D = pdist(y, "euclidean")  # a fresh array: updated in place below
    elif y.ndim == 1:
        _num_obs_y(y)
        D = y.copy()
    else:
        raise ValueError("`y` must be 1 or 2 dimensional.")
    if not np.all(np.isfinite(D)):
        raise ValueError(
            "The condensed distance matrix must contain only finite values."
        )
    n = _num_obs_y(D)
    return _fast_linkage_centroid(D, n)


def _fast_linkage_centroid(D: np.ndarray, n: int) -> np.ndarray:
    """scipy ``_hierarchy.fast_linkage(D, n, method=centroid)``; ``D`` (condensed,
    float64) is overwritten.  Loops over ``z`` are numpy-vectorised; they are
    independent per ``z`` in scipy too, except the heap updates, which stay
    sequential in increasing ``z``."""
    base = _condensed_row_base(n)
    inf = np.inf
    size = np.ones(n, dtype=np.int64)  # 0 = dead slot
    dead = np.zeros(n)  # 0.0 for live slots, +inf for dead ones
    cluster_id = list(range(n))
    neighbor = np.empty(max(n - 1, 0), dtype=np.int64)
    min_dist = np.empty(max(n - 1, 0))
    alive = np.arange(n, dtype=np.int64)  # live slots, increasing

    def find_min_dist(x: int) -> tuple[int, float]:
        # live z > x with the smallest D[x, z], the first one on ties (scipy's
        # strict `<` scan == np.argmin); row x of D is contiguous
        start = int(base[x]) + x + 1
        row = D[start : start + n - x - 1]
        j = int(np.argmin(row + dead[x + 1 :]))
        if not row[j] + dead[x + 1 + j] < inf:  # cannot happen for finite input
            raise ValueError(
                "find_min_dist cannot find any neighbors closer than inf away. "
                "Check that distances contain no negative/infinite/NaN entries. "
            )
        return x + 1 + j, float(row[j])

    for x in range(n - 1):
        neighbor[x], min_dist[x] = find_min_dist(x)
    heap = _Heap(min_dist)

    out_a: list[int] = []
    out_b: list[int] = []
    out_h: list[float] = []
    out_c: list[int] = []
    x = y = 0
    dist = 0.0
    for k in range(n - 1):
        # find the closest pair: at most n - k lazy re-evaluations
        for _ in range(n - k):
            x, dist = heap.get_min()
            y = int(neighbor[x])
            if dist == D[base[x] + y]:
                break
            y, dist = find_min_dist(x)
            neighbor[x] = y
            min_dist[x] = dist
            heap.change_value(x, dist)
        heap.remove_min()

        id_x = cluster_id[x]
        id_y = cluster_id[y]
        nx = int(size[x])
        ny = int(size[y])
        if id_x > id_y:
            id_x, id_y = id_y, id_x
        out_a.append(id_x)
        out_b.append(id_y)
        out_h.append(dist)
        out_c.append(nx + ny)

        size[x] = 0  # slot x dies
        dead[x] = inf
        size[y] = nx + ny  # slot y holds the new cluster
        cluster_id[y] = n + k

        # live slots other than y, split as  z < x | x < z < y | z > y
        px = int(np.searchsorted(alive, x))
        alive = np.delete(alive, px)
        py = int(np.searchsorted(alive, y))
        z_lo = alive[:py]  # live z < y
        z_hi = alive[py + 1 :]  # live z > y
        b_lo = base[z_lo]
        idx_x_lo = b_lo + x
        idx_x_lo[px:] = base[x] + z_lo[px:]
        idx_y = np.concatenate((b_lo + y, base[y] + z_hi))
        idx_x = np.concatenate((idx_x_lo, base[x] + z_hi))

        # centroid update, scipy's _centroid in the same operation order:
        # sqrt((((nx*dxi*dxi) + (ny*dyi*dyi)) - (nx*ny*dxy*dxy)/(nx+ny)) / (nx+ny))
        d_xi = D[idx_x]
        d_yi = D[idx_y]
        new = nx * d_xi
        new *= d_xi
        t = ny * d_yi
        t *= d_yi
        new += t
        new -= float(nx * ny) * dist * dist / (nx + ny)
        new /= nx + ny
        np.sqrt(new, out=new)
        D[idx_y] = new

        # neighbour candidates x -> y (for live z < x)
        z_x = z_lo[:px]
        z_x = z_x[neighbor[z_x] == x]
        neighbor[z_x] = y

        # lower the bounds of live z < y that are now closer to y
        d_lo = new[:py]
        closer = d_lo < min_dist[z_lo]
        if closer.any():
            z_c = z_lo[closer]
            d_c = d_lo[closer]
            neighbor[z_c] = y
            min_dist[z_c] = d_c
            heap.change_values(z_c.tolist(), d_c.tolist())

        # nearest neighbour of y among higher slots (slot n-1 is always live)
        if y < n - 1:
            z, d = find_min_dist(y)
            neighbor[y] = z
            min_dist[y] = d
            heap.change_value(y, d)

    Z = np.empty((n - 1, 4))
    Z[:, 0] = out_a
    Z[:, 1] = out_b
    Z[:, 2] = out_h
    Z[:, 3] = out_c
    return Z


# fcluster ------------------------------------------------------------------
#
# scipy walks the tree iteratively from the root (node 2n-2) with an explicit
# stack: a node is (re)examined each time it is on top of the stack; its left
# then its right *non-singleton* child is descended into first; its singleton
# children are handled when both subtrees are done.  Cluster numbers are handed
# out in that walk order, which is why the labels below are what they are.


def _check_linkage(Z) -> np.ndarray:
    """``scipy.cluster.hierarchy._is_valid_linkage(Z, throw=True)``."""
    Z = np.asarray(Z, dtype=np.float64, order="C")
    if Z.ndim != 2:
        raise ValueError(
            "Linkage matrix 'Z' must have shape=2 (i.e. be two-dimensional)."
        )
    if Z.shape[1] != 4:
        raise ValueError("Linkage matrix 'Z' must have 4 columns.")
    m = Z.shape[0]
    if m == 0:
        raise ValueError("Linkage must be computed on at least two observations.")
    if np.any(Z[:, :2] < 0):
        raise ValueError("Linkage 'Z' contains negative indices.")
    if np.any(Z[:, 2] < 0):
        raise ValueError("Linkage 'Z' contains negative distances.")
    if np.any(Z[:, 3] < 0):
        raise ValueError("Linkage 'Z' contains negative counts.")
    if np.any(Z[:, 3] > m + 1):
        raise ValueError("Linkage 'Z' contains excessive observations in a cluster")
    if np.any(np.max(Z[:, :2], axis=1) >= np.arange(m + 1, 2 * m + 1)):
        raise ValueError(
            "Linkage 'Z' uses non-singleton cluster before it is formed."
        )
    if np.unique(Z[:, :2]).size < m * 2:
        raise ValueError("Linkage 'Z' uses the same cluster more than once.")
    return Z


def _max_dist_for_each_cluster(Z: np.ndarray, n: int) -> list[float]:
    """scipy ``_hierarchy.get_max_dist_for_each_cluster``: ``MD[i]`` = largest
    height in the subtree of cluster ``n + i`` (strict ``>``: a NaN height
    stays NaN and a NaN child is ignored).  Post-order walk from the root."""
    rows = Z.tolist()
    MD = [0.0] * (n - 1)
    visited = bytearray(2 * n - 1)
    stack = [2 * n - 2]
    while stack:
        root = stack[-1] - n
        i_lc = int(rows[root][0])
        i_rc = int(rows[root][1])
        if i_lc >= n and not visited[i_lc]:
            visited[i_lc] = 1
            stack.append(i_lc)
            continue
        if i_rc >= n and not visited[i_rc]:
            visited[i_rc] = 1
            stack.append(i_rc)
            continue
        max_dist = rows[root][2]
        if i_lc >= n:
            max_l = MD[i_lc - n]
            if max_l > max_dist:
                max_dist = max_l
        if i_rc >= n:
            max_r = MD[i_rc - n]
            if max_r > max_dist:
                max_dist = max_r
        MD[root] = max_dist
        stack.pop()
    return MD


def _cluster_monocrit(Z: np.ndarray, MC, cutoff: float, n: int) -> np.ndarray:
    """scipy ``_hierarchy.cluster_monocrit``, verbatim.

    The first node met (walking down from the root) with ``MC[node] <= cutoff``
    becomes a cluster "leader": it takes the next cluster number at that
    moment and every leaf below it gets that number.  A leaf not below a
    leader is a cluster of its own and takes the next number when its parent
    is finished (left leaf before right leaf)."""
    rows = Z.tolist()
    T = np.zeros(n, dtype=np.int32)
    n_cluster = 0
    cluster_leader = -1
    visited = bytearray(2 * n - 1)
    stack = [2 * n - 2]
    while stack:
        root = stack[-1] - n
        i_lc = int(rows[root][0])
        i_rc = int(rows[root][1])
        if cluster_leader == -1 and MC[root] <= cutoff:  # found a cluster
            cluster_leader = root
            n_cluster += 1
        if i_lc >= n and not visited[i_lc]:
            visited[i_lc] = 1
            stack.append(i_lc)
            continue
        if i_rc >= n and not visited[i_rc]:
            visited[i_rc] = 1
            stack.append(i_rc)
            continue
        if i_lc < n:
            if cluster_leader == -1:  # singleton cluster
                n_cluster += 1
            T[i_lc] = n_cluster
        if i_rc < n:
            if cluster_leader == -1:  # singleton cluster
                n_cluster += 1
            T[i_rc] = n_cluster
        if cluster_leader == root:  # back to the leader
            cluster_leader = -1
        stack.pop()
    return T


def _count_clusters(Z: np.ndarray, MC, thresh: float, n: int, max_nc: int) -> int:
    """Cluster count of the walk in scipy ``cluster_maxclust_monocrit`` (stops
    early once it exceeds ``max_nc``)."""
    rows = Z.tolist()
    visited = bytearray(2 * n - 1)
    nc = 0
    stack = [2 * n - 2]
    while stack:
        root = stack[-1] - n
        i_lc = int(rows[root][0])
        i_rc = int(rows[root][1])
        if MC[root] <= thresh:  # this subtree forms a cluster
            nc += 1
            if nc > max_nc:
                break
            stack.pop()
            visited[i_lc] = 1
            visited[i_rc] = 1
            continue
        if not visited[i_lc]:
            visited[i_lc] = 1
            if i_lc >= n:
                stack.append(i_lc)
                continue
            nc += 1  # singleton cluster
            if nc > max_nc:
                break
        if not visited[i_rc]:
            visited[i_rc] = 1
            if i_rc >= n:
                stack.append(i_rc)
                continue
            nc += 1  # singleton cluster
            if nc > max_nc:
                break
        stack.pop()
    return nc


def _cluster_maxclust_monocrit(Z: np.ndarray, MC, n: int, max_nc: int) -> np.ndarray:
    """scipy ``_hierarchy.cluster_maxclust_monocrit``: bisect over the *node
    index* ``i`` (not over sorted values) for the smallest ``i`` whose
    threshold ``MC[i]`` gives at most ``max_nc`` clusters, then cut there."""
    if max_nc >= n:
        return np.arange(1, n + 1, dtype=np.int32)
    lower_idx = -1
    upper_idx = n - 1
    while upper_idx - lower_idx > 1:
        i = (lower_idx + upper_idx) >> 1
        if _count_clusters(Z, MC, MC[i], n, max_nc) > max_nc:
            lower_idx = i
        else:
            upper_idx = i
    if upper_idx == n - 1:
        # scipy would read MC[n - 1], one past the end of its array
        raise ValueError(
            "maxclust: no threshold gives at most t clusters (t < 1 or NaN heights)"
        )
    return _cluster_monocrit(Z, MC, MC[upper_idx], n)


# Vectorised equivalent of the walk above (numpy speed, same numbering).  A
# compiled port can simply use the scalar functions; this exists because
# pyannote calls fcluster many times on one tree.
#
# With NaN-free heights, ``MD[v] <= t`` ("v is covered") holds iff no height in
# the subtree of v exceeds t, so covered nodes are closed under descent.  The
# clusters are the topmost covered nodes ("leaders"), a leaf counting as
# covered.  In the walk, an internal leader is numbered when it is entered and
# a singleton leaf when its parent is left (left leaf first).  Entering/leaving
# times come from the Euler tour of the internal nodes (left subtree first):
#     enter(left child)  = enter(v) + 1
#     enter(right child) = enter(v) + 1 + 2 * internal_count(left child)
#     leave(v)           = enter(v) + 2 * internal_count(v) - 1
# and the leaves of a subtree are contiguous in left-to-right leaf order.


def _tree_layout(Z: np.ndarray, n: int):
    """Parent, right-child flag, leaf count, Euler entering time (internal
    nodes) and left-to-right position of the first leaf, for all 2n-1 nodes."""
    N = 2 * n - 1
    root = N - 1
    left = Z[:, 0].astype(np.intp)
    right = Z[:, 1].astype(np.intp)
    own = np.arange(n, N, dtype=np.intp)
    parent = np.empty(N, dtype=np.intp)
    parent[left] = own
    parent[right] = own
    parent[root] = root
    is_right = np.zeros(N, dtype=np.int64)
    is_right[right] = 1

    # leaf counts: Z[:, 3] when it is consistent, else recomputed bottom-up
    cnt = np.concatenate((np.ones(n), Z[:, 3]))
    if not np.array_equal(cnt[left] + cnt[right], Z[:, 3]):
        cnt[n:] = 0
        for i in range(n - 1):
            cnt[n + i] = cnt[left[i]] + cnt[right[i]]
    cnt = cnt.astype(np.int64)

    # offsets from the parent, summed along root paths by pointer jumping:
    # enter[u] holds the sum over the path u .. anc[u] (exclusive)
    enter = np.zeros(N, dtype=np.int64)
    enter[left] = 1
    enter[right] = 1 + 2 * (cnt[left] - 1)
    first_leaf = np.zeros(N, dtype=np.int64)
    first_leaf[right] = cnt[left]
    anc = parent.copy()
    todo = np.flatnonzero(anc != root)
    while todo.size:
        up = anc[todo]
        enter[todo] += enter[up]
        first_leaf[todo] += first_leaf[up]
        up = anc[up]
        anc[todo] = up
        todo = todo[up != root]
    return parent, is_right, cnt, enter, first_leaf


def _cluster_covered(n: int, layout, ok: np.ndarray, count_only: bool = False):
    """Flat clusters (scipy numbering) given ``ok[i] = height[i] <= cutoff``."""
    parent, is_right, cnt, enter, first_leaf = layout
    N = 2 * n - 1
    enter_i = enter[n:]
    leave_i = enter_i + 2 * (cnt[n:] - 1) - 1
    # number of "bad" heights (> cutoff) entered inside each subtree
    bad = np.zeros(2 * (n - 1) + 1, dtype=np.int64)
    bad[enter_i + 1] = ~ok
    np.cumsum(bad, out=bad)
    covered = np.ones(N, dtype=bool)
    covered[n:] = bad[leave_i + 1] == bad[enter_i]
    parent_covered = covered[parent]
    parent_covered[N - 1] = False
    leaders = np.flatnonzero(covered & ~parent_covered)
    if count_only:
        return leaders.size
    p = parent[leaders]
    key = np.where(
        leaders >= n,
        2 * enter[leaders],
        2 * (enter[p] + 2 * (cnt[p] - 1) - 1) + is_right[leaders],
    )
    number = np.empty(leaders.size, dtype=np.int32)
    number[np.argsort(key, kind="stable")] = np.arange(
        1, leaders.size + 1, dtype=np.int32
    )
    # leaders' leaf ranges tile 0..n-1 in left-to-right order
    by_pos = np.argsort(first_leaf[leaders], kind="stable")
    label_at = np.repeat(number[by_pos], cnt[leaders[by_pos]])
    return label_at[first_leaf[:n]]


def fcluster(Z, t, criterion: str = "distance") -> np.ndarray:
    """Flat clusters from a linkage matrix; mirrors
    ``scipy.cluster.hierarchy.fcluster(Z, t, criterion=...)`` for
    ``criterion="distance"`` and ``criterion="maxclust"`` (int32 labels 1..k,
    numbered in scipy's order).

    ``"distance"``: ``MD[i]`` = largest height in the subtree of cluster
    ``n + i``; every topmost cluster with ``MD <= t`` (non-strict) is a flat
    cluster, remaining leaves are singletons.  ``"maxclust"``: bisection over
    node index ``i`` for a threshold ``MD[i]`` giving at most ``t`` clusters,
    then as ``"distance"``.  Numbering follows scipy's walk (see
    ``_cluster_monocrit``).
    """
    if criterion not in ("distance", "maxclust"):
        raise ValueError(f"Invalid cluster formation criterion: {criterion!s}")
    Z = _check_linkage(Z)
    n = Z.shape[0] + 1
    heights = Z[:, 2]
    vectorised = not np.isnan(heights).any()

    if criterion == "distance":
        cutoff = float(t)
        if vectorised:
            return _cluster_covered(n, _tree_layout(Z, n), heights <= cutoff)
        MD = _max_dist_for_each_cluster(Z, n)
        return _cluster_monocrit(Z, MD, cutoff, n)

    if isinstance(t, (str, bytes)):
        raise TypeError("an integer is required")
    max_nc = int(t)
    if max_nc >= n:
        return np.arange(1, n + 1, dtype=np.int32)
    if not vectorised:
        MD = _max_dist_for_each_cluster(Z, n)
        return _cluster_maxclust_monocrit(Z, MD, n, max_nc)

    layout = _tree_layout(Z, n)
    _, _, cnt, enter, _ = layout
    in_tour = np.full(2 * (n - 1), -np.inf)  # heights in Euler order
    in_tour[enter[n:]] = heights

    def max_dist(i: int) -> float:  # MD[i]: largest height in the subtree
        start = enter[n + i]
        return float(in_tour[start : start + 2 * (cnt[n + i] - 1)].max())

    lower_idx = -1
    upper_idx = n - 1
    while upper_idx - lower_idx > 1:
        i = (lower_idx + upper_idx) >> 1
        nc = _cluster_covered(n, layout, heights <= max_dist(i), count_only=True)
        if nc > max_nc:
            lower_idx = i
        else:
            upper_idx = i
    if upper_idx == n - 1:
        raise ValueError("maxclust: no threshold gives at most t clusters (t < 1)")
    return _cluster_covered(n, layout, heights <= max_dist(upper_idx))


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


# --- pyannote.audio.pipelines.clustering, VBxClustering as in pyannote 4.0.7 (community-1) ---
#
# Stages, each a function that can run alone on dumped inputs:
#   09-filter     filter_embeddings (above)
#   10/11         vbx_ahc_init: centroid linkage of the L2-normalised embeddings, cut at threshold
#   12-plda       vbx_plda: x-vectors into the PLDA space (port.plda.PLDA)
#   13-vbx        port.vbx.cluster_vbx
#   14-centroids  vbx_centroids: VBx-weighted centroids, K-Means when the count breaks the constraints
#   15-assign     vbx_assign: 2 - cosine distance to each centroid, constrained (Hungarian) or argmax

__all__ += ["vbx_ahc_init", "vbx_plda", "vbx_centroids", "vbx_assign", "VBxClustering"]


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
    labels = fcluster(dendrogram, threshold, criterion="distance")
    ahc_clusters = labels - 1
    _, ahc_clusters = np.unique(ahc_clusters, return_inverse=True)
    if trace is not None:
        trace("11-fcluster", "in_threshold", np.float64(threshold))
        trace("11-fcluster", "call0_in_Z", dendrogram)
        trace("11-fcluster", "call0_in_t", np.float64(threshold))
        trace("11-fcluster", "call0_out_labels", labels)
        trace("11-fcluster", "out_ahc_clusters", ahc_clusters.astype(np.int64, copy=False))
    return ahc_clusters, train_embeddings_normed


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
