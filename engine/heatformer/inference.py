"""Run HeatFormer-S on one frame-set's detections, and over a keypoints exchange file.

:func:`estimate_frame` is the one place detections become bodies: the evaluator's ``--keypoints``
mode, the headless recorder and the live pipeline all call it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.formats import KeypointsFile, results_arrays
from core.geometry import undistort_pixels
from core.types import FrameBody
from engine.body.lbs import rotation_6d_to_matrix
from engine.heatformer.fusion import fuse_views
from engine.heatformer.inputs import L_HIP, R_HIP, ViewInputs, prepare, triangulate_root
from engine.heatformer.model import HeatFormer
from engine.heatformer.offsets import keypoint_body
from engine.heatformer.refine import DEFAULT as DEFAULT_REFINE
from engine.heatformer.refine import (
    RefineSettings,
    assumed_lens,
    fit_dtype,
    refine_views_seen,
    refine_world_seen,
    settle_mirrored,
    settle_mirrored_views,
)
from engine.heatformer.temporal import smooth_sequence
from engine.heatformer.tta import augmented_average
from engine.heatformer.turns import Heading, settle_turns

MIN_KEYPOINTS = 4  # a view with fewer confident detections is left out of the frame's estimate
# HeatFormer's iterations where the refinement follows it in calibrated views: the fit decides from
# the keypoints, and HeatFormer's later iterations no longer show in the refined body. On the real
# demo's held-out views (engine.realbench, bundled weights), refined after 1 / 2 / 3 iterations:
# medians 25.77 / 25.58 / 25.62, 19.16 / 19.14 / 19.17, 28.01 / 27.82 / 27.94, 17.83 / 18.09 /
# 18.09 px; filtered bone spread 0.462 / 0.472 / 0.483 cm, filter growth 0.75 / 0.66 / 0.64 px; one
# call for 4 views 2.9 / 5.8 / 7.9 ms on ONNX Runtime (1 thread). HeatFormer alone needs all three
# (its own held-out medians 48.3 against 36.0 px for cam01 after one).
REFINED_ITERATIONS = 1


def heatformer_iterations(refine: bool) -> int | None:
    """HeatFormer's iterations in calibrated views: REFINED_ITERATIONS where the refinement
    follows, else None (all of them)."""
    return REFINED_ITERATIONS if refine else None


# An inference backend (engine.backends.HeatFormerRunner): inputs, and the iterations (None: all).
Runner = Callable[[ViewInputs, int | None], dict[str, np.ndarray]]


def estimate_frame(
    model: HeatFormer,
    keypoints: np.ndarray,
    K: np.ndarray | None = None,
    R: np.ndarray | None = None,
    t: np.ndarray | None = None,
    dist: np.ndarray | None = None,
    root: np.ndarray | None = None,
    runner: Runner | None = None,
    refine: bool = False,
    previous: FrameBody | None = None,
    image_size: np.ndarray | None = None,
    settings: RefineSettings = DEFAULT_REFINE,
) -> FrameBody:
    """Bodies from detections ``keypoints`` ``[V, 17, 3]`` (pixels + confidence). With cameras
    (K ``[V, 3, 3]``, R, t, dist) the views are calibrated: one world body, its mid-hip at ``root``
    (world metres; default: triangulated from the hips). Views with fewer than ``MIN_KEYPOINTS``
    confident keypoints are left out; without any, nothing is estimated (``valid`` is False).
    ``runner``: an inference backend (engine.backends.HeatFormerRunner); default: ``model`` itself.
    ``refine``: fit the body to the views' keypoints after HeatFormer (:func:`refine_bodies`): the
    fused world body, pulled towards HeatFormer's answer and, when given, towards the ``previous``
    frame-set's fused body; without cameras, the views' bodies, seen by views of ``image_size``
    ``[V, 2]`` (w, h px; needed then). ``settings``: the fit's weights."""
    frame = estimate_frames(model, [keypoints], K, R, t, dist, [root], runner, heatformer_iterations(refine))[0]
    if refine:
        refine_bodies(model, [frame], [keypoints], K, R, t, dist, [previous], image_size, settings)
    return frame


@dataclass
class _Proposal:
    """One person's inputs to HeatFormer: the views used, their (undistorted) keypoints, the
    model inputs (batch of one) and the mid-hip in the world (None: per-view mode)."""

    frame: FrameBody
    use: np.ndarray
    observed: np.ndarray
    inputs: ViewInputs
    root_world: torch.Tensor | None


def estimate_frames(
    model: HeatFormer,
    keypoints: list[np.ndarray],
    K: np.ndarray | None = None,
    R: np.ndarray | None = None,
    t: np.ndarray | None = None,
    dist: np.ndarray | None = None,
    roots: list[np.ndarray | None] | None = None,
    runner: Runner | None = None,
    iterations: int | None = None,
) -> list[FrameBody]:
    """:func:`estimate_frame` (not refined) for several people of one frame-set, seen by the same
    cameras: ``keypoints`` and ``roots`` one per person. People who use as many views in the same
    mode go through HeatFormer in one batched call (each row carries its own views' cameras).
    ``iterations``: HeatFormer's iterations in calibrated views (None: all; see
    :func:`heatformer_iterations`); uncalibrated views always get all."""
    roots = roots if roots is not None else [None] * len(keypoints)
    proposals = [_propose(kp, K, R, t, dist, root) for kp, root in zip(keypoints, roots, strict=True)]
    groups: dict[tuple[int, bool], list[_Proposal]] = {}
    for proposal in proposals:
        if proposal is not None:
            groups.setdefault((len(proposal.use), proposal.inputs.calibrated), []).append(proposal)
    fused: list[_Proposal] = []  # calibrated: placed on their triangulated mid-hips below, everyone at once
    for batch in groups.values():
        inputs = ViewInputs.cat([b.inputs for b in batch])
        final = _run(model, inputs, runner, iterations if inputs.calibrated else None)
        orient, pose = (rotation_6d_to_matrix(final[k].double()).numpy() for k in ("orient", "pose"))
        betas, cam = final["betas"].double().numpy(), final["cam"].double().numpy()
        for row, proposal in enumerate(batch):
            if _fill(proposal, orient[row], pose[row], betas[row], cam[row], R):
                fused.append(proposal)
    _place(model, fused)
    return [p.frame if p is not None else FrameBody.empty(kp.shape[0]) for p, kp in zip(proposals, keypoints, strict=True)]


def _propose(
    keypoints: np.ndarray,
    K: np.ndarray | None,
    R: np.ndarray | None,
    t: np.ndarray | None,
    dist: np.ndarray | None,
    root: np.ndarray | None,
) -> _Proposal | None:
    """One person's HeatFormer inputs, or None when no view saw enough of them."""
    frame = FrameBody.empty(keypoints.shape[0])
    frame.used = (keypoints[..., 2] > 0).sum(axis=1) >= MIN_KEYPOINTS
    use = np.flatnonzero(frame.used)
    if not len(use):
        return None
    observed = keypoints[use].astype(np.float64)
    cams: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    if K is not None and R is not None and t is not None:
        if dist is not None:
            observed[..., :2] = np.stack([undistort_pixels(observed[i, :, :2], K[v], dist[v]) for i, v in enumerate(use)])
        K_t, R_t, t_t = (torch.as_tensor(np.asarray(a)[use], dtype=torch.float32)[None] for a in (K, R, t))
        cams = (K_t, R_t, t_t)
    obs = torch.as_tensor(observed, dtype=torch.float32)[None]
    root_world: torch.Tensor | None = None
    if cams is not None:
        if root is not None and np.isfinite(root).all():
            root_world = torch.as_tensor(root, dtype=torch.float32)[None]
        else:
            point, ok = triangulate_root(obs, *cams)
            root_world = point if bool(ok[0]) else None  # hips seen in fewer than 2 views: per-view mode
    inputs = prepare(obs, *cams, root_world) if cams is not None and root_world is not None else prepare(obs)
    return _Proposal(frame, use, observed, inputs, root_world)


def _run(model: HeatFormer, inputs: ViewInputs, runner: Runner | None, iterations: int | None) -> dict[str, torch.Tensor]:
    """HeatFormer's estimate for a batch after ``iterations`` (None: all): orient, pose, betas, cam ``[B, ...]``."""
    if runner is None:
        with torch.no_grad():
            state = augmented_average(lambda x: model(x, iterations), inputs)[-1]
        return {"orient": state.orient, "pose": state.pose, "betas": state.betas, "cam": state.cam}
    return {k: torch.from_numpy(np.asarray(v)) for k, v in runner(inputs, iterations).items()}


def _fill(proposal: _Proposal, orient: np.ndarray, pose: np.ndarray, betas: np.ndarray, cam: np.ndarray,
          R: np.ndarray | None) -> bool:  # fmt: skip
    """Fill the proposal's frame from HeatFormer's answer for its views (orient ``[V, 3, 3]``, pose
    ``[V, 23, 3, 3]``, betas ``[V, B]``, cam ``[V, 3]``), and fuse the views when calibrated: True
    then (the fused body still needs its place, :func:`_place`)."""
    frame, use, observed, root_world = proposal.frame, proposal.use, proposal.observed, proposal.root_world
    frame.view_orient[use], frame.view_pose[use], frame.view_betas[use] = orient, pose, betas
    frame.view_cam[use], frame.view_boxes[use] = cam, proposal.inputs.boxes[0].double().numpy()
    if root_world is None or R is None:
        return False
    weights = observed[..., 2].mean(axis=1) + 1e-6  # views that saw more of the body count more
    frame.orient, frame.pose, frame.betas = fuse_views(orient, pose, betas, np.asarray(R, np.float64)[use], weights)
    return True


def _place(model: HeatFormer, fused: list[_Proposal]) -> None:
    """Each fused body's translation, which puts its mid-hip on the triangulated one, and its
    joints: one call of the body model for everyone."""
    if not fused:
        return
    rotations, shapes = [], []
    for proposal in fused:
        frame = proposal.frame
        assert frame.orient is not None and frame.pose is not None and frame.betas is not None
        rotations.append(np.concatenate([frame.orient[None], frame.pose]))
        shapes.append(frame.betas)
    as_t = lambda a: torch.as_tensor(np.stack(a), dtype=torch.float32)  # noqa: E731
    body = keypoint_body(model).joints_rotmat(as_t(shapes), as_t(rotations))
    assert body.keypoints is not None
    mid_hips = 0.5 * (body.keypoints[:, L_HIP] + body.keypoints[:, R_HIP]).double().numpy()
    joints = body.joints.double().numpy()
    for k, proposal in enumerate(fused):
        assert proposal.root_world is not None
        proposal.frame.transl = proposal.root_world[0].double().numpy() - mid_hips[k]  # its mid-hip on the triangulated one
        proposal.frame.joints = joints[k] + proposal.frame.transl


def refine_bodies(
    model: HeatFormer,
    frames: list[FrameBody],
    keypoints: list[np.ndarray],
    K: np.ndarray | None = None,
    R: np.ndarray | None = None,
    t: np.ndarray | None = None,
    dist: np.ndarray | None = None,
    previous: list[FrameBody | None] | None = None,
    image_size: np.ndarray | None = None,
    settings: RefineSettings = DEFAULT_REFINE,
) -> None:
    """The fit after HeatFormer for one frame-set's people: with the cameras' calibration each
    fused world body (:func:`refine_frames`, everyone in one batched call), without it each
    person's views (:func:`refine_view_frames`, which needs the views' ``image_size`` ``[V, 2]``)."""
    if K is not None and R is not None and t is not None:
        refine_frames(model, frames, keypoints, K, R, t, dist, previous, settings)
    elif image_size is None:
        raise ValueError("refining uncalibrated views needs each view's image size (width, height)")
    else:
        refine_view_frames(model, frames, keypoints, image_size, settings)


def refine_frames(
    model: HeatFormer,
    frames: list[FrameBody],
    keypoints: list[np.ndarray],
    K: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    dist: np.ndarray | None = None,
    previous: list[FrameBody | None] | None = None,
    settings: RefineSettings = DEFAULT_REFINE,
) -> None:
    """Replace each fused body of ``frames`` by its fit to its own detections ``keypoints``
    (each ``[V, 17, 3]``, pixels, seen by the cameras K, R, t, dist ``[V, ...]``), pulled towards
    the ``previous`` frame-set's body of the same person when given: all of them in one batched
    call (several people cost little more than one). Views a frame did not use count for nothing.
    A view whose detection has left and right exchanged is found and the body fitted with it
    mirrored (engine.heatformer.refine.settle_mirrored); ``frame.mirrored`` says which."""
    todo = [i for i, f in enumerate(frames) if f.fused]
    if not todo:
        return
    body = keypoint_body(model, fit_dtype(model.body))
    cams = [np.asarray(a, np.float64) for a in (K, R, t)]
    pixels, conf, rot, before = [], [], [], []
    pulled = False  # whether any body has a previous one to be pulled towards
    for i in todo:
        frame, points = frames[i], np.asarray(keypoints[i], np.float64)
        assert frame.orient is not None and frame.pose is not None
        if dist is not None:
            points = points.copy()
            points[..., :2] = np.stack([undistort_pixels(p[:, :2], k, d) for p, k, d in zip(points, cams[0], dist, strict=True)])
        pixels.append(points[..., :2])
        conf.append(np.where(frame.used[:, None], points[..., 2], 0.0))
        rot.append(np.concatenate([frame.orient[None], frame.pose]))
        last = _fused_rotations(previous[i] if previous is not None else None)
        pulled = pulled or last is not None
        before.append(rot[-1] if last is None else last)  # none: its own prior again
    n = len(todo)
    as_t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    K_n, R_n, t_n = (as_t(np.repeat(a[None], n, axis=0)) for a in cams)
    betas, transl = as_t([frames[i].betas for i in todo]), as_t([frames[i].transl for i in todo])
    prior, px, cf = as_t(before) if pulled else None, as_t(pixels), as_t(conf)
    fitted = refine_world_seen(body, as_t(rot), betas, transl, px, cf, K_n, R_n, t_n, prior, settings)
    (r, b, tr), mirrored = settle_mirrored(body, fitted, px, cf, K_n, R_n, t_n, prior, settings)  # views with sides exchanged
    with torch.no_grad():
        joints = keypoint_body(model, torch.float64).joints_rotmat(b, r).joints + tr[:, None]
    for k, i in enumerate(todo):
        frame = frames[i]
        frame.orient, frame.pose = r[k, 0].numpy(), r[k, 1:].numpy()
        frame.betas, frame.transl, frame.joints = b[k].numpy(), tr[k].numpy(), joints[k].numpy()
        frame.mirrored = mirrored[k].numpy() if bool(mirrored[k].any()) else None


def refine_view_frames(model: HeatFormer, frames: list[FrameBody], keypoints: list[np.ndarray], image_size: np.ndarray,
                       settings: RefineSettings = DEFAULT_REFINE) -> None:  # fmt: skip
    """Replace the per-view bodies of each frame without a world body by their fit to those views'
    keypoints ``[V, 17, 3]`` (pixels, as HeatFormer saw them), seen by views of ``image_size``
    ``[V, 2]`` (w, h px): one pose and shape, each view's orientation and placement, through a lens
    of the assumed field of view (engine.heatformer.refine.refine_views; ``frame.view_lens`` says
    which). On the synthetic benchmark this wins from one view on (PA-MPJPE 36.8 -> 24.0 mm with 4
    views; one view 65.5 -> 62.7, MPJPE 90.4 -> 82.1); the weak-perspective fit it replaced lost
    with one view and was mixed with two. People seen by the same number of views are fitted in
    one batched call."""
    body = keypoint_body(model, fit_dtype(model.body))
    sizes = np.asarray(image_size, np.float64)
    groups: dict[int, list[int]] = {}  # people seen by the same number of views are fitted in one batched call
    for i, frame in enumerate(frames):
        if not frame.fused and frame.used.any():
            groups.setdefault(int(frame.used.sum()), []).append(i)
    as_t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    for todo in groups.values():
        uses = [np.flatnonzero(frames[i].used) for i in todo]
        observed = as_t([np.asarray(keypoints[i], np.float64)[use] for i, use in zip(todo, uses, strict=True)])
        boxes = as_t([frames[i].view_boxes[use] for i, use in zip(todo, uses, strict=True)])  # [N, V, 3]
        crop = (observed[..., :2] - boxes[:, :, None, :2]) / boxes[:, :, None, 2:3]
        rot = as_t([np.concatenate([frames[i].view_orient[use][:, None], frames[i].view_pose[use]], axis=1)
                    for i, use in zip(todo, uses, strict=True)])  # fmt: skip
        lens = assumed_lens(as_t([sizes[use] for use in uses]), boxes)
        betas = as_t([frames[i].view_betas[use][0] for i, use in zip(todo, uses, strict=True)])
        cam = as_t([frames[i].view_cam[use] for i, use in zip(todo, uses, strict=True)])
        fitted = refine_views_seen(body, rot, betas, cam, crop, observed[..., 2], lens, settings)
        (r, b, c), mirrored = settle_mirrored_views(body, fitted, crop, observed[..., 2], lens, settings)
        for k, (i, use) in enumerate(zip(todo, uses, strict=True)):
            frame = frames[i]
            if bool(mirrored[k].any()):
                frame.mirrored = np.zeros(len(frame.used), bool)
                frame.mirrored[use] = mirrored[k].numpy()
            frame.view_orient[use], frame.view_pose[use] = r[k, :, 0].numpy(), r[k, :, 1:].numpy()
            frame.view_betas[use], frame.view_cam[use] = b[k].numpy(), c[k].numpy()
            frame.view_lens = np.full((len(frame.used), 3), np.nan)
            frame.view_lens[use] = lens[k].numpy()


def _fused_rotations(frame: FrameBody | None) -> np.ndarray | None:
    """A fused frame's rotations ``[24, 3, 3]`` (root first), else None."""
    if frame is None or frame.orient is None or frame.pose is None or not frame.fused:
        return None
    return np.concatenate([frame.orient[None], frame.pose])


def body_results(
    model: HeatFormer,
    data: KeypointsFile,
    uncalibrated: bool = False,
    runner: Runner | None = None,
    refine: bool = True,
    smooth: bool = True,
) -> dict[str, np.ndarray]:
    """Body results (DESIGN.md) for every frame of a keypoints exchange file: a fused world body
    when the views are calibrated, and per-view parameters plus cameras (s, tx, ty) always.
    ``refine``: each fused body fitted to the views' keypoints (the previous frame's body as its
    temporal pull); ``smooth``: the fused bodies smoothed over the whole sequence, one shape per
    stretch of frames (engine.heatformer.temporal.smooth_sequence). Uncalibrated, a one-view body
    that turns round for a moment is checked as the app checks it (engine.heatformer.turns)."""
    calibrated = data.calibrated and not uncalibrated
    cams = (data.K, data.R, data.t, data.dist) if calibrated else (None, None, None, None)
    sizes = np.array([c.image_size for c in data.cameras(uncalibrated)], np.float64)
    frames: list[FrameBody] = []
    headings: list[Heading | None] = [None]  # uncalibrated: which way a one-view body faced (engine.heatformer.turns)
    for keypoints, now in zip(data.keypoints, np.asarray(data.timestamps, np.float64), strict=True):
        previous = frames[-1] if frames and frames[-1].fused else None
        frames.append(estimate_frame(model, keypoints, *cams, runner=runner, refine=refine, previous=previous, image_size=sizes))
        if not calibrated:
            headings = settle_turns(model, frames[-1:], [keypoints], headings, float(now), sizes, runner, refine)
    if smooth and calibrated:
        frames = smooth_sequence(frames, np.asarray(data.timestamps, np.float64), model.body)
    return results_arrays(frames, data.timestamps, data.camera_names)
