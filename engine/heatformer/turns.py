"""A one-view body kept facing the way it faced: the check over time for a detection with left and
right exchanged, where no other view can outvote it.

BlazePose keys on the face, and now and then it labels someone seen from behind as if they faced
the camera. With several views the others outvote that view (engine.heatformer.refine.
settle_mirrored); with one view nothing does, and the body turns round for as long as the
detector keeps the sides exchanged (on the bundled demo, cam02 alone: 22 of 100 frame-sets,
PA-MPJPE about 220 mm there against 35-60 mm around them). Nobody turns round between two
frame-sets a fraction of a second apart, so a view's body whose orientation jumps by more than a
person turns in that time (:func:`doubted_turn`) is estimated again from its keypoints with left
and right exchanged (HeatFormer and the fit, all such people in one batched call), and that answer
is taken when it faces closer to the way the body faced before. A real fast turn is no jump at
the app's rates, and its exchanged answer faces further away: it is left alone. A run of
exchanged answers ends after :data:`MIRRORED_HOLD_S`, so a wrong start cannot hold the body
turned the wrong way for longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.types import COCO17_MIRROR, FrameBody
from engine.heatformer.model import HeatFormer
from engine.heatformer.refine import DEFAULT as DEFAULT_REFINE
from engine.heatformer.refine import RefineSettings, mirror_distance

if TYPE_CHECKING:
    from engine.heatformer.inference import Runner

TURN_GAP_S = 0.5  # a heading older than this says nothing about the next frame-set
TURN_MIN_DEG = 30.0  # a body turned by less than this between two frame-sets is never doubted ...
TURN_RATE_DEG_S = 180.0  # ... nor one turned no faster than this (half a turn a second)
MIRRORED_HOLD_S = 1.0  # exchanged answers taken in a row for longer than this: the person did turn


@dataclass(frozen=True)
class Heading:
    """Which way a person's one-view body faced: ``orient`` (body to camera) in ``view`` at
    ``time`` (seconds); ``since``: when the run of exchanged answers it is part of began (None
    when the body was taken as detected)."""

    view: int
    orient: np.ndarray
    time: float
    since: float | None = None


def turn_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation between rotations ``a`` and ``b`` (degrees)."""
    cos = (float(np.trace(a.T @ b)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cos))))


def single_view(frame: FrameBody) -> int | None:
    """The view of a body seen by one view alone (not a fused world body), else None."""
    use = np.flatnonzero(frame.used)
    return int(use[0]) if len(use) == 1 and not frame.fused else None


def doubted_turn(heading: Heading | None, frame: FrameBody, now: float) -> float | None:
    """How far (degrees) the one-view body of ``frame`` at ``now`` turned from ``heading`` when
    that is more than a person turns in the time between them, else None."""
    view = single_view(frame)
    if heading is None or view is None or view != heading.view:
        return None
    dt = now - heading.time
    if not 0.0 < dt <= TURN_GAP_S:
        return None
    turned = turn_deg(heading.orient, frame.view_orient[view])
    return turned if turned > max(TURN_MIN_DEG, TURN_RATE_DEG_S * dt) else None


def exchanged(keypoints: np.ndarray, view: int) -> np.ndarray:
    """``keypoints`` ``[V, 17, 3]`` with left and right exchanged in ``view``."""
    out = np.array(keypoints, copy=True)
    out[view] = out[view][COCO17_MIRROR]
    return out


def settle_turns(
    model: HeatFormer,
    frames: list[FrameBody],
    keypoints: list[np.ndarray],
    headings: list[Heading | None],
    now: float,
    image_size: np.ndarray,
    runner: Runner | None = None,
    refine: bool = True,
    settings: RefineSettings = DEFAULT_REFINE,
) -> list[Heading | None]:
    """One frame-set's uncalibrated bodies (``frames``, fitted already when ``refine``; their
    ``keypoints`` ``[V, 17, 3]`` as HeatFormer saw them; views of ``image_size`` ``[V, 2]``),
    each checked against its person's last ``headings``: a one-view body that turned too fast is
    estimated again with its view's left and right exchanged (:func:`doubted_turn`), and replaced
    in place by that answer (``frame.mirrored`` then marks the view) where it faces closer to the
    heading. Views whose keypoints exchanging hardly moves (someone seen from the side) are not
    tried. Returns the headings for the next frame-set."""
    from engine.heatformer.inference import estimate_frames, refine_bodies  # inference imports this module

    doubts: list[tuple[int, int, float]] = []  # (person, view, degrees turned)
    for i, (frame, heading) in enumerate(zip(frames, headings, strict=True)):
        turned = doubted_turn(heading, frame, now)
        if turned is None or heading is None:
            continue
        if heading.since is not None and now - heading.since >= MIRRORED_HOLD_S:
            continue
        seen = torch.as_tensor(np.asarray(keypoints[i][heading.view : heading.view + 1], np.float64))  # [1, 17, 3]
        if float(mirror_distance(seen[..., :2], seen[..., 2], settings)[0]) < settings.mirror_distinct:
            continue
        doubts.append((i, heading.view, turned))
    taken: set[int] = set()
    if doubts:
        again = [exchanged(keypoints[i], view) for i, view, _ in doubts]
        alternatives = estimate_frames(model, again, runner=runner)
        if refine:
            refine_bodies(model, alternatives, again, image_size=image_size, settings=settings)
        for (i, view, turned), alt in zip(doubts, alternatives, strict=True):
            heading = headings[i]
            assert heading is not None
            if single_view(alt) != view or turn_deg(heading.orient, alt.view_orient[view]) >= turned:
                continue
            _take(frames[i], alt, view)
            taken.add(i)
    out: list[Heading | None] = []
    for i, (frame, heading) in enumerate(zip(frames, headings, strict=True)):
        seen_by = single_view(frame)
        if seen_by is None:
            out.append(None)
            continue
        since = (heading.since if heading is not None and heading.since is not None else now) if i in taken else None
        out.append(Heading(seen_by, frame.view_orient[seen_by].copy(), now, since))
    return out


def _take(frame: FrameBody, alt: FrameBody, view: int) -> None:
    """``frame``'s view body replaced by ``alt``'s, estimated with the view's sides exchanged."""
    frame.view_orient[view], frame.view_pose[view] = alt.view_orient[view], alt.view_pose[view]
    frame.view_betas[view], frame.view_cam[view] = alt.view_betas[view], alt.view_cam[view]
    frame.view_boxes[view] = alt.view_boxes[view]
    if alt.view_lens is not None:
        if frame.view_lens is None:
            frame.view_lens = np.full((len(frame.used), 3), np.nan)
        frame.view_lens[view] = alt.view_lens[view]
    frame.mirrored = np.zeros(len(frame.used), bool)
    frame.mirrored[view] = True
