"""Cross-view association: which detection in each calibrated view is which person.

Every detection (and every track prior) is a node of a graph. Two detections of different views
are linked by the distance in metres between the back-projected rays of their confident keypoints
(the closest approach of the two rays, median over the keypoints both see; Pose2Sim's ray
affinity); a detection and a prior by the prior's reprojection distance scaled to metres at the
prior's depth. A link whose keypoints disagree too often (a skeleton that mixes two people) is no
link. Nodes are then merged greedily, cheapest link first (average linkage over every pair of the
two clusters, never two nodes of one view; a prior takes only detections that agree with it), and
each cluster is triangulated with the outlier-view handling of ``engine.triangulate``. A cluster
holding a prior must stand where the prior does (else it keeps the views that do: a wrong pairing
of two views must not drag a track away), and groups of several views whose skeletons coincide
are merged (one person whose views did not link).

A detector often swaps a person's left and right when it sees them from behind (BlazePose keys on
the face), sometimes for the arms alone while it turns: such a skeleton links to nobody as it is,
or to one view only, though the person is plainly seen. A detection that links to one node at
most as it is, but with left and right exchanged (whole, or the arms alone: ``RELABELLINGS``)
links to more of the same person, vouched for by a track's prior or by a detection that other
views confirm, is taken so (``Group.orders``; ``Group.mirrored`` the views taken whole); so is a
group's worst view that reprojects at least twice as well so exchanged. On the bundled demo
(tests/data/people/demo_blazepose.npz, what the people stage received in a headless run) the
subject's group holds all four views in 97 of the 98 frame-sets after her track is confirmed
(91 when only the detections that linked to nobody were tried, and only whole).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from core.camera import Camera, project_views
from core.geometry import triangulate_dlt
from core.types import COCO17_MIRROR as MIRROR
from engine.triangulate import triangulate_views

GATE_M = 0.2  # a link: median ray distance (m) at most this
PART_GATE_M = 0.1  # ... for a detection taken with one part's left and right exchanged (_relabelled)
DISAGREE_M = 0.4  # two nodes whose link costs more are not one person
JOINT_GATE_M = 0.3  # one keypoint pair disagrees beyond this
MAX_DISAGREEING = 0.3  # a link: at most this fraction of the shared keypoints disagree
MIN_SHARED = 3  # a link needs this many keypoints confident in both nodes
PRIOR_VIEW = -1  # the pseudo-view of the priors (two priors never merge)
PARTS = np.zeros((4, 17), bool)  # the whole body, the head, the arms, the legs (COCO-17)
PARTS[0], PARTS[1, 0:5], PARTS[2, 5:11], PARTS[3, 11:17] = True, True, True, True
SAME_PLACE_M = 0.4  # a one-view group this close to a group of several views is the same person
COINCIDE_M = 0.3  # two groups of several views whose mid-hips are this close are one person
PLAUSIBLE_M = 0.3  # a group holding a track's prior stands at most this far from it (ground)
AS_IS = np.arange(17)


def _exchanged(pairs: range) -> tuple[int, ...]:
    """The keypoint order with left and right exchanged for the COCO-17 keypoints ``pairs``."""
    return tuple(MIRROR[k] if k in pairs else k for k in range(17))


# How a detector may have exchanged a person's left and right, as keypoint orders that undo it,
# in the order they are tried: the whole body (the usual swap, seen from behind), the arms alone
# (shoulders, elbows, wrists: BlazePose half way through a swap, the legs still as they were).
WHOLE = tuple(MIRROR)
RELABELLINGS = (WHOLE, _exchanged(range(5, 11)))
EXCHANGED = {order: np.asarray(order) != AS_IS for order in RELABELLINGS}  # the keypoints each moves


@dataclass(frozen=True)
class Group:
    """One person seen across views.

    detections: view index -> index of the detection in that view. points ``[17, 4]``:
    triangulated world metres + confidence (NaN / 0 where not triangulated). errors_px ``[V]``:
    median reprojection error per view (NaN where the view is not in the group). orders: the
    views whose detection the group holds with left and right exchanged, in all of it or in part
    (view -> keypoint order: the group's keypoints are ``d[list(order)]``).
    """

    detections: dict[int, int]
    points: np.ndarray
    errors_px: np.ndarray
    orders: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def mirrored(self) -> tuple[int, ...]:
        """The views whose detection the group holds with the whole body's left and right exchanged."""
        return tuple(v for v, order in sorted(self.orders.items()) if order == WHOLE)

    def keypoints(self, view: int, detection: np.ndarray) -> np.ndarray:
        """``detection`` ``[17, C]`` of ``view`` as the group holds it (relabelled where it is)."""
        order = self.orders.get(view)
        return detection if order is None else detection[list(order)]


@dataclass(frozen=True)
class _Node:
    view: int  # PRIOR_VIEW for a prior
    index: int


def associate(
    cameras: list[Camera],
    detections: list[np.ndarray],
    priors: np.ndarray | None = None,
    min_confidence: float = 0.3,
    hidden: np.ndarray | None = None,
) -> list[Group]:
    """Group the detections ``[P_v, 17, 3]`` (px, conf) of each calibrated view into people.

    priors ``[N, 17, 4]``: the tracks' predicted world keypoints (metres + confidence) or None.
    Groups seen in one view only are kept when they match a prior and nobody seen in several views
    stands there; their points are the detection's keypoints back-projected at the prior's depth.
    A detection that agrees with a prior and with a group of several views goes to that group; but
    when ``hidden`` ``[N]`` marks the prior (a person seen in several views a moment ago), the
    detection also keeps that prior, as a one-view group: in that view one of the two people
    hides the other. Groups of several views that coincide in space are one person. Sorted by
    their detections.
    """
    if len(cameras) != len(detections):
        raise ValueError(f"associate: {len(cameras)} cameras but {len(detections)} views of detections")
    if not all(c.calibrated for c in cameras):
        raise ValueError("associate: every camera must be calibrated")
    dets = [np.array(d, np.float64).reshape(-1, 17, 3) for d in detections]  # copies: a mirrored one is turned in place
    pri = np.zeros((0, 17, 4)) if priors is None else np.asarray(priors, np.float64).reshape(-1, 17, 4)
    nodes = [_Node(v, i) for v, d in enumerate(dets) for i in range(len(d))] + [_Node(PRIOR_VIEW, n) for n in range(len(pri))]
    ideal = [c.undistort(d[..., :2]) if np.any(c.dist) else d[..., :2].copy() for c, d in zip(cameras, dets, strict=True)]
    sight = _Sight.of(cameras, dets, ideal, min_confidence)
    cost = _link_costs(cameras, dets, sight, pri, nodes, min_confidence)
    orders = _relabelled(cameras, dets, sight, pri, nodes, cost, min_confidence)
    if any((o != AS_IS).any() for o in orders):
        dets = [np.take_along_axis(d, o[..., None], axis=1) for d, o in zip(dets, orders, strict=True)]
        ideal = [np.take_along_axis(i, o[..., None], axis=1) for i, o in zip(ideal, orders, strict=True)]
        cost = _link_costs(cameras, dets, _Sight.of(cameras, dets, ideal, min_confidence), pri, nodes, min_confidence)
    rehomed, moved = _rehome(nodes, cost, _merge(nodes, cost))
    hides = np.zeros(len(pri), bool) if hidden is None else np.asarray(hidden, bool).reshape(-1)
    shared = [[nodes[p], nodes[k]] for p, k in moved if hides[nodes[p].index]]
    clusters = [[nodes[k] for k in c] for c in rehomed]
    several = [c for c in clusters if _views(c) >= 2]
    fitted = [
        _near_prior(cameras, dets, g, c, pri, min_confidence)
        for g, c in zip(_triangulate(cameras, dets, ideal, several, min_confidence), several, strict=True)
    ]
    groups = _merge_coincident(cameras, dets, [g for g in fitted if g is not None], min_confidence)
    groups = [_unmirror(cameras, dets, ideal, orders, g, min_confidence) for g in groups]
    taken = [xy for g in groups if len(g.detections) >= 2 and (xy := _centre(g.points)) is not None]
    for cluster in clusters + shared:
        prior = [m.index for m in cluster if m.view == PRIOR_VIEW]
        if _views(cluster) == 1 and prior:
            m = next(m for m in cluster if m.view != PRIOR_VIEW)
            points = _at_prior_depth(cameras[m.view], dets[m.view][m.index], pri[prior[0]], min_confidence)
            here = _centre(points)
            # someone seen in several views already stands there: this view saw them wrong
            if here is not None and all(np.linalg.norm(here - t) > SAME_PLACE_M for t in taken):
                groups.append(Group({m.view: m.index}, points, np.full(len(cameras), np.nan)))
    relabelled = [[(v, i) for v, i in g.detections.items() if (orders[v][i] != AS_IS).any()] for g in groups]
    groups = [replace(g, orders={v: tuple(orders[v][i].tolist()) for v, i in r}) for g, r in zip(groups, relabelled, strict=True)]
    return sorted(groups, key=lambda g: sorted(g.detections.items()))


def _unmirror(
    cameras: list[Camera],
    dets: list[np.ndarray],
    ideal: list[np.ndarray],
    orders: list[np.ndarray],
    group: Group,
    min_confidence: float,
) -> Group:
    """A group of three views or more whose worst view reprojects at least twice as well with left
    and right exchanged in one of the ways of :data:`RELABELLINGS` (against the other views'
    triangulation, over the keypoints that way exchanges) takes that view's detection so
    (``dets``, their undistorted pixels ``ideal`` and the keypoint ``orders`` updated in place) and
    is triangulated again. Mirrored skeletons sometimes link: two cameras' rays through a left and
    a right shoulder can pass within the gate of each other."""
    if len(group.detections) < 3 or not np.isfinite(group.errors_px).any():
        return group
    v = int(np.nanargmax(group.errors_px))
    i = group.detections[v]
    # the other views' plain DLT (engine.triangulate.triangulate_views' outlier search and error
    # report cost 0.6 ms more per frame-set on people_bench, and the worst view is already left out)
    rest = [(u, k) for u, k in group.detections.items() if u != v]
    conf = np.stack([dets[u][k][:, 2] for u, k in rest])
    pixels = np.stack([ideal[u][k] for u, k in rest])
    P = np.stack([cameras[u].P for u, _ in rest])
    points, valid = triangulate_dlt(pixels, np.where(conf >= min_confidence, conf, 0.0), P)
    det = dets[v][i]
    if np.any(cameras[v].depth(points[valid]) <= 0.1):
        return group
    px = cameras[v].project(np.where(valid[:, None], points, 0.0))
    usable = valid & (det[:, 2] >= min_confidence)
    as_is = np.linalg.norm(px - det[:, :2], axis=-1)
    for order in RELABELLINGS:
        turned = det[list(order)]
        seen = usable[list(order)] & usable & EXCHANGED[order]
        if seen.sum() < MIN_SHARED:
            continue
        exchanged = np.linalg.norm(px[seen] - turned[seen, :2], axis=-1)
        if _median(exchanged) < 0.5 * _median(as_is[seen]):
            dets[v][i] = turned
            ideal[v][i] = ideal[v][i][list(order)]
            orders[v][i] = orders[v][i][list(order)]
            return _triangulate_one(cameras, dets, sorted(group.detections.items()), min_confidence)
    return group


def _median(values: np.ndarray) -> float:
    """The median of a few values (np.median's overhead is most of its time on a few)."""
    ordered = np.sort(values)
    n = len(ordered)
    return float(0.5 * (ordered[(n - 1) // 2] + ordered[n // 2]))


def _relabelled(
    cameras: list[Camera],
    dets: list[np.ndarray],
    sight: _Sight,
    pri: np.ndarray,
    nodes: list[_Node],
    cost: np.ndarray,
    min_confidence: float,
) -> list[np.ndarray]:
    """The keypoint order ``[P_v, 17]`` per view in which to take each detection: as it is, or
    with left and right exchanged in one of the ways of :data:`RELABELLINGS` where the detection,
    so relabelled, links to more nodes than it does as it is (``cost``; a lone detection links to
    none) and keeps every link it had (its new links go to the nodes it linked to, not to someone
    else), counting only the links to a track's prior or to a detection that links to a prior or
    to a third view as it is (the way that links to the most; of two that link to as many, the one
    whose links cost less on average). The arms alone exchanged, the looser guess, must link within
    ``PART_GATE_M`` and gain two more views' detections: on the multi-person trial a detection whose
    arms were wrong either way round otherwise joined, its arms exchanged, on the word of one view
    and a prior. Two detections whose gains are each other are left as they are. A skeleton mirrored by
    its detector can still link to one view as it is: a camera facing this one sees left and right
    the other way round, and the rays of the swapped keypoints pass near each other. On the
    bundled demo cam02's mirrored subject links to cam04 alone in 4 frame-sets (to all three other
    views mirrored), and in 2 frame-sets a view's detection has the arms alone exchanged."""
    orders = [np.tile(AS_IS, (len(d), 1)) for d in dets]
    n = len(sight.view)
    if not n or len(cameras) < 2:
        return orders
    links = np.nan_to_num(cost, nan=np.inf) <= GATE_M
    is_prior = np.array([m.view == PRIOR_VIEW for m in nodes], bool)
    view = np.array([m.view for m in nodes])

    def vouches(j: int, own: int) -> bool:
        """j, linked to a detection of view ``own``, is a prior or a detection linked to a prior or to a third view."""
        return bool(is_prior[j] or np.any(links[j] & (is_prior | ((view != own) & (view != view[j])))))

    # Tried: the detections that link to nothing, and those that link to one node and miss a view
    # holding detections (a skeleton that links to two as it is joins a group, whose worst view
    # _unmirror tries exchanged).
    holding = np.unique(sight.view)
    reached = np.stack([links[:n, :n][:, sight.view == u].any(1) | (sight.view == u) for u in holding], 1)
    links_as_is = links[:n].sum(1)
    rows = [int(k) for k in np.flatnonzero((links_as_is == 0) | ((links_as_is == 1) & ~reached.all(1)))]
    if not rows:
        return orders
    best = {k: (int(links_as_is[k]), 0.0) for k in rows}  # the links as it is (and as tried: their mean cost, negated)
    chosen: dict[int, tuple[tuple[int, ...], np.ndarray]] = {}  # row -> (its order, the nodes it gains)
    for order in RELABELLINGS:
        # A part alone exchanged is the looser guess (fewer keypoints move): its links must be tight.
        part = order != WHOLE
        gate = PART_GATE_M if part else GATE_M
        # the relabelled copies of those detections against every node: the detections, then the priors
        tried = np.full((len(rows), len(nodes)), np.nan)
        tried[:, :n] = sight.relabelled(rows, order).costs(sight)
        if len(pri):
            copies = [d[[nodes[k].index for k in rows if nodes[k].view == v]][:, order] for v, d in enumerate(dets)]
            tried[:, n:] = _prior_costs(cameras, copies, pri, min_confidence)
        for row, k in enumerate(rows):
            m = nodes[k]
            linked = (np.nan_to_num(tried[row], nan=np.inf) <= gate) & (view != m.view)
            gained = linked & ~links[k]
            if part and np.sum(gained & ~is_prior) < 2:
                continue  # ... and confirmed by two more views
            if not gained.any() or np.any(links[k] & ~linked) or (links[k].any() and not links[np.ix_(gained, links[k])].all()):
                continue  # more links to the person it links to as it is (who link to each other), not to another
            count = sum(vouches(int(j), m.view) for j in np.flatnonzero(linked))
            score = (count, -float(tried[row][linked].mean()))  # linked holds the gains: never empty here
            if count > links_as_is[k] and score > best[k]:
                best[k] = score
                chosen[k] = (order, gained)
    # Two detections whose gains are each other link as well either way round (each was judged
    # against the other as it is): which of the two the detector exchanged cannot be told from
    # the links, so neither is taken exchanged here (_unmirror judges by reprojection once they group).
    for k, (order, gained) in chosen.items():
        if not any(gained[j] and chosen[j][1][k] for j in chosen if j != k):
            orders[nodes[k].view][nodes[k].index] = order
    return orders


def _views(cluster: list[_Node]) -> int:
    return sum(m.view != PRIOR_VIEW for m in cluster)


def _rays(camera: Camera, ideal: np.ndarray) -> np.ndarray:
    """Unit world directions ``[..., 3]`` of the rays through ideal pixels ``[..., 2]``."""
    K = np.asarray(camera.K, np.float64)
    cam = np.stack([(ideal[..., 0] - K[0, 2]) / K[0, 0], (ideal[..., 1] - K[1, 2]) / K[1, 1], np.ones(ideal.shape[:-1])], -1)
    world = cam @ np.asarray(camera.R, np.float64)  # R^T applied to row vectors
    return world / np.linalg.norm(world, axis=-1, keepdims=True)


def _ray_distances(c1: np.ndarray, d1: np.ndarray, c2: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Closest approach (m) of rays from c1 along d1 ``[A, 1, 17, 3]`` and from c2 along d2
    ``[1, B, 17, 3]``: ``[A, B, 17]``; rays meeting behind a camera or nearly parallel give NaN."""
    w = c1 - c2
    b = np.sum(d1 * d2, -1)
    d = np.sum(d1 * w, -1)
    e = np.sum(d2 * w, -1)
    denom = 1.0 - b * b
    ok = denom > 1e-3
    denom = np.where(ok, denom, 1.0)
    s = (b * e - d) / denom
    u = (e - b * d) / denom
    gap = w + s[..., None] * d1 - u[..., None] * d2
    dist = np.linalg.norm(gap, axis=-1)
    return np.where(ok & (s > 0) & (u > 0), dist, np.nan)


def _link_costs(
    cameras: list[Camera], dets: list[np.ndarray], sight: _Sight, pri: np.ndarray, nodes: list[_Node], min_confidence: float
) -> np.ndarray:
    """Symmetric link costs (m) between nodes ``[M, M]`` (``sight``: the detections ``dets`` as
    rays); NaN where unknown, inf where they disagree."""
    n = len(sight.view)
    cost = np.full((len(nodes), len(nodes)), np.nan)
    if n:
        cost[:n, :n] = sight.costs(sight)
    if len(pri) and n:
        block = _prior_costs(cameras, dets, pri, min_confidence)
        cost[:n, n:] = block
        cost[n:, :n] = block.T
    return cost


@dataclass(frozen=True)
class _Sight:
    """The detections of every view, in order, as rays: view ``[n]``, camera centres ``[n, 3]``,
    unit ray directions ``[n, 17, 3]`` and which keypoints are confident ``[n, 17]``."""

    view: np.ndarray
    centres: np.ndarray
    rays: np.ndarray
    seen: np.ndarray

    @staticmethod
    def of(cameras: list[Camera], dets: list[np.ndarray], ideal: list[np.ndarray], min_confidence: float) -> _Sight:
        if not dets:
            return _Sight(np.zeros(0, int), np.zeros((0, 3)), np.zeros((0, 17, 3)), np.zeros((0, 17), bool))
        view = np.repeat(np.arange(len(dets)), [len(d) for d in dets])
        rays = np.concatenate([_rays(c, i) for c, i in zip(cameras, ideal, strict=True)])
        centres = np.stack([c.center for c in cameras])[view]
        return _Sight(view, centres, rays, np.concatenate([d[..., 2] >= min_confidence for d in dets]))

    def relabelled(self, rows: list[int], order: tuple[int, ...]) -> _Sight:
        """The detections ``rows`` with their keypoints in ``order`` (left and right exchanged: their rays permuted)."""
        return _Sight(self.view[rows], self.centres[rows], self.rays[rows][:, order], self.seen[rows][:, order])

    def costs(self, other: _Sight) -> np.ndarray:
        """Link costs (m) of these detections to ``other``'s ``[A, B]``; NaN within a view."""
        dist = _ray_distances(self.centres[:, None, None], self.rays[:, None], other.centres[None, :, None], other.rays[None])
        both = self.seen[:, None] & other.seen[None] & np.isfinite(dist)
        return np.where(self.view[:, None] != other.view[None], _robust_cost(dist, both), np.nan)


def _robust_cost(dist: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Distance over the shared keypoints ``[A, B, 17]`` -> ``[A, B]``: the worst of the medians
    of the whole body and of each part (head, arms, legs) seen in both; NaN (unknown) when fewer
    than MIN_SHARED keypoints are shared, inf when too many disagree. A skeleton that mixes two
    people (a detector's merge of two overlapping people) has a part far off."""
    shared = both.sum(-1)
    bad = np.sum(both & (np.where(both, dist, 0.0) > JOINT_GATE_M), -1)
    masks = both[..., None, :] & PARTS  # [A, B, 4, 17]: the whole body, then each part
    medians = masked_median(np.broadcast_to(dist[..., None, :], masks.shape), masks)
    enough = masks.sum(-1) >= 2
    worst = np.max(np.where(enough, medians, 0.0), axis=-1)
    cost = np.where(bad <= MAX_DISAGREEING * shared, worst, np.inf)
    return np.where(shared >= MIN_SHARED, cost, np.nan)


def masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over the last axis of ``values`` where ``mask`` (NaN where nothing is masked in)."""
    ordered = np.sort(np.where(mask, values, np.inf), axis=-1).reshape(-1, values.shape[-1])
    n = mask.sum(-1).reshape(-1)
    rows = np.arange(len(n))
    lo = ordered[rows, np.maximum((n - 1) // 2, 0)]
    hi = ordered[rows, np.maximum(n // 2, 0)]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, 0.5 * (lo + hi), np.nan).reshape(mask.shape[:-1])


def _prior_costs(cameras: list[Camera], dets: list[np.ndarray], pri: np.ndarray, min_confidence: float) -> np.ndarray:
    """Reprojection distance of the priors ``[N, 17, 4]`` to every detection (all views, in
    order), in metres at the prior's depth: ``[n, N]``."""
    xyz = pri[..., :3]
    usable = (pri[..., 3] > 0) & np.all(np.isfinite(xyz), -1)
    safe = np.where(usable[..., None], xyz, 0.0)
    seeing = [v for v, d in enumerate(dets) if len(d)]
    cams = [cameras[v] for v in seeing]
    depth = np.stack([c.depth(safe) for c in cams])  # [V', N, 17]
    ok = usable & (depth > 0.1)
    with np.errstate(divide="ignore", invalid="ignore"):  # points behind a camera: left out by ok
        px = np.where(ok[..., None], project_views(cams, safe), 0.0)  # [V', N, 17, 2]
    d = np.concatenate([dets[v] for v in seeing])  # every detection, with its row of the seeing views
    row = np.repeat(np.arange(len(seeing)), [len(dets[v]) for v in seeing])
    scale = depth / np.array([float(np.asarray(c.K)[0, 0]) for c in cams])[:, None, None]  # metres per pixel
    dist = np.linalg.norm(d[:, None, :, :2] - px[row], axis=-1) * scale[row]
    return _robust_cost(dist, (d[:, None, :, 2] >= min_confidence) & ok[row])


def _merge(nodes: list[_Node], cost: np.ndarray) -> list[list[int]]:
    """Greedy average-linkage merging, cheapest link first (the links to a prior before the links
    between detections, so that the tracks claim their detections before two people seen along
    one line of sight can be confused); a cluster holds one node per view, and two clusters merge
    only when no pair of their nodes clearly disagrees and every detection agrees with the cluster's
    track prior, if any (a wrong pairing of two views must not drag a track away)."""
    clusters: dict[int, list[int]] = {k: [k] for k in range(len(nodes))}
    owner = list(range(len(nodes)))
    is_prior = np.array([n.view == PRIOR_VIEW for n in nodes], bool)
    limit = np.where(is_prior[:, None] | is_prior[None], GATE_M, DISAGREE_M)  # a prior's links are strict
    iu, ju = np.nonzero(np.triu(cost <= GATE_M, 1))
    to_prior = np.array([nodes[j].view == PRIOR_VIEW for j in ju], bool)
    order = np.lexsort((ju, iu, cost[iu, ju], ~to_prior))  # links to a prior first, then the rest
    for k in order:
        a, b = owner[iu[k]], owner[ju[k]]
        if a == b:
            continue
        views_a = {nodes[n].view for n in clusters[a]}
        if any(nodes[n].view in views_a for n in clusters[b]):
            continue
        pairs = np.ix_(clusters[a], clusters[b])
        block = cost[pairs]
        known = ~np.isnan(block)
        if np.any(block[known] > limit[pairs][known]) or block[known].mean() > GATE_M:
            continue
        clusters[a] += clusters.pop(b)
        for n in clusters[a]:
            owner[n] = a
    return [sorted(c) for c in clusters.values()]


def _near_prior(
    cameras: list[Camera], dets: list[np.ndarray], group: Group, cluster: list[_Node], pri: np.ndarray, min_confidence: float
) -> Group | None:
    """A group whose cluster holds a track's prior but that stands farther than PLAUSIBLE_M from
    it (its views agree with the prior one by one, not together: a wrong pairing, where the
    triangulation may even have dropped the right view) keeps the largest set of its views that
    does stand there (closest first), else the one view that agrees best with the prior, placed at
    its depth (a one-view group: the track stays alive, nothing drags it away)."""
    prior = [m.index for m in cluster if m.view == PRIOR_VIEW]
    if not prior or len(cluster) < 3:
        return group
    target = _centre(pri[prior[0]])
    if target is None or _distance(group.points, target) <= PLAUSIBLE_M:
        return group
    views = sorted((m.view, m.index) for m in cluster if m.view != PRIOR_VIEW)
    for size in range(len(views) - 1, 1, -1):
        fits = [_triangulate_one(cameras, dets, list(subset), min_confidence) for subset in itertools.combinations(views, size)]
        fits = [f for f in fits if len(f.detections) == size]
        best = min(fits, key=lambda f: _distance(f.points, target), default=None)
        if best is not None and _distance(best.points, target) <= PLAUSIBLE_M:
            return best
    alone = [(v, i, _at_prior_depth(cameras[v], dets[v][i], pri[prior[0]], min_confidence)) for v, i in views]
    v, i, points = min(alone, key=lambda a: _distance(a[2], target))
    return Group({v: i}, points, np.full(len(cameras), np.nan)) if np.isfinite(_distance(points, target)) else None


def _centre(points: np.ndarray) -> np.ndarray | None:
    """Ground position (x, y) of keypoints ``[17, 4]``: the mid-hip's, else the mean of the usable ones."""
    usable = (points[:, 3] > 0) & np.all(np.isfinite(points[:, :3]), -1)
    if usable[11] and usable[12]:
        return 0.5 * (points[11, :2] + points[12, :2])
    return points[usable, :2].mean(0) if usable.any() else None


def _distance(points: np.ndarray, target: np.ndarray) -> float:
    centre = _centre(points)
    return float("inf") if centre is None else float(np.linalg.norm(centre - target))


def _merge_coincident(cameras: list[Camera], dets: list[np.ndarray], groups: list[Group], min_confidence: float) -> list[Group]:
    """Groups of several views with no view in common whose skeletons stand in the same place
    (mid-hips within COINCIDE_M, most shared keypoints within JOINT_GATE_M) are one person whose
    views did not link (calibration error, a poor pair of views): triangulated together, with the
    outlier-view handling of ``engine.triangulate``. Closest pair first."""
    groups = list(groups)
    while True:
        best, best_gap = None, COINCIDE_M
        centres = [_centre(g.points) if len(g.detections) >= 2 else None for g in groups]
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                ca, cb = centres[a], centres[b]
                if ca is None or cb is None or np.hypot(*(ca - cb)) > COINCIDE_M:
                    continue
                if set(groups[a].detections) & set(groups[b].detections):
                    continue
                gap = _coincidence(groups[a].points, groups[b].points)
                if gap <= best_gap:
                    best, best_gap = (a, b), gap
        if best is None:
            return groups
        a, b = best
        views = sorted({**groups[a].detections, **groups[b].detections}.items())
        merged = _triangulate_one(cameras, dets, views, min_confidence)
        groups = [g for k, g in enumerate(groups) if k not in best] + [merged]


def _coincidence(p: np.ndarray, q: np.ndarray) -> float:
    """Mid-hip distance (m) of two skeletons ``[17, 4]``; inf unless most of the keypoints both
    have lie within JOINT_GATE_M of each other."""
    both = (p[:, 3] > 0) & (q[:, 3] > 0) & np.all(np.isfinite(p[:, :3]) & np.isfinite(q[:, :3]), -1)
    if both.sum() < MIN_SHARED or not (both[11] and both[12]):
        return float("inf")
    gaps = np.linalg.norm(p[both, :3] - q[both, :3], axis=-1)
    if np.mean(gaps > JOINT_GATE_M) > MAX_DISAGREEING:
        return float("inf")
    return float(np.linalg.norm(0.5 * (p[11, :3] + p[12, :3]) - 0.5 * (q[11, :3] + q[12, :3])))


def _rehome(nodes: list[_Node], cost: np.ndarray, clusters: list[list[int]]) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """A detection held alone by a prior joins a cluster of several views that it agrees with
    (a prior that fell on the line of sight of somebody seen elsewhere must not keep them).
    Returns the clusters and the (prior, detection) pairs so parted."""
    moved = []
    several = [c for c in clusters if sum(nodes[k].view != PRIOR_VIEW for k in c) >= 2]
    for cluster in clusters:
        held = [k for k in cluster if nodes[k].view != PRIOR_VIEW]
        if len(held) != 1 or len(cluster) != 2:
            continue
        (k,) = held
        best, best_cost = None, GATE_M
        for other in several:
            block = cost[k, other]
            known = block[~np.isnan(block)]
            if any(nodes[j].view == nodes[k].view for j in other) or not known.size or known.max() > DISAGREE_M:
                continue
            if known.mean() <= best_cost:
                best, best_cost = other, float(known.mean())
        if best is not None:
            cluster.remove(k)
            best.append(k)
            moved.append((cluster[0], k))
    return [sorted(c) for c in clusters if c], moved


def _triangulate(
    cameras: list[Camera], dets: list[np.ndarray], ideal: list[np.ndarray], clusters: list[list[_Node]], min_confidence: float
) -> list[Group]:
    """Triangulate every cluster of two views or more in one batch; a cluster where a view
    reprojects beyond the outlier limit goes through ``triangulate_views`` (which drops it)."""
    V, G = len(cameras), len(clusters)
    if G == 0:
        return []
    pix = np.zeros((V, G, 17, 2))
    observed = np.zeros((V, G, 17, 2))
    weight = np.zeros((V, G, 17))
    for g, cluster in enumerate(clusters):
        for m in cluster:
            if m.view != PRIOR_VIEW:
                kp = dets[m.view][m.index]
                pix[m.view, g] = ideal[m.view][m.index]
                observed[m.view, g] = kp[:, :2]
                weight[m.view, g] = np.where(kp[:, 2] >= min_confidence, kp[:, 2], 0.0)
    P = np.stack([c.P for c in cameras])
    flat, valid = triangulate_dlt(pix.reshape(V, G * 17, 2), weight.reshape(V, G * 17), P)
    points, valid = flat.reshape(G, 17, 3), valid.reshape(G, 17)
    safe = np.where(valid[..., None], points, points[valid].mean(0) if valid.any() else 0.0)
    px = project_views(cameras, safe)  # [V, G, 17, 2]
    errors = masked_median(np.linalg.norm(px - observed, axis=-1), valid[None] & (weight > 0)).T  # [G, V]
    limits = np.array([max(40.0, 0.05 * max(c.image_size)) for c in cameras])
    count = np.sum(weight > 0, axis=0)
    conf = np.where(valid, weight.sum(0) / np.maximum(count, 1), 0.0)
    groups = []
    for g, cluster in enumerate(clusters):
        views = sorted((m.view, m.index) for m in cluster if m.view != PRIOR_VIEW)
        if len(views) > 2 and np.any(np.nan_to_num(errors[g]) > limits):
            groups.append(_triangulate_one(cameras, dets, views, min_confidence))
        else:
            groups.append(Group(dict(views), np.hstack([points[g], conf[g][:, None]]), errors[g]))
    return groups


def _triangulate_one(cameras: list[Camera], dets: list[np.ndarray], views: list[tuple[int, int]], min_confidence: float) -> Group:
    cams = [cameras[v] for v, _ in views]
    tri = triangulate_views(cams, np.stack([dets[v][i] for v, i in views]), min_confidence)
    errors = np.full(len(cameras), np.nan)
    kept = {}
    for (v, i), c in zip(views, cams, strict=True):
        if c.name not in tri.rejected:
            kept[v] = i
            errors[v] = tri.errors_px[c.name]
    return Group(kept, tri.points, errors)


def _at_prior_depth(camera: Camera, keypoints: np.ndarray, prior: np.ndarray, min_confidence: float) -> np.ndarray:
    """One view's keypoints ``[17, 3]`` back-projected to the depth of the prior ``[17, 4]``
    (the prior's median depth for keypoints it lacks): ``[17, 4]``, confidence halved."""
    usable = (prior[:, 3] > 0) & np.all(np.isfinite(prior[:, :3]), -1)
    out = np.full((17, 4), np.nan)
    out[:, 3] = 0.0
    if not usable.any():
        return out
    depth = camera.depth(np.where(usable[:, None], prior[:, :3], 0.0))
    depth = np.where(usable, depth, np.median(depth[usable]))
    K = np.asarray(camera.K, np.float64)
    ideal = camera.undistort(keypoints[:, :2])
    cam = np.stack([(ideal[:, 0] - K[0, 2]) / K[0, 0], (ideal[:, 1] - K[1, 2]) / K[1, 1], np.ones(17)], -1) * depth[:, None]
    world = (cam - np.asarray(camera.t)) @ np.asarray(camera.R)
    ok = (keypoints[:, 2] >= min_confidence) & (depth > 0.1)
    out[ok, :3] = world[ok]
    out[ok, 3] = 0.5 * keypoints[ok, 2]
    return out
