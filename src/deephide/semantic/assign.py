"""Class assignment: which semantic cluster, and which anchor pictogram, each class hides.

Objective (documented choice; the paper only says "CLIP + K-means, classes mutually distant"):

1. Exclusion. A pool member whose name embedding has cosine > ``exclude`` (default 0.5) to ANY
   class name is dropped, so no class hides a picture of its own object or of another class's
   (a "dog face" never hides in cats, where it would carry real class information). If fewer
   than max(classes, clusters) members survive, the least class-like members are kept instead.
2. K-means (k = max(clusters, classes), at most the surviving pool size) on the unit name
   embeddings of the survivors.
3. Cluster choice: greedy max-min dispersion. Start from the cluster whose centroid is least
   similar to every class name; then repeatedly add the cluster whose minimum cosine distance
   (1 - cos of unit centroids) to the clusters already chosen is largest. This greedy rule is the
   classic 2-approximation of maximising the minimum pairwise distance between chosen centroids.
4. Matching: the chosen clusters go to classes by the assignment (Hungarian) that minimises the
   summed similarity of each class name to its own cluster centroid.
5. Anchor: inside its cluster a class takes, among the 8 members nearest the centroid with a
   strong shape (opaque coverage >= 0.25 and inner detail >= 0.04, where possible), the one whose
   silhouette + colour thumbnail is farthest from the anchors already taken: semantic typicality
   first, then visual distinctness (many emoji are similar yellow discs or plain squares, which
   would blur the class shortcut). Only clusters holding such a member compete in step 3.
More classes than the pool can hold clusters (classes > surviving members) is the only case with
reuse: clusters are reused in the greedy order with the next unused member as anchor, and when
every member is taken anchors repeat; such classes then differ only in their background colour.
``Assignment.reused`` counts the classes affected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DeephideError
from .pool import EmojiPool

ANCHOR_TOP = 8
MIN_COVERAGE = 0.25
MIN_DETAIL = 0.04  # about the pool's 18th percentile: drops flat squares, discs and thin outlines


@dataclass(frozen=True)
class Assignment:
    """One anchor per class.

    anchors: pool index of each class's anchor (C,).
    clusters: K-means cluster id of each class (C,).
    cluster_members: for each class, the pool indices of its cluster (nearest the centroid first).
    k: number of K-means clusters; excluded: how many pool members were dropped as class-like;
    reused: classes that had to share a cluster with another class.
    min_centroid_distance: the achieved objective, min over class pairs of 1 - cos(centroids).
    """

    anchors: np.ndarray
    clusters: np.ndarray
    cluster_members: tuple[tuple[int, ...], ...]
    k: int
    excluded: int
    reused: int
    min_centroid_distance: float


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def assign_classes(pool: EmojiPool, pool_emb: np.ndarray, class_emb: np.ndarray, seed: int,
                   clusters: int = 50, exclude: float = 0.5) -> Assignment:
    """Choose one mutually distant cluster and an anchor for each class (see the module doc).

    pool_emb: (N, D) unit name embeddings of ``pool``; class_emb: (C, D) unit class-name embeddings.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    n, c = pool_emb.shape[0], class_emb.shape[0]
    if n != len(pool):
        raise DeephideError("semantic pool: embeddings do not match the pool")
    class_sim = pool_emb @ class_emb.T  # (N, C)
    worst = class_sim.max(axis=1)
    keep = np.flatnonzero(worst <= exclude)
    need = min(n, max(c, clusters))
    if keep.size < need:
        keep = np.sort(np.argsort(worst, kind="stable")[:need])
    excluded = n - keep.size
    emb = pool_emb[keep]
    k = min(keep.size, max(clusters, c))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # a small problem: extra BLAS threads only contend (15x slower on 2 busy cores)
        km = KMeans(n_clusters=k, n_init=4, random_state=seed % (2**31)).fit(emb)
    labels = km.labels_
    cent = _unit(km.cluster_centers_.astype(np.float64))
    # clusters able to give a solid, detailed anchor; all clusters if too few of them can
    ok = eligible(pool)[keep]
    present = np.flatnonzero(np.bincount(labels[ok], minlength=k) > 0)
    if present.size < min(c, k):
        present = np.flatnonzero(np.bincount(labels, minlength=k) > 0)

    order = _greedy_dispersion(cent[present], cent[present] @ class_emb.T.astype(np.float64), min(c, present.size))
    chosen = present[order]
    # more classes than clusters (tiny pools only): cycle through the chosen order again
    reps = -(-c // chosen.size)
    seq = np.tile(chosen, reps)[:c]
    reused = int(c - np.unique(seq).size)
    # Hungarian on the first len(chosen) distinct clusters; the reused rest keep greedy order
    cost = cent[chosen] @ class_emb.T.astype(np.float64)  # (len(chosen), C)
    rows, cols = linear_sum_assignment(cost.T)  # rows: classes, cols: cluster slot
    cls_cluster = np.empty(c, dtype=np.int64)
    assigned = np.zeros(c, dtype=bool)
    cls_cluster[rows] = chosen[cols]
    assigned[rows] = True
    extra = iter(seq[chosen.size:])
    for ci in range(c):
        if not assigned[ci]:
            cls_cluster[ci] = next(extra)

    members_by_cluster: dict[int, list[int]] = {}
    for j in np.unique(cls_cluster):
        idx = np.flatnonzero(labels == j)
        sims = emb[idx] @ cent[j]
        members_by_cluster[int(j)] = [int(keep[i]) for i in idx[np.argsort(-sims, kind="stable")]]
    anchors = _pick_anchors(pool, cls_cluster, members_by_cluster)
    if c > 1:
        cc = cent[cls_cluster]
        d = 1.0 - cc @ cc.T
        np.fill_diagonal(d, np.inf)
        min_dist = float(d.min())
    else:
        min_dist = float("nan")
    return Assignment(anchors=anchors, clusters=cls_cluster,
                      cluster_members=tuple(tuple(members_by_cluster[int(j)]) for j in cls_cluster),
                      k=int(k), excluded=int(excluded), reused=reused, min_centroid_distance=min_dist)


def _greedy_dispersion(cent: np.ndarray, sim_to_classes: np.ndarray, m: int) -> np.ndarray:
    """Indices of ``m`` rows of unit ``cent`` (K, D), greedily maximising the min pairwise distance."""
    first = int(np.argmin(sim_to_classes.max(axis=1)))
    chosen = [first]
    dist = 1.0 - cent @ cent[first]
    dist[first] = -np.inf
    while len(chosen) < m:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, 1.0 - cent @ cent[nxt])
        dist[chosen] = -np.inf
    return np.asarray(chosen, dtype=np.int64)


def eligible(pool: EmojiPool) -> np.ndarray:
    """bool (N,): members with a strong shape (solid enough and with inner detail) to anchor a class."""
    return (pool.coverage >= MIN_COVERAGE) & (pool.detail >= MIN_DETAIL)


def visual_features(pool: EmojiPool) -> np.ndarray:
    """float32 (N, 1024): silhouette (16x16) and colour layout (16x16x3), for anchor distinctness."""
    n = len(pool)
    return np.concatenate([pool.masks.reshape(n, -1), pool.thumbs.reshape(n, -1)], axis=1)


def _pick_anchors(pool: EmojiPool, cls_cluster: np.ndarray, members: dict[int, list[int]]) -> np.ndarray:
    """Per class: a typical, solid member of its cluster, visually far from earlier anchors."""
    feats = visual_features(pool)
    good = eligible(pool)
    taken: list[int] = []
    out = np.empty(cls_cluster.size, dtype=np.int64)
    for ci, j in enumerate(cls_cluster):
        mem = members[int(j)]
        free = [m for m in mem if m not in taken] or list(mem)
        solid = [m for m in free if good[m]] or free
        cand = solid[:ANCHOR_TOP]
        if taken:
            d = ((feats[cand][:, None, :] - feats[taken][None, :, :]) ** 2).mean(-1).min(axis=1)
            pick = cand[int(np.argmax(d))]
        else:
            pick = cand[0]
        taken.append(pick)
        out[ci] = pick
    return out
