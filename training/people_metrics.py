"""Scores for several people: cross-view association, identity (IDF1, id switches), 3D error.

- Association, per detection: a predicted group is pure when all its detections come from one
  ground-truth person. Precision = detections in pure groups / detections in groups. Recall =
  for each person seen by two views or more, the detections of its largest pure group / its
  detections (a person split over two groups is counted once).
- IDF1 (Ristani et al. 2016, "Performance measures and a data set for multi-target,
  multi-camera tracking"): ground-truth and predicted trajectories are matched one-to-one over the
  whole sequence so that the number of frames where matched pairs coincide (within a distance)
  is largest; IDTP is that number, IDFN = ground-truth frames - IDTP, IDFP = predicted frames -
  IDTP, IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN).
- Id switches (CLEAR-MOT): per frame the people are matched to predictions (Hungarian on distance,
  within the threshold); a switch is a person matched to a different predicted id than the last
  time it was matched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

Frame = Mapping[int, np.ndarray]  # id -> position [3] (or any vector) in one frame


@dataclass(frozen=True)
class AssociationScore:
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class IdScore:
    idf1: float
    idtp: int
    idfp: int
    idfn: int


class AssociationCounter:
    """Accumulates association counts frame by frame."""

    def __init__(self) -> None:
        self.pure = 0
        self.grouped = 0
        self.recalled = 0
        self.relevant = 0

    def add(self, groups: Sequence[Mapping[int, int]], person: np.ndarray) -> None:
        """groups: view -> detection index per predicted group; person ``[V, Pmax]``: the
        ground-truth person of each detection slot (-1 empty)."""
        best: dict[int, int] = {}
        for group in groups:
            owners = {int(person[v, i]) for v, i in group.items()}
            self.grouped += len(group)
            if len(owners) == 1 and -1 not in owners:
                self.pure += len(group)
                (p,) = owners
                best[p] = max(best.get(p, 0), len(group))
        for p in np.unique(person[person >= 0]):
            count = int(np.sum(person == p))
            if count >= 2:
                self.relevant += count
                self.recalled += best.get(int(p), 0)

    def score(self) -> AssociationScore:
        precision = self.pure / self.grouped if self.grouped else 1.0
        recall = self.recalled / self.relevant if self.relevant else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return AssociationScore(precision, recall, f1)


def idf1(truth: Sequence[Frame], predicted: Sequence[Frame], threshold: float) -> IdScore:
    """IDF1 of ``predicted`` against ``truth`` (one mapping id -> position per frame, same frames);
    a pair coincides in a frame when both are present within ``threshold`` of each other."""
    if len(truth) != len(predicted):
        raise ValueError(f"idf1: {len(truth)} ground-truth frames but {len(predicted)} predicted frames")
    gt_ids = sorted({i for f in truth for i in f})
    pr_ids = sorted({i for f in predicted for i in f})
    gi = {g: k for k, g in enumerate(gt_ids)}
    pi = {p: k for k, p in enumerate(pr_ids)}
    overlap = np.zeros((len(gt_ids), len(pr_ids)), np.int64)
    for t_frame, p_frame in zip(truth, predicted, strict=True):
        for g, gp in t_frame.items():
            for p, pp in p_frame.items():
                if np.linalg.norm(np.asarray(gp) - np.asarray(pp)) <= threshold:
                    overlap[gi[g], pi[p]] += 1
    total_gt = sum(len(f) for f in truth)
    total_pred = sum(len(f) for f in predicted)
    idtp = 0
    if overlap.size:
        rows, cols = linear_sum_assignment(-overlap)
        idtp = int(overlap[rows, cols].sum())
    idfn, idfp = total_gt - idtp, total_pred - idtp
    denominator = 2 * idtp + idfp + idfn
    return IdScore(2 * idtp / denominator if denominator else 1.0, idtp, idfp, idfn)


def match_frame(truth: Frame, predicted: Frame, threshold: float) -> dict[int, int]:
    """Ground-truth id -> predicted id, one-to-one, minimum total distance within ``threshold``."""
    gt_ids, pr_ids = sorted(truth), sorted(predicted)
    if not gt_ids or not pr_ids:
        return {}
    dist = np.array([[np.linalg.norm(np.asarray(truth[g]) - np.asarray(predicted[p])) for p in pr_ids] for g in gt_ids])
    rows, cols = linear_sum_assignment(np.where(dist <= threshold, dist, 1e9))
    return {gt_ids[r]: pr_ids[c] for r, c in zip(rows, cols, strict=True) if dist[r, c] <= threshold}


def id_switches(truth: Sequence[Frame], predicted: Sequence[Frame], threshold: float) -> int:
    """CLEAR-MOT id switches of ``predicted`` against ``truth``."""
    last: dict[int, int] = {}
    switches = 0
    for t_frame, p_frame in zip(truth, predicted, strict=True):
        for g, p in match_frame(t_frame, p_frame, threshold).items():
            if g in last and last[g] != p:
                switches += 1
            last[g] = p
    return switches


def mpjpe(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean per-joint position error (m) of keypoints ``[..., 17, 4]`` (confidence > 0 and finite
    only) against ``[..., 17, 3]``; NaN when nothing was triangulated."""
    ok = (np.nan_to_num(predicted[..., 3]) > 0) & np.all(np.isfinite(predicted[..., :3]), -1)
    if not ok.any():
        return float("nan")
    return float(np.linalg.norm(predicted[..., :3][ok] - truth[..., :3][ok], axis=-1).mean())
