"""Temporal filtering of fused bodies: a filter on the mid-hip and, in the tangent space, on every
joint rotation; a per-person shape that settles and then holds; an offline smoother.

Live (:class:`BodyFilter`): a constant-velocity Kalman filter, which follows a steady motion
without lag (its velocity carries the estimate forward) and averages noise over a short window.
Offline (:func:`smooth_sequence`): One-Euro (Casiez et al. 2012), an exponential smoother whose
cutoff grows with the filtered speed, ``cutoff = min_cutoff + beta * |speed|``, run forwards and
backwards so that its lag cancels. On the real demo a causal One-Euro filter that halves the
jitter lags by enough to add 3-5 px of held-out error; the Kalman filter adds under 1 px.
Rotations are never averaged component-wise: each step moves the filtered rotation along the
rotation vector of ``R_filtered^T R_new``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from core.geometry import matrix_to_rodrigues, rodrigues_to_matrix, rotation_angle_deg
from core.types import FrameBody
from engine.body import BodyModel
from engine.heatformer.inputs import L_HIP, R_HIP

CONFIDENT = 0.5  # a keypoint at least this confident counts towards the shape's weight


@dataclass(frozen=True)
class OneEuroParams:
    """Cutoffs in Hz; ``beta`` in Hz per unit of speed (per m/s or per rad/s)."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0


# The offline smoother's One-Euro filters (run both ways). Tuned at 60 fps (tests/test_temporal.py),
# one way: a joint turning at 2 (3) rad/s trails by 0.73 (0.50)
# frame, the mid-hip moving at 1.5 (3) m/s by 0.73 (0.38) frame; the mean |second difference| of
# 2 degree rotation noise drops 7.8x still and 3.1x at 1 rad/s, of 1 cm position noise 9.3x still
# and 2.7x at 1 m/s. From rest the lag peaks at about 1.7 frames before the speed estimate catches up.
ROTATION = OneEuroParams(min_cutoff=1.0, beta=6.0)  # joint rotations (speed in rad/s)
POSITION = OneEuroParams(min_cutoff=1.0, beta=8.0)  # the mid-hip (speed in m/s)


def smoothing_factor(dt: float, cutoff: np.ndarray | float) -> np.ndarray:
    """The exponential smoother's weight of a new sample ``dt`` seconds after the last."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """One-Euro filter for vectors ``[..., D]`` (the speed is the norm over the last axis, so each
    leading index gets its own cutoff). ``__call__(x, t)`` returns the filtered value."""

    def __init__(self, params: OneEuroParams) -> None:
        self.params = params
        self.reset()

    def reset(self) -> None:
        self.value: np.ndarray | None = None
        self.raw: np.ndarray | None = None
        self.speed: np.ndarray | None = None
        self.t = -math.inf

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        dt = t - self.t
        value, raw, speed = self.value, self.raw, self.speed
        if value is None or raw is None or speed is None or dt <= 0:
            return self._start(x, t)
        p = self.params
        new_speed = self._delta(raw, x) / dt  # the paper's speed: from the previous raw sample
        smoothed: np.ndarray = speed + smoothing_factor(dt, p.d_cutoff) * (new_speed - speed)
        cutoff = p.min_cutoff + p.beta * np.linalg.norm(smoothed, axis=-1)
        moved = self._move(value, smoothing_factor(dt, cutoff)[..., None] * self._delta(value, x))
        self.value, self.raw, self.speed, self.t = moved, x, smoothed, t
        return moved.copy()

    def _start(self, x: np.ndarray, t: float) -> np.ndarray:
        self.value, self.raw, self.t = x.copy(), x.copy(), t
        self.speed = np.zeros(self._delta(x, x).shape)
        return x.copy()

    @staticmethod
    def _delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return b - a

    @staticmethod
    def _move(a: np.ndarray, step: np.ndarray) -> np.ndarray:
        return a + step


class RotationOneEuro(OneEuro):
    """One-Euro filter for rotation matrices ``[..., 3, 3]`` in the tangent space: increments are
    the rotation vectors of ``R_a^T R_b`` and a step is ``R_a exp(step)``, so the output stays a
    rotation (re-orthonormalized every step)."""

    @staticmethod
    def _delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return matrix_to_rodrigues(np.swapaxes(a, -1, -2) @ b)

    @staticmethod
    def _move(a: np.ndarray, step: np.ndarray) -> np.ndarray:
        return nearest_rotation(a @ rodrigues_to_matrix(step))


@dataclass(frozen=True)
class KalmanParams:
    """A constant-velocity Kalman filter's noises: ``measurement`` the standard deviation of one
    sample (m or rad), ``acceleration`` the spectral density's square root of the white
    acceleration that drives the motion (m/s^2/sqrt(Hz) or rad/s^2/sqrt(Hz))."""

    measurement: float
    acceleration: float


# The live filter (BodyFilter's default). Chosen on the real demo (python -m engine.evaluate
# --benchmark pose2sim, 60 fps, a 15-point grid of these noises) as the point that at least halves
# the refined body's jitter (to 0.47 of it) while the held-out reprojection error grows by at most
# 1 px (0.64 px with run 21's weights and mirrored views checked, 0.79 before, 0.97 with run 20's;
# the One-Euro defaults above: 0.37 and 4.7 px, from their lag). On synthetic signals at 60 fps
# (tests/test_temporal.py): no lag on constant motion, jitter / 2.4 (rotations, 2 degree noise) and
# / 4.1 (position, 1 cm), and an abrupt 2 m/s stop overshoots by 3.7 cm.
LIVE_ROTATION = KalmanParams(measurement=0.03, acceleration=5.0)  # rad, rad/s^2/sqrt(Hz)
LIVE_POSITION = KalmanParams(measurement=0.02, acceleration=1.0)  # m, m/s^2/sqrt(Hz) (the mid-hip)


class KalmanCV:
    """Constant-velocity Kalman filter for vectors ``[..., D]``: every coordinate has its own
    position and velocity, all with the same noises, so one 2x2 covariance serves them all. A
    smooth motion is followed without the lag of an exponential smoother (the velocity carries
    the estimate forward). How hard it smooths depends on the two noises and the sampling
    interval: the smaller the acceleration against the measurement noise, the more samples it
    averages. ``__call__(x, t)`` returns the filtered value."""

    def __init__(self, params: KalmanParams) -> None:
        self.params = params
        self.reset()

    def reset(self) -> None:
        self.value: np.ndarray | None = None
        self.velocity: np.ndarray | None = None
        self.P = np.zeros((2, 2))
        self.t = -math.inf

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        dt = t - self.t
        if self.value is None or self.velocity is None or dt <= 0:
            return self._start(x, t)
        q, r2 = self.params.acceleration**2, self.params.measurement**2
        F = np.array([[1.0, dt], [0.0, 1.0]])
        Q = q * np.array([[dt**3 / 3.0, dt**2 / 2.0], [dt**2 / 2.0, dt]])
        P = F @ self.P @ F.T + Q
        gain = P[:, 0] / (P[0, 0] + r2)  # [position, velocity] gains
        predicted = self._move(self.value, dt * self.velocity)
        innovation = self._delta(predicted, x)
        self.value = self._move(predicted, gain[0] * innovation)
        self.velocity = self.velocity + gain[1] * innovation
        self.P = P - np.outer(gain, P[0])
        self.t = t
        return self.value.copy()

    def _start(self, x: np.ndarray, t: float) -> np.ndarray:
        self.value, self.t = x.copy(), t
        self.velocity = np.zeros(self._delta(x, x).shape)
        # a first sample is known to the measurement noise; its velocity is unknown (1 unit/s)
        self.P = np.diag([self.params.measurement**2, 1.0])
        return x.copy()

    _delta = staticmethod(OneEuro._delta)  # vectors: plain differences and steps
    _move = staticmethod(OneEuro._move)


class RotationKalmanCV(KalmanCV):
    """:class:`KalmanCV` for rotation matrices ``[..., 3, 3]`` in the tangent space: the velocity
    is an angular velocity in the rotation's own frame, a step is ``R exp(step)``."""

    _delta = staticmethod(RotationOneEuro._delta)
    _move = staticmethod(RotationOneEuro._move)


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The rotations nearest to matrices ``[..., 3, 3]`` (SVD projection onto SO(3))."""
    u, _, vt = np.linalg.svd(M)
    fix = np.ones(M.shape[:-2] + (3,))
    fix[..., -1] = np.sign(np.linalg.det(u @ vt))
    return u @ (fix[..., :, None] * vt)


class ShapeEstimate:
    """One person's betas: a confidence-weighted mean of every frame's betas for the first
    ``settle_s`` seconds, then (``settled``) an exponential average with time constant ``hold_s``,
    so the shape holds and only drifts slowly towards what the frames say."""

    def __init__(self, settle_s: float = 1.0, hold_s: float = 30.0) -> None:
        self.settle_s, self.hold_s = settle_s, hold_s
        self.reset()

    def reset(self) -> None:
        self.betas: np.ndarray | None = None
        self.settled = False
        self.t0 = self.t = 0.0
        self.weight = 0.0  # the summed weight while settling
        self.frames = 0

    def update(self, betas: np.ndarray, t: float, weight: float = 1.0) -> np.ndarray:
        """Take one frame's betas ``[B]`` seen at ``t`` with ``weight`` (e.g. confident keypoints)."""
        betas = np.asarray(betas, np.float64)
        mean: np.ndarray
        if self.betas is None:
            self.t0, self.weight, self.frames = t, max(weight, 1e-9), 1
            mean = betas.copy()
        else:
            mean = self.betas + self._rate(t, weight) * (betas - self.betas) if weight > 0 else self.betas
        self.betas, self.t = mean, t
        self.settled = self.settled or t - self.t0 >= self.settle_s
        return mean.copy()

    def _rate(self, t: float, weight: float) -> float:
        """How far a frame of ``weight`` moves the estimate: its share of the weighted mean while
        settling, then ``dt / hold_s`` scaled by its weight against the settling frames' mean."""
        if not self.settled:
            self.weight += weight
            self.frames += 1
            return weight / self.weight
        return min(1.0, max(t - self.t, 0.0) / self.hold_s * weight * self.frames / self.weight)


class MotionFilter:
    """Filters on a body's 24 local rotations ``[24, 3, 3]`` (root first) and its mid-hip ``[3]``
    (world metres): constant-velocity Kalman filters for :class:`KalmanParams` (the live default),
    One-Euro filters for :class:`OneEuroParams` (the offline smoother's)."""

    def __init__(
        self, rotation: OneEuroParams | KalmanParams = LIVE_ROTATION, position: OneEuroParams | KalmanParams = LIVE_POSITION
    ) -> None:
        self.rotations: OneEuro | KalmanCV = (
            RotationKalmanCV(rotation) if isinstance(rotation, KalmanParams) else RotationOneEuro(rotation)
        )
        self.mid_hip: OneEuro | KalmanCV = KalmanCV(position) if isinstance(position, KalmanParams) else OneEuro(position)

    def reset(self) -> None:
        self.rotations.reset()
        self.mid_hip.reset()

    def __call__(self, rotations: np.ndarray, mid_hip: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        return self.rotations(rotations, t), self.mid_hip(mid_hip, t)


SOMEONE_ELSE_REACH = 0.25  # crop-box sizes the centre of a person's box moves between two frame-sets ...
SOMEONE_ELSE_SPEED = 1.0  # ... plus this many box sizes a second (the box is 1.25 person heights: running)


def someone_else(before: np.ndarray, after: np.ndarray, dt: float) -> np.ndarray:
    """Whether a view's crop box ``after`` ``[..., 3]`` (x0, y0, size px; FrameBody.view_boxes)
    holds somebody else than ``before`` did ``dt`` seconds earlier: its centre moved further than a
    person moves (:data:`SOMEONE_ELSE_REACH` + :data:`SOMEONE_ELSE_SPEED` x ``dt`` of the larger
    box's size). In one-person mode the detector may switch to another person in a view without a
    pause; a person's own box changes size where keypoints drop out, so size is not compared. On
    the bundled demo a person's box moves at most 0.23 / 0.20 / 0.28 box sizes in 0.1 / 0.25 /
    0.5 s (each view tracked alone), and the subject's and the bystander's boxes are 0.35-0.9
    apart. False where either box is unknown (NaN)."""
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    size = np.maximum(before[..., 2], after[..., 2])
    shift = np.linalg.norm((after[..., :2] + after[..., 2:3] / 2) - (before[..., :2] + before[..., 2:3] / 2), axis=-1)
    with np.errstate(invalid="ignore"):
        return np.asarray(shift > (SOMEONE_ELSE_REACH + SOMEONE_ELSE_SPEED * max(dt, 0.0)) * size)


def body_points(body: BodyModel, betas: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joints ``[N, 24, 3]`` and mid-hips ``[N, 3]`` (the COCO hips' midpoint, as
    engine.heatformer.inference places the body) of bodies at the origin: betas ``[N, B]``,
    rotations ``[N, 24, 3, 3]``."""
    with torch.no_grad():
        out = body.joints_rotmat(torch.as_tensor(betas, dtype=torch.float32), torch.as_tensor(rotations, dtype=torch.float32))
    assert out.keypoints is not None, "the body model has no keypoint regressor"
    mid = 0.5 * (out.keypoints[:, L_HIP] + out.keypoints[:, R_HIP])
    return out.joints.double().numpy(), mid.double().numpy()


def rotations_of(frame: FrameBody) -> np.ndarray:
    """A fused frame's 24 local rotations ``[24, 3, 3]`` (orient first)."""
    assert frame.orient is not None and frame.pose is not None
    return np.concatenate([frame.orient[None], frame.pose]).astype(np.float64)


def keypoint_weight(keypoints: np.ndarray) -> float:
    """A frame's weight for the shape estimate: its confident keypoints ``[V, 17, 3]`` counted."""
    return float((np.asarray(keypoints)[..., 2] >= CONFIDENT).sum())


def with_body(frame: FrameBody, body: BodyModel, betas: np.ndarray, rotations: np.ndarray, mid_hip: np.ndarray) -> FrameBody:
    """``frame`` with its fused body replaced: ``betas``, ``rotations`` ``[24, 3, 3]``, and the
    translation that puts the body's mid-hip on ``mid_hip``; joints recomputed to match."""
    joints, mid = body_points(body, betas[None], rotations[None])
    transl = mid_hip - mid[0]
    return replace(frame, orient=rotations[0], pose=rotations[1:], betas=betas, transl=transl, joints=joints[0] + transl)


@dataclass(frozen=True)
class FilterStep:
    """:meth:`BodyFilter.begin`'s half of an update: the frame and its time, its own rotations
    ``[24, 3, 3]`` and betas, and the held betas and filtered rotations."""

    frame: FrameBody
    t: float
    raw: np.ndarray
    raw_betas: np.ndarray
    betas: np.ndarray
    rotations: np.ndarray


class BodyFilter:
    """Filters one person's fused bodies over time (one object per person/track).

    ``update(frame, t)`` returns a new :class:`FrameBody` with filtered orientation, pose and
    mid-hip, the person's held betas, and translation and joints recomputed from them. Frames
    without a fused body pass through unchanged. The motion filters restart after ``gap_s``
    without a fused body and when the pelvis jumps by more than ``jump_m`` (the shape holds: one
    object follows one person); everything restarts when time does not move forward (a rewound
    replay, or a new source)."""

    def __init__(
        self,
        body: BodyModel,
        rotation: OneEuroParams | KalmanParams = LIVE_ROTATION,
        position: OneEuroParams | KalmanParams = LIVE_POSITION,
        gap_s: float = 0.5,
        jump_m: float = 1.0,
        shape: ShapeEstimate | None = None,
    ) -> None:
        self.body = body
        self.motion = MotionFilter(rotation, position)
        self.shape = shape if shape is not None else ShapeEstimate()
        self.gap_s, self.jump_m = gap_s, jump_m
        self.last_t: float | None = None
        self.last_pelvis: np.ndarray | None = None
        self.resets = 0  # how many times the filter restarted

    def reset(self) -> None:
        """Forget the person: motion and shape."""
        self.motion.reset()
        self.shape.reset()
        self.last_t = self.last_pelvis = None

    def update(self, frame: FrameBody, t: float, weight: float | None = None) -> FrameBody:
        """The filtered frame seen at ``t`` (seconds). ``weight``: the frame's confidence for the
        shape (default: the number of views used)."""
        step = self.begin(frame, t, weight)
        if step is None:
            return frame
        joints, mids = body_points(self.body, np.stack([step.raw_betas, step.betas]), np.stack([step.raw, step.rotations]))
        return self.complete(step, mids[0], joints[1], mids[1])

    def begin(self, frame: FrameBody, t: float, weight: float | None = None) -> FilterStep | None:
        """:meth:`update` in two halves, so that the bodies of several people can be posed in one
        call between them: the held shape and the filtered rotations (None: not a fused frame, which
        passes through unchanged). Then :meth:`complete` with the bodies posed at the origin."""
        if not frame.fused:
            return None
        assert frame.betas is not None and frame.transl is not None and frame.joints is not None
        self._restart_if_needed(t, frame.joints[0])
        raw = rotations_of(frame)
        betas = self.shape.update(frame.betas, t, float(frame.used.sum()) if weight is None else weight)
        return FilterStep(frame, t, raw, np.asarray(frame.betas, np.float64), betas, self.motion.rotations(raw, t))

    def complete(self, step: FilterStep, raw_mid_hip: np.ndarray, joints: np.ndarray, mid_hip: np.ndarray) -> FrameBody:
        """The filtered frame of :meth:`begin`'s ``step``, from the mid-hip of the frame's own body
        (``raw_betas``, ``raw``) and the joints ``[24, 3]`` and mid-hip of the filtered body
        (``betas``, ``rotations``), both at the origin (:func:`body_points`)."""
        frame = step.frame
        assert frame.transl is not None
        transl = self.motion.mid_hip(raw_mid_hip + frame.transl, step.t) - mid_hip  # raw: the triangulated mid-hip
        self.last_t, self.last_pelvis = step.t, joints[0] + transl
        rotations = step.rotations
        return replace(frame, orient=rotations[0], pose=rotations[1:], betas=step.betas, transl=transl, joints=joints + transl)

    def _restart_if_needed(self, t: float, pelvis: np.ndarray) -> None:
        if self.last_t is None or self.last_pelvis is None:
            return
        if t <= self.last_t:  # time went back (a rewound replay) or stood still
            self.reset()
            self.resets += 1
        elif t - self.last_t > self.gap_s or float(np.linalg.norm(pelvis - self.last_pelvis)) > self.jump_m:
            self.motion.reset()  # a gap, a wrong triangulation or someone else: the motion restarts here
            self.resets += 1


SWITCH_CONFIRM_S = 0.25  # somebody else in every view for this long: the person's held shape is dropped


@dataclass
class _ViewTrack:
    """One view of a :class:`ViewFilter`: its motion filter, when and where (crop box) it last saw
    a body, and, while it sees somebody other than the held shape's person, since when (``since``)
    and where that person was last (``home``, at ``home_t``)."""

    kalman: RotationKalmanCV
    t: float
    box: np.ndarray
    since: float | None = None
    home: np.ndarray | None = None
    home_t: float = 0.0

    def occupant(self, box: np.ndarray, t: float) -> tuple[bool, float | None, np.ndarray | None, float]:
        """Whether ``box`` at ``t`` holds another body than the last one, and the view's ``since``,
        ``home`` and ``home_t`` after it: back at the held shape's person's place ends a switch."""
        if not someone_else(self.box, box, t - self.t):
            return False, self.since, self.home, self.home_t
        if self.home is not None and not someone_else(self.home, box, t - self.home_t):
            return True, None, None, 0.0  # the held shape's person again (a moment's switch)
        if self.since is None:
            return True, t, self.box, self.t  # left the held shape's person
        return True, t, self.home, self.home_t  # yet another body


class ViewFilter:
    """Filters one person's uncalibrated view bodies over time (one object per person/track): in
    each view, its 24 rotations (the body's orientation in that camera, then the pose) through the
    live Kalman filter (:data:`LIVE_ROTATION`) and, given the ``body`` model, one shape held for the
    person (:class:`ShapeEstimate`, from the views' betas). A view's weak-perspective scale was
    fitted with that frame's betas: with the held shape, the scale is changed by the ratio of the
    two bodies' sizes (their joints' spread about the mid-hip), which keeps the body's size and the
    mid-hip's pixel in the view (seen through a lens too: placement and body scale together).
    Without ``body`` the betas stay as fitted. A view's filter restarts after ``gap_s`` without a
    body there, when the body's orientation there jumps by more than ``jump_deg`` (a detection
    with its sides exchanged for over a second: engine.heatformer.turns), and when its crop box
    holds :func:`someone_else`. Where every view that saw the person now sees somebody else, the
    frames' own betas are shown and the held shape is left alone, and after
    :data:`SWITCH_CONFIRM_S` it is dropped; a view back at the person's place first ends that (a
    moment's switch). Everything restarts when time does not move forward. On the real demo, each
    camera alone at 60 fps (kept facing; engine.realbench.one_view): the mean acceleration of the
    joints about the root drops to 0.52-0.55 of the fitted bodies' (cam02, with its few frame-sets
    left turned round, 0.41), PA-MPJPE against the four calibrated views' body moves by -0.2 to
    +0.5 mm and the median distance to the view's detections grows by 0.1-0.5 px (cam02 1.6).
    Without the held shape: 0.50-0.66 of the jitter, -0.2 to +0.6 px."""

    def __init__(
        self, body: BodyModel | None = None, rotation: KalmanParams = LIVE_ROTATION, gap_s: float = 0.5, jump_deg: float = 90.0
    ) -> None:
        self.body = body
        self.rotation, self.gap_s, self.jump_deg = rotation, gap_s, jump_deg
        self.shape = ShapeEstimate()
        self.views: dict[int, _ViewTrack] = {}
        self.last_t: float | None = None

    def reset(self) -> None:
        """Forget the person: every view's motion and the shape."""
        self.views.clear()
        self.shape.reset()
        self.last_t = None

    def update(self, frame: FrameBody, t: float, weight: float | None = None) -> FrameBody:
        """The frame seen at ``t`` (seconds) with its view bodies filtered; ``weight``: the frame's
        confidence for the shape (default: the number of views used). A fused world body, or a
        frame without bodies, passes through unchanged (fused bodies have :class:`BodyFilter`)."""
        if frame.fused or not frame.valid:
            return frame
        if self.last_t is not None and t <= self.last_t:  # a rewound replay, or a new source
            self.reset()
        self.last_t = t
        use = [int(v) for v in np.flatnonzero(frame.used)]
        orient, pose = frame.view_orient.copy(), frame.view_pose.copy()
        voters = []  # the views that saw the body within the gap: the switch is theirs to tell
        for v in use:
            raw = np.concatenate([frame.view_orient[v][None], frame.view_pose[v]]).astype(np.float64)
            box = np.array(frame.view_boxes[v], np.float64)
            known = self.views.get(v)
            known = known if known is not None and t - known.t <= self.gap_s else None
            other, since, home, home_t = known.occupant(box, t) if known is not None else (True, None, None, 0.0)
            kalman = known.kalman if known is not None and not other else None
            if kalman is None or kalman.value is None or rotation_angle_deg(kalman.value[0], raw[0]) > self.jump_deg:
                kalman = RotationKalmanCV(self.rotation)
            rotations = kalman(raw, t)
            self.views[v] = _ViewTrack(kalman, t, box, since, home, home_t)
            if known is not None:
                voters.append(v)
            orient[v], pose[v] = rotations[0], rotations[1:]
        filtered = replace(frame, view_orient=orient, view_pose=pose)
        starts = [self.views[v].since for v in voters]
        elsewhere = bool(starts) and all(s is not None for s in starts)  # somebody else in every view that saw the person
        if elsewhere and t - max(s for s in starts if s is not None) >= SWITCH_CONFIRM_S:
            self.shape.reset()  # not this person's shape: the new one's from here on
            for v in use:
                self.views[v].since, self.views[v].home = None, None
            elsewhere = False
        if self.body is None:
            return filtered
        fitted = np.asarray(frame.view_betas[use], np.float64)
        if elsewhere:  # their own betas meanwhile; the person's shape waits for their return
            held = fitted.mean(axis=0)
        else:
            held = self.shape.update(fitted.mean(axis=0), t, float(len(use)) if weight is None else weight)
        rotations = np.concatenate([orient[use][:, None], pose[use]], axis=1)
        both = body_points(self.body, np.concatenate([fitted, np.tile(held, (len(use), 1))]), np.concatenate([rotations] * 2))
        joints, mids = both[0][:, :24], both[1]
        spread = np.sqrt((((joints - mids[:, None]) ** 2).sum(-1)).mean(-1))  # [2 x views]: fitted, then held
        cam, betas = frame.view_cam.copy(), frame.view_betas.copy()
        cam[use, 0] += np.log(spread[: len(use)] / spread[len(use) :])  # the held body drawn the size the fitted one was
        betas[use] = held
        return replace(filtered, view_cam=cam, view_betas=betas)


def smooth_sequence(
    frames: list[FrameBody],
    timestamps: np.ndarray,
    body: BodyModel,
    rotation: OneEuroParams = ROTATION,
    position: OneEuroParams = POSITION,
    gap_s: float = 0.5,
    jump_m: float = 1.0,
    weights: np.ndarray | None = None,
) -> list[FrameBody]:
    """A whole recorded sequence smoothed offline: the One-Euro filter run forward and backward
    over every segment (split at gaps over ``gap_s`` and mid-hip jumps over ``jump_m``) and the two
    averaged (in the tangent space for rotations), which cancels the filter's lag; each segment
    gets one shape, the ``weights``-weighted mean of its betas (default: views used). Frames
    without a fused body are returned unchanged."""
    timestamps = np.asarray(timestamps, np.float64)
    if len(timestamps) != len(frames):
        raise ValueError(f"smooth_sequence: {len(frames)} frames but {len(timestamps)} timestamps")
    out = list(frames)
    fused = [i for i, f in enumerate(frames) if f.fused]
    if not fused:
        return out
    rotations = np.stack([rotations_of(frames[i]) for i in fused])
    betas = np.stack([np.asarray(frames[i].betas, np.float64) for i in fused])
    _, mids = body_points(body, betas, rotations)
    mids += np.stack([np.asarray(frames[i].transl, np.float64) for i in fused])
    w = np.array([frames[i].used.sum() if weights is None else weights[i] for i in fused], np.float64)
    for seg in segments(timestamps[fused], mids, gap_s, jump_m):
        rot, mid = _forward_backward(rotations[seg], mids[seg], timestamps[fused][seg], rotation, position)
        shape = (w[seg, None] * betas[seg]).sum(0) / max(w[seg].sum(), 1e-12)
        for k, j in enumerate(seg):
            out[fused[j]] = with_body(frames[fused[j]], body, shape, rot[k], mid[k])
    return out


def segments(times: np.ndarray, mids: np.ndarray, gap_s: float, jump_m: float) -> list[np.ndarray]:
    """Index runs ``[n]`` with no time gap over ``gap_s`` (or backwards) and no jump over ``jump_m``."""
    dt = np.diff(times)
    jump = np.linalg.norm(np.diff(mids, axis=0), axis=-1)
    breaks = np.flatnonzero((dt > gap_s) | (dt <= 0) | (jump > jump_m)) + 1
    return np.split(np.arange(len(times)), breaks)


def _forward_backward(
    rotations: np.ndarray, mids: np.ndarray, times: np.ndarray, rotation: OneEuroParams, position: OneEuroParams
) -> tuple[np.ndarray, np.ndarray]:
    """The forward and the time-reversed filter passes averaged: rotations ``[n, 24, 3, 3]``,
    mid-hips ``[n, 3]``."""
    forward, backward = MotionFilter(rotation, position), MotionFilter(rotation, position)
    f = [forward(r, m, t) for r, m, t in zip(rotations, mids, times, strict=True)]
    b = [backward(r, m, -t) for r, m, t in zip(rotations[::-1], mids[::-1], times[::-1], strict=True)][::-1]
    rf, mf = np.stack([x[0] for x in f]), np.stack([x[1] for x in f])
    rb, mb = np.stack([x[0] for x in b]), np.stack([x[1] for x in b])
    half = 0.5 * matrix_to_rodrigues(np.swapaxes(rf, -1, -2) @ rb)
    return nearest_rotation(rf @ rodrigues_to_matrix(half)), 0.5 * (mf + mb)
