"""Uncalibrated view bodies kept facing the way they faced: the check over time for a detection
with left and right exchanged, where no other view outvotes it.

BlazePose keys on the face, and now and then it labels someone seen from behind as if they faced
the camera. In a calibrated room the other views outvote that view (engine.heatformer.refine.
settle_mirrored). Uncalibrated, each view turns the body its own way: with one view nothing
outvotes the detection, and with several the exchanged view's body simply turns round (the
mirrored views' check, settle_mirrored_views, finds few). On the bundled demo, cam02 alone, the
subject's body faced the wrong way in 31 of 100 frame-sets (PA-MPJPE about 220 mm there against
35-60 mm around them). Nobody turns round between two frame-sets a fraction of a second apart, so
a body whose orientation in a view jumps by more than a person turns in that time
(:func:`turned`) is estimated again with that view's left and right exchanged (HeatFormer and the
fit, all such people in one batched call), and that answer is taken when it faces closer to the
way the body faced before. A real fast turn is no jump at the app's rates, and its exchanged
answer faces further away: it is left alone. A run of exchanged answers ends after
:data:`MIRRORED_HOLD_S`, so a wrong start cannot hold a body turned the wrong way for longer. The
price: a detection exchanged for longer than that is taken as it is after a second, and when it
comes back the right way round that too looks like a turn and is undone for a second (as many
frame-sets shown the wrong way as without the check, a second later). On the demo the runs are
shorter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.geometry import rotation_angle_deg
from core.types import COCO17_MIRROR, FrameBody
from engine.heatformer.model import HeatFormer
from engine.heatformer.refine import DEFAULT as DEFAULT_REFINE
from engine.heatformer.refine import RefineSettings, mirror_distance
from engine.heatformer.temporal import someone_else

if TYPE_CHECKING:
    from engine.heatformer.inference import Runner

TURN_GAP_S = 0.5  # a heading older than this says nothing about the next frame-set
TURN_MIN_DEG = 30.0  # a body turned by less than this between two frame-sets is never doubted ...
TURN_RATE_DEG_S = 180.0  # ... nor one turned no faster than this (half a turn a second)
MIRRORED_HOLD_S = 1.0  # exchanged answers taken in a row for longer than this: the person did turn


@dataclass(frozen=True)
class Heading:
    """Which way a person's body faced in each view at ``time`` (seconds): ``orient`` ``[V, 3, 3]``
    (body to camera; NaN where the view had no body for them); ``since`` ``[V]``: when the run of
    exchanged answers the view is in began (NaN where it was taken as detected); ``boxes``
    ``[V, 3]``: where (the view's crop box, FrameBody.view_boxes; NaN where unused or unknown)."""

    orient: np.ndarray
    time: float
    since: np.ndarray
    boxes: np.ndarray | None = None


def allowed_deg(dt: float) -> float:
    """The most a body turns in ``dt`` seconds for this check."""
    return max(TURN_MIN_DEG, TURN_RATE_DEG_S * dt)


def view_bodies(frame: FrameBody) -> bool:
    """Whether ``frame`` holds view bodies this check applies to (not a fused world body)."""
    return frame.valid and not frame.fused


def turned(heading: Heading | None, frame: FrameBody, now: float) -> np.ndarray:
    """How far (degrees) each view's body of ``frame`` at ``now`` turned from ``heading`` ``[V]``:
    NaN where there is nothing to compare (no heading or none there, a fused body, a heading over
    :data:`TURN_GAP_S` old or from the future, a view whose box now holds somebody else:
    engine.heatformer.temporal.someone_else, e.g. one-person mode's detector switched people)."""
    V = len(frame.used)
    if heading is None or not view_bodies(frame) or len(heading.orient) != V or not 0.0 < now - heading.time <= TURN_GAP_S:
        return np.full(V, np.nan)
    other = np.zeros(V, bool) if heading.boxes is None else someone_else(heading.boxes, frame.view_boxes, now - heading.time)
    compared = frame.used & ~other
    return np.array([rotation_angle_deg(heading.orient[v], frame.view_orient[v]) if compared[v] else math.nan for v in range(V)])


def excess_deg(turns: np.ndarray, dt: float) -> float:
    """How much more than a person turns in ``dt`` the views turned, summed over the views."""
    over = turns[np.isfinite(turns)] - allowed_deg(dt)
    return float(np.clip(over, 0.0, None).sum())


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
    each checked against its person's last ``headings``: a body that turned too fast in a view
    (:func:`turned`; the view that turned most, one per body) is estimated again with that view's
    left and right exchanged, and replaced in place by that answer (``frame.mirrored`` then marks
    the views taken exchanged) where its views turned less beyond what a person turns
    (:func:`excess_deg`). Views whose keypoints exchanging hardly moves (someone seen from the
    side) and views in a run of exchanged answers over :data:`MIRRORED_HOLD_S` long are not tried.
    Returns the headings for the next frame-set."""
    from engine.heatformer.inference import estimate_frames, refine_bodies  # inference imports this module

    doubts: list[tuple[int, int, float]] = []  # (person, view, how far beyond a person's turn the views turned)
    for i, (frame, heading) in enumerate(zip(frames, headings, strict=True)):
        turns = turned(heading, frame, now)
        if heading is None or not np.isfinite(turns).any():
            continue
        dt = now - heading.time
        late = np.isfinite(heading.since) & (now - heading.since >= MIRRORED_HOLD_S)
        candidates = np.isfinite(turns) & (turns > allowed_deg(dt)) & ~late
        if not candidates.any():  # the usual frame-set: nothing turned too fast
            continue
        seen = torch.as_tensor(np.asarray(keypoints[i], np.float64))
        candidates &= (mirror_distance(seen[..., :2], seen[..., 2], settings) >= settings.mirror_distinct).numpy()
        if candidates.any():
            doubts.append((i, int(np.argmax(np.where(candidates, turns, -1.0))), excess_deg(turns, dt)))
    taken: dict[int, int] = {}  # person -> the view tried exchanged and taken
    if doubts:
        again = [exchanged(keypoints[i], view) for i, view, _ in doubts]
        alternatives = estimate_frames(model, again, runner=runner)
        if refine:
            refine_bodies(model, alternatives, again, image_size=image_size, settings=settings)
        for (i, view, excess), alt in zip(doubts, alternatives, strict=True):
            heading = headings[i]
            assert heading is not None
            if not _same_views(frames[i], alt) or (alt.mirrored is not None and alt.mirrored[view]):
                continue  # another set of views, or the fit exchanged the view back: the detection as it was
            if excess_deg(turned(heading, alt, now), now - heading.time) >= excess:
                continue
            _take(frames[i], alt, view)
            taken[i] = view
    out: list[Heading | None] = []
    for i, (frame, heading) in enumerate(zip(frames, headings, strict=True)):
        if not view_bodies(frame):
            out.append(None)
            continue
        orient = np.where(frame.used[:, None, None], frame.view_orient, np.nan)
        boxes = np.where(frame.used[:, None], frame.view_boxes, np.nan)
        since = np.full(len(frame.used), np.nan)
        if i in taken:
            v = taken[i]
            since[v] = heading.since[v] if heading is not None and np.isfinite(heading.since[v]) else now
        out.append(Heading(orient, now, since, boxes))
    return out


def _same_views(frame: FrameBody, alt: FrameBody) -> bool:
    return view_bodies(alt) and bool((alt.used == frame.used).all())


def _take(frame: FrameBody, alt: FrameBody, view: int) -> None:
    """``frame``'s view bodies replaced by ``alt``'s, estimated with ``view``'s sides exchanged
    (and any other view ``alt``'s fit took mirrored)."""
    frame.view_orient[:], frame.view_pose[:] = alt.view_orient, alt.view_pose
    frame.view_betas[:], frame.view_cam[:], frame.view_boxes[:] = alt.view_betas, alt.view_cam, alt.view_boxes
    frame.view_lens = None if alt.view_lens is None else alt.view_lens.copy()
    mirrored = np.zeros(len(frame.used), bool) if alt.mirrored is None else alt.mirrored.copy()
    mirrored[view] = True
    frame.mirrored = mirrored
