"""Refinement after HeatFormer: a few damped Gauss-Newton (Levenberg-Marquardt) steps that fit
the body's pose, shape and placement to every view's 2D keypoints, pulled towards HeatFormer's
answer (the prior) and, when there is one, towards the previous frame-set's body.

HeatFormer proposes; the evidence decides. The network's answer is a good start but its arms are
loose on real detections; the fit moves each joint only as far as the keypoints ask, weighed by
their confidence and robust to outliers (Geman-McClure, by iteratively reweighted least squares).
Calibrated views only (:func:`refine_world`): one world body, the keypoints of every view
projected with the cameras' K, R, t (the observations are undistorted first, so distortion is
accounted for).

The unknowns are, per body, a rotation vector for each of the 24 joints applied on the right of
the current local rotation (``R <- R exp(d)``), the betas and the translation. The Jacobian is
analytic for the rotations: turning joint j by ``d`` turns everything below it about the joint
by ``G_j d`` (G_j its world rotation), so a keypoint skinned to those bones moves by
``(G_j d) x (its part below j - j's position)``; the keypoints are affine in the betas, so one
unit step per beta gives their columns exactly. Each iteration is one batched call of the body
model for every body and its ``B`` shape steps, so several people cost one call, on the model's
device. A body with pose-corrective blend shapes (an SMPL file; the bundled body has none) takes
forward differences of every parameter instead (``B + 75`` copies per body).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import math
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from core.types import COCO17_MIRROR as MIRROR
from engine.body.lbs import forward_kinematics
from engine.body.model import KEYPOINT_PARTS, BodyModel, BodyOutput

NUM_JOINTS = 24
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineSettings:
    """How the fit weighs the evidence against the prior (pixels, radians)."""

    iterations: int = 4
    # Image errors are measured in units of the person's size in each view (the larger side of the
    # box around the confident keypoints), so that a 4K camera and a 640x480 one weigh the same.
    sigma: float = 0.033  # a confident keypoint's expected error (the data term's unit)
    robust: float = 0.05  # errors well beyond this count less and less (Geman-McClure scale) ...
    robust_start: float = 0.13  # ... from this scale at the first iteration down to ``robust`` at the last
    min_confidence: float = 0.3  # keypoints below this are left out
    prior_rot: float = 0.5  # rad: how far a joint may turn from HeatFormer's answer at unit cost
    prior_root_rot: float = 1.0  # rad: the same for the body's orientation (the keypoints fix it well)
    prior_betas: float = 2.0  # shape coefficients (unit variance by construction)
    # rad: one uncalibrated view sees nothing of depth, so a fit that turns a limb in depth does it
    # only to explain the keypoints' noise (a forearm drawn 3 % short is a forearm tilted 14 degrees
    # out of the image). With one view, turns about the image's axes cost as if this far (they tilt
    # the bones across the view in depth, or twist a bone that lies along the axis, which the
    # keypoints show little of either); turns about the line of sight keep ``prior_rot``. On
    # validation draws (seeds outside the benchmark's, 128 samples, 3 draws x 0 / 15 / 30 % missing)
    # 0.25 lowered PA-MPJPE by 0.6-3.0 mm in all nine (0.35: 0.6-2.1; isotropic prior_rot 0.25: 0.8-0.9
    # on the two clean draws tried); the held-out clip's poses, whose depths HeatFormer gets wrong,
    # lost a little (benchmark 100.1 -> 100.5 mm).
    prior_depth_rot: float = 0.25
    # rad: pull towards the previous frame-set's body, when given. Weak: HeatFormer's answers on real
    # footage change by 0.02 rad a frame at 60 fps without it, so it smooths little there, and at
    # 0.15 it held weakly seen joints to old answers: on the demo's held-out views (engine.realbench)
    # it cost up to 2.3 px at the 4 sets/s the app runs (every 15th frame: cam02 / cam04 median
    # 21.24 / 22.92 px against 19.19 / 20.45 at 0.6 and 19.07 / 20.59 without) and 0.5-0.8 px at
    # 60 fps; without it the filtered bone lengths spread 0.506 cm, at 0.6 0.492.
    temporal_rot: float = 0.6
    damping: float = 1e-2  # initial Levenberg-Marquardt damping (relative to the diagonal)
    # Mirrored views (:func:`settle_mirrored`): a view whose detection has left and right exchanged
    # (BlazePose does it to people seen from behind). A view is in doubt when its keypoints,
    # mirrored, fit the fitted body better than as they are (``mirror_doubt``; the other views
    # outvoted it) or, where the body has only two views (which cannot outvote each other), less
    # than ``mirror_doubt_two`` times worse. The body is then fitted again with the view mirrored
    # (with two views: each view in turn), and taken where that fit's robust cost is below
    # ``mirror_gain`` times the plain fit's.
    mirror_check: bool = True
    mirror_doubt: float = 1.0
    mirror_doubt_two: float = 3.0
    mirror_gain: float = 0.7
    mirror_distinct: float = 0.05  # views whose mirrored keypoints move less than this (person-size units) are not tried


DEFAULT = RefineSettings()


def exp_so3(v: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` from rotation vectors ``[..., 3]``, smooth (and with
    finite derivatives) at zero."""
    theta2 = (v * v).sum(-1, keepdim=True)[..., None]
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / (theta * theta))
    k = skew(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def skew(v: Tensor) -> Tensor:
    """Cross-product matrices ``[..., 3, 3]`` of vectors ``[..., 3]`` (``skew(v) @ u = v x u``)."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)


def turn(R: Tensor) -> Tensor:
    """A smooth measure of how far rotations ``[..., 3, 3]`` turn: sin(angle) x axis ``[..., 3]``
    (the rotation vector for small angles; defined and differentiable at the identity)."""
    skewed = R - R.transpose(-1, -2)  # the entries (2, 1), (0, 2), (1, 0) of it, picked in one op (the fit runs this often)
    return 0.5 * skewed[..., [2, 0, 1], [1, 2, 0]]


def robust_scales(settings: RefineSettings) -> list[float]:
    """The Geman-McClure scale of each iteration: shrinking geometrically, so that a start far from
    the keypoints (HeatFormer's arms on real data) is pulled in before far errors count as outliers."""
    n = max(settings.iterations - 1, 1)
    ratio = settings.robust / settings.robust_start
    return [settings.robust_start * ratio ** (i / n) for i in range(settings.iterations)]


def person_size(pixels: Tensor, conf: Tensor, settings: RefineSettings) -> Tensor:
    """The larger side of the box around each view's confident keypoints ``[..., V]`` (pixels;
    at least 1), from pixels ``[..., V, 17, 2]`` and confidences ``[..., V, 17]``."""
    seen = (conf >= settings.min_confidence)[..., None]
    big = torch.finfo(pixels.dtype).max
    lo = torch.where(seen, pixels, torch.full_like(pixels, big)).amin(dim=-2)
    hi = torch.where(seen, pixels, torch.full_like(pixels, -big)).amax(dim=-2)
    size = (hi - lo).amax(dim=-1)
    return torch.where(seen.any(dim=-2)[..., 0], size, torch.ones_like(size)).clamp_min(1.0)


def _robust_weights(error: Tensor, conf: Tensor, scale: float, settings: RefineSettings) -> Tensor:
    """Per keypoint: confidence x Geman-McClure IRLS weight, 0 below the minimum confidence;
    ``error`` in units of the person's size, like ``scale``."""
    c2 = scale**2
    robust = (c2 / (c2 + error**2)) ** 2
    return torch.where(conf >= settings.min_confidence, conf, torch.zeros_like(conf)) * robust


def _nudged(rot: Tensor, betas: Tensor, second: Tensor, step: float) -> tuple[Tensor, Tensor, Tensor]:
    """Each body followed by its P nudged copies (one parameter moved by ``step`` each):
    rotations ``[N*(P+1), R, 3, 3]``, betas and the third block (translation or cameras)."""
    R, B, C = rot.shape[1], betas.shape[-1], second.shape[-1]
    P = 3 * R + B + C
    eye = torch.eye(P, dtype=rot.dtype, device=rot.device) * step
    deltas = torch.cat([torch.zeros(1, P, dtype=rot.dtype, device=rot.device), eye])  # [P+1, P]
    turns = _turns(P, R, step, rot.dtype, rot.device)  # [P+1, R, 3, 3]
    rots = (rot[:, None] @ turns[None]).reshape(-1, R, 3, 3)
    b = (betas[:, None] + deltas[None, :, 3 * R : 3 * R + B]).reshape(-1, B)
    c = (second[:, None] + deltas[None, :, -C:]).reshape(-1, C)
    return rots, b, c


@functools.lru_cache(maxsize=8)
def _turns(params: int, rotations: int, step: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The nudged copies' turns: identity for the base, ``exp(step e_k)`` for the copy that
    nudges rotation parameter k, identity for the others (constant, so computed once)."""
    deltas = torch.zeros(params + 1, 3 * rotations, dtype=dtype, device=device)
    deltas[1 : 3 * rotations + 1] = torch.eye(3 * rotations, dtype=dtype, device=device) * step
    return exp_so3(deltas.reshape(params + 1, rotations, 3))


def _step(rot: Tensor, betas: Tensor, second: Tensor, delta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    B, r = betas.shape[-1], 3 * rot.shape[1]
    turned = rot @ exp_so3(delta[:, :r].reshape(-1, rot.shape[1], 3))
    return turned, betas + delta[:, r : r + B], second + delta[:, r + B :]


def _levenberg_marquardt(
    problem: _WorldFit | _ViewFit, rot: Tensor, betas: Tensor, second: Tensor, settings: RefineSettings
) -> Seen:
    """Batched Levenberg-Marquardt with one call of the body model per iteration: the state each
    iteration starts from is linearized there, so its cost comes for free; a body whose cost rose
    goes back to its last state and reuses that state's Jacobian with more damping (no new call).
    Returns the state and its keypoints as the problem sees them (``problem.predict``)."""
    N = rot.shape[0]
    mu = torch.full((N,), settings.damping, dtype=rot.dtype, device=rot.device)
    state = (rot, betas, second)
    last: tuple[Tensor, Tensor, Tensor] | None = None
    JtJ: Tensor | None = None
    g: Tensor | None = None
    cost: Tensor | None = None
    w: Tensor | None = None
    seen: Tensor | None = None  # the keypoints of the state kept
    for scale in robust_scales(settings):
        base, normal = problem.linearize(*state)
        if w is None or cost is None or seen is None:
            better = torch.ones(N, dtype=torch.bool, device=rot.device)
            w = problem.weights(base, scale)
            seen = base
        else:  # the same robust weights as the stored cost, so that the costs compare
            now = problem.residual(base, state[0], state[1], w)
            better = (now * now).sum(-1) < cost
            assert last is not None
            state = _where(better, state, last)
            seen = torch.where(better[:, None, None, None], base, seen)
            w = torch.where(better[:, None, None], problem.weights(base, scale), w)  # they follow the accepted state
        r_new = problem.residual(base, state[0], state[1], w)
        JtJ_new, g_new = normal(w, r_new)
        JtJ = JtJ_new if JtJ is None else torch.where(better[:, None, None], JtJ_new, JtJ)
        g = g_new if g is None else torch.where(better[:, None], g_new, g)
        cost_new = (r_new * r_new).sum(-1)
        cost = cost_new if cost is None else torch.where(better, cost_new, cost)
        mu = torch.where(better, mu / 3.0, mu * 4.0).clamp(1e-6, 1e4)
        H = JtJ + torch.diag_embed(mu[:, None] * torch.diagonal(JtJ, dim1=1, dim2=2) + 1e-9)
        last, state = state, _step(*state, -torch.linalg.solve(H, g))
    assert last is not None and cost is not None and w is not None and seen is not None
    predicted = problem.predict(*state)
    final = problem.residual(predicted, state[0], state[1], w)
    keep = (final * final).sum(-1) < cost
    return _where(keep, state, last), torch.where(keep[:, None, None, None], predicted, seen)


def _where(keep: Tensor, new: tuple[Tensor, Tensor, Tensor], old: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    return (torch.where(keep[:, None, None, None], new[0], old[0]), torch.where(keep[:, None], new[1], old[1]),
            torch.where(keep[:, None], new[2], old[2]))  # fmt: skip


def refine_world(
    body: BodyModel,
    rotations: Tensor,
    betas: Tensor,
    transl: Tensor,
    pixels: Tensor,
    conf: Tensor,
    K: Tensor,
    R: Tensor,
    t: Tensor,
    previous: Tensor | None = None,
    settings: RefineSettings = DEFAULT,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fit N world bodies to their views' keypoints.

    ``body``: the body model; the fit runs in its precision (see :func:`fit_body`). rotations
    ``[N, 24, 3, 3]`` (local, root first; HeatFormer's answer is the prior), betas ``[N, B]``, transl
    ``[N, 3]``; pixels ``[N, V, 17, 2]`` undistorted, conf ``[N, V, 17]``; K, R ``[N, V, 3, 3]``, t
    ``[N, V, 3]`` (world to camera). ``previous``: the last frame-set's rotations ``[N, 24, 3, 3]``
    (a temporal pull on the joints). Returns the refined rotations, betas and translation (float64)."""
    return refine_world_seen(body, rotations, betas, transl, pixels, conf, K, R, t, previous, settings)[0]


def refine_world_seen(body: BodyModel, rotations: Tensor, betas: Tensor, transl: Tensor, pixels: Tensor, conf: Tensor, K: Tensor,
                  R: Tensor, t: Tensor, previous: Tensor | None = None, settings: RefineSettings = DEFAULT) -> Seen:  # fmt: skip
    """:func:`refine_world`, and the refined bodies' keypoints in their views ``[N, V, 17, 2]``
    (pixels, in the fit's precision), as the fit computed them for its last check."""
    args = [_as(body, a) for a in (rotations, betas, transl, pixels, conf, K, R, t)] + (
        [] if previous is None else [_as(body, previous)]
    )
    fitted, seen = _run(_fit_world, body, settings, args)
    return _float64(fitted), seen


def _pinhole(kp: Tensor, K: Tensor, R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """World keypoints ``[M, 17, 3]`` seen by each body's cameras (K, R ``[M, V, 3, 3]``, t
    ``[M, V, 3]``): pixels ``[M, V, 17, 2]``, and the points in each camera's frame."""
    cam = torch.einsum("mvij,mkj->mvki", R, kp) + t[:, :, None]
    uvw = torch.einsum("mvij,mvkj->mvki", K, cam)
    return uvw[..., :2] / uvw[..., 2:3].clamp_min(1e-3), cam


def _costs(predicted: Tensor, pixels: Tensor, conf: Tensor, settings: RefineSettings) -> tuple[Tensor, Tensor]:
    """Per view ``[N, V]``: the confidence-weighted sum of each keypoint's robust error (0 for a
    perfect fit, at most 1 per keypoint), and the sum of the weights."""
    error = (predicted - pixels).norm(dim=-1) / person_size(pixels, conf, settings)[..., None]
    rho = error**2 / (error**2 + settings.robust**2)
    weight = torch.where(conf >= settings.min_confidence, conf, torch.zeros_like(conf))
    return (rho * weight).sum(-1).double(), weight.sum(-1).double()


def mirror_distance(pixels: Tensor, conf: Tensor, settings: RefineSettings = DEFAULT) -> Tensor:
    """How far each view's keypoints move when left and right are exchanged ``[..., V]``: the mean
    over keypoints seen on both sides, in units of the person's size (about 0.1-0.2 for a person
    seen from the front or back, near 0 from the side; 0 where no pair is seen)."""
    seen = (conf >= settings.min_confidence) & (conf[..., MIRROR] >= settings.min_confidence)
    move = (pixels - pixels[..., MIRROR, :]).norm(dim=-1) / person_size(pixels, conf, settings)[..., None]
    return torch.where(seen, move, torch.zeros_like(move)).sum(-1) / seen.sum(-1).clamp_min(1)


def settle_mirrored(
    body: BodyModel,
    fitted: Seen,
    pixels: Tensor,
    conf: Tensor,
    K: Tensor,
    R: Tensor,
    t: Tensor,
    previous: Tensor | None = None,
    settings: RefineSettings = DEFAULT,
) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
    """World bodies fitted by :func:`refine_world_seen` (``fitted``: what it returned, the bodies'
    rotations, betas, translation and their keypoints in the views; the other arguments as given
    to it), checked for views whose detection has left and right exchanged. Returns the bodies
    (fitted again where a view is taken mirrored) and which views were ``[N, V]`` (bool).

    A detector that keys on the face (BlazePose) exchanges the sides of someone seen from behind,
    and any detector sometimes does. With three or more views the others outvote such a view, and
    its keypoints mirrored fit the body better than as they are: that view is in doubt. With two
    they cannot, and the fit settles on a body between the two labellings that neither fits
    clearly: a view whose mirror image fits less than ``settings.mirror_doubt_two`` times worse
    puts both in doubt. The body model decides: its mirror image is no body (knees bending
    backwards, the face on the back of the head), so only the right labelling fits well. The body
    is fitted again with each view in doubt mirrored (of those that mirroring moves), from the
    fitted body and pulled towards it, all in one batched call; the best is taken where its cost
    (each keypoint's robust error, Geman-McClure at ``settings.robust`` in units of the person's
    size, weighed by its confidence and averaged over all views) is below ``settings.mirror_gain``
    times the plain fit's. One view per body is taken mirrored at most (two mirrored views among
    four would need both exchanged in one try).
    On the synthetic benchmark's two calibrated views (held-out poses, 4 % of views mirrored by its
    detector noise) this took all 9 mirrored views of 128 frame-sets and no other, and the refined
    body's MPJPE went from 40.9 to 37.7 mm."""

    def refit(rows: Tensor, f: Fitted, px: Tensor, cf: Tensor) -> Seen:
        return refine_world_seen(
            body, *f, px, cf, K[rows], R[rows], t[rows], None if previous is None else previous[rows], settings
        )

    return _settle(fitted, _as(body, pixels), _as(body, conf), refit, settings)


def settle_mirrored_views(
    body: BodyModel,
    fitted: Seen,
    crop_xy: Tensor,
    conf: Tensor,
    lens: Tensor,
    settings: RefineSettings = DEFAULT,
) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
    """:func:`settle_mirrored` for uncalibrated views fitted by :func:`refine_views_seen`
    (``fitted``: what it returned, rotations ``[N, V, 24, 3, 3]``, betas, cam and the keypoints in
    crop units; the other arguments as given to it). The views
    share one pose there, so a mirrored view pulls it as in a calibrated room; but each view turns
    the body its own way, so a mirrored view among three or more can turn it round instead of
    being outvoted, and is rarely found (synthetic benchmark, 4 views: none of 15; 2 views: 6 of
    9, MPJPE 59.1 -> 54.3 mm)."""

    def refit(rows: Tensor, f: Fitted, px: Tensor, cf: Tensor) -> Seen:
        return refine_views_seen(body, *f, px, cf, lens[rows], settings)

    return _settle(fitted, _as(body, crop_xy), _as(body, conf), refit, settings)


def _settle(
    fit: Seen,
    pixels: Tensor,
    conf: Tensor,
    refit: Callable[[Tensor, Fitted, Tensor, Tensor], Seen],
    settings: RefineSettings,
) -> tuple[Fitted, Tensor]:
    """What both checks for mirrored views share: ``fit`` is the fitted bodies and their keypoints
    in their views (the units of ``pixels``); ``refit(rows, start, pixels, conf)`` fits those bodies
    again to other keypoints and gives theirs."""
    fitted, seen = fit
    N, V = pixels.shape[:2]
    none = torch.zeros(N, V, dtype=torch.bool)
    if not settings.mirror_check or V < 2:
        return fitted, none
    flipped_px, flipped_conf = pixels[:, :, MIRROR], conf[:, :, MIRROR]
    predicted = seen.to(pixels.dtype)
    cost, weight = _costs(predicted, pixels, conf, settings)
    cost_flipped, _ = _costs(predicted, flipped_px, flipped_conf, settings)
    distinct = (mirror_distance(pixels, conf, settings) >= settings.mirror_distinct).cpu()
    cost, weight, cost_flipped = cost.cpu(), weight.cpu(), cost_flipped.cpu()  # [N, V]: the choices are made on the CPU
    two = ((weight > 0).sum(1) == 2)[:, None]  # bodies seen by two views: neither outvotes the other
    doubt = distinct & (cost_flipped < torch.where(two, settings.mirror_doubt_two, settings.mirror_doubt) * cost)
    tried = torch.where(two & doubt.any(1, keepdim=True), distinct, doubt)  # two views: either may be the mirrored one
    tries = tried.nonzero()
    if not len(tries):
        return fitted, none
    rows, mine = tries[:, 0], torch.zeros(len(tries), V, dtype=torch.bool)
    mine[torch.arange(len(tries)), tries[:, 1]] = True
    m = mine.to(pixels.device)
    px = torch.where(m[..., None, None], flipped_px[rows], pixels[rows])
    cf = torch.where(m[..., None], flipped_conf[rows], conf[rows])
    # The tries are fitted in one call, padded to a power of two with copies of the last, so that
    # the call's shapes repeat from frame-set to frame-set and get traced (engine.heatformer.refine._run).
    pad = torch.full((_bucket(len(rows)) - len(rows),), len(rows) - 1, dtype=torch.long)
    every_try = torch.cat([torch.arange(len(rows)), pad])
    padded = rows[every_try]
    again, seen_again = refit(padded, (fitted[0][padded], fitted[1][padded], fitted[2][padded]), px[every_try], cf[every_try])
    again = (again[0][: len(rows)], again[1][: len(rows)], again[2][: len(rows)])
    c, w = _costs(seen_again[: len(rows)].to(px.dtype), px, cf, settings)
    score = c.sum(1) / w.sum(1).clamp_min(1e-9)
    plain = cost.sum(1) / weight.sum(1).clamp_min(1e-9)
    best: dict[int, int] = {}
    for k, n in enumerate(rows.tolist()):
        if score[k] < settings.mirror_gain * plain[n] and (n not in best or score[k] < score[best[n]]):
            best[n] = k
    if not best:
        return fitted, none
    take, at = torch.tensor(list(best.values())), torch.tensor(list(best.keys()))
    out = tuple(a.clone() for a in fitted)
    for a, b in zip(out, again, strict=True):
        a[at] = b[take].to(a.dtype)
    mirrored = none.clone()
    mirrored[at] = mine[take]
    return (out[0], out[1], out[2]), mirrored


def _bucket(n: int) -> int:
    """The smallest power of two >= ``n``."""
    return 1 << max(0, n - 1).bit_length()


def fit_dtype(body: BodyModel) -> torch.dtype:
    """The precision the fit runs in for ``body``: float32 with the analytic Jacobian (the same bodies
    as in float64 to 0.01 mm on synthetic validation draws, and one person in 4 views 10.0 against
    11.3 ms, faster in 8 of 8 interleaved readings), float64 for a body with pose-corrective
    shapes, whose forward differences need it."""
    return torch.float64 if body.has_posedirs else torch.float32


def _as(body: BodyModel, a: Tensor) -> Tensor:
    return a.to(dtype=body.joint_template.dtype, device=body.joint_template.device)


def _float64(fitted: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    return fitted[0].double(), fitted[1].double(), fitted[2].double()


Fitted = tuple[Tensor, Tensor, Tensor]
Seen = tuple[Fitted, Tensor]  # a fit, and its bodies' keypoints in their views


def _fit_world(body: BodyModel, settings: RefineSettings, rotations: Tensor, betas: Tensor, transl: Tensor, pixels: Tensor,
               conf: Tensor, K: Tensor, R: Tensor, t: Tensor, previous: Tensor | None = None) -> Seen:  # fmt: skip
    problem = _WorldFit(body, rotations, betas, pixels, conf, K, R, t, previous, settings)
    return _levenberg_marquardt(problem, problem.rot0, problem.betas0, transl, settings)


def _run(fit: Callable[..., Seen], body: BodyModel, settings: RefineSettings, args: list[Tensor]) -> Seen:
    """``fit(body, settings, *args)`` without gradients, through a trace of it for these shapes.

    The fit is a few hundred small tensor operations per iteration; run by Python, their dispatch
    is most of its time. Traced (``torch.jit.trace``: the same operations replayed by TorchScript),
    one person in 4 views took 6.8-10.1 instead of 10.2-15.5 ms, with the same result. A trace holds
    the shapes and the choices made from them, so there is one per fit, body, settings, device and
    argument shapes, made on the :data:`TRACE_AFTER`-th call with them (a trace and its first runs
    cost about a second: a fit made once or twice, by a tool or a test, runs as is). ``torch.compile``
    was 2-3x faster again but took 111 s to compile each shape on the 2-core machine. Where tracing
    is missing or fails, the fit runs as is. In a thread that asked for it (:func:`trace_aside`),
    the trace is made on a helper thread while the fit runs as is until it is ready."""
    with torch.no_grad():
        traces = _TRACES.setdefault(body, {})
        key = (fit, settings, args[0].device, tuple(a.shape for a in args))
        seen = traces.get(key, 0)
        if isinstance(seen, int):
            if seen + 1 < TRACE_AFTER:
                traces[key] = seen + 1
                return fit(body, settings, *args)
            if len(traces) >= MAX_TRACES:
                traces.clear()

            def bound(*given: Tensor) -> Seen:  # the tracer takes a plain function, not a partial
                return fit(body, settings, *given)

            setup = getattr(_aside, "setup", None)
            if setup is None:
                with _noted():
                    traces[key] = _trace(bound, args)
            else:
                traces[key] = PENDING
                _trace_on_helper(traces, key, bound, [a.clone() for a in args], setup)
        traced = traces[key]
        return traced(*args) if callable(traced) else fit(body, settings, *args)


class _Pending:
    """A trace being made on a helper thread (the fit runs as is meanwhile)."""


PENDING = _Pending()
_aside = threading.local()


def trace_aside(setup: Callable[[], None] = lambda: None) -> None:
    """From now on, the calling thread's new traces (:func:`_run`) are made on a helper thread,
    which first calls ``setup`` (e.g. the body threads' OpenMP setting), and the fit runs as is
    until the trace and its first two runs (where the TorchScript executor profiles and optimises
    it) are done. A live pipeline's body thread asks for this: a new shape (a person arriving, a
    view refitted mirrored) would otherwise hold the body stage, and with it the display, for the
    half second those take on the 2-core machine."""
    _aside.setup = setup


def _trace_on_helper(
    traces: dict[object, object], key: object, fn: Callable[..., Seen], args: list[Tensor], setup: Callable[[], None]
) -> None:
    def work() -> None:
        with _noted():
            setup()
            traces[key] = _made(fn, args)

    # not a daemon: the interpreter waits for it at exit (a second at most) instead of stopping it inside torch
    threading.Thread(target=work, name="refine-trace").start()


def _made(fn: Callable[..., Seen], args: list[Tensor]) -> Callable[..., Seen] | None:
    """A trace of ``fn`` and its executor's first runs (None where it cannot run)."""
    try:
        with torch.no_grad():
            traced = _trace(fn, args)
            if traced is not None:
                for _ in range(2):  # the executor's profiling and optimising runs, here rather than in the caller's
                    traced(*args)
    except Exception as exc:  # a trace that cannot run: the fit itself still works
        log.warning("refinement: running untraced (%s)", exc)
        return None
    return traced


def trace_times() -> list[tuple[float, float]]:
    """When this process made its traces of the fit (and, on a helper thread, their executor's
    first runs): ``(start, end)`` in ``time.perf_counter`` seconds, in the order they began; the
    end is infinite while one is still being made. A trace is start-up work (about half a second
    of CPU on the 2-core machine, once per count of people and views): engine.benchmark checks
    that none fell in its measured frame-sets."""
    return [(start, end) for start, end in list(_TRACE_TIMES)]


@contextlib.contextmanager
def _noted() -> Iterator[None]:
    """Notes the time of what runs inside (a trace) in :func:`trace_times`."""
    entry = [time.perf_counter(), math.inf]
    _TRACE_TIMES.append(entry)
    try:
        yield
    finally:
        entry[1] = time.perf_counter()


_TRACE_TIMES: collections.deque[list[float]] = collections.deque(maxlen=256)  # the latest traces' [start, end]
TRACE_AFTER = 3  # calls with the same shapes before they are traced
MAX_TRACES = 64  # shapes kept per body: every count of people and views a room sees, and the refits of mirrored views
# per body, by fit and shapes: the calls so far (int), then the trace (None where tracing failed;
# PENDING while a helper thread makes it)
_TRACES: weakref.WeakKeyDictionary[BodyModel, dict[object, object]] = weakref.WeakKeyDictionary()


def _trace(fn: Callable[..., Seen], args: list[Tensor]) -> Callable[..., Seen] | None:
    trace = getattr(torch.jit, "trace", None)
    if trace is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes, and torch 2.13's advice to move to torch.compile (above)
            return trace(fn, tuple(args), check_trace=False)
    except Exception as exc:  # any failure of the tracer: the fit itself still works
        log.warning("refinement: running untraced (%s)", exc)
        return None


class _Fit:
    """What both fits share: the robust weights, and the residual's data, prior and shape terms."""

    N: int
    pixels: Tensor
    conf: Tensor
    size: Tensor
    sigma: Tensor
    rot0: Tensor
    betas0: Tensor
    settings: RefineSettings

    def _each(self, a: Tensor, m: int) -> Tensor:
        return a if m == self.N else a.repeat_interleave(m // self.N, dim=0)

    def weights(self, predicted: Tensor, scale: float) -> Tensor:
        error = (predicted - self.pixels).norm(dim=-1) / self.size[..., None]
        return _robust_weights(error, self.conf, scale, self.settings)

    def prior_weights(self, rot: Tensor) -> Tensor | None:
        """Matrices ``[M, R, 3, 3]`` that weigh each rotation's turn from the prior (its residual is
        ``W turn(rot0^T rot)``), where a plain ``1 / sigma`` does not do; None where it does."""
        return None

    def _terms(self, predicted: Tensor, rot: Tensor, betas: Tensor, weights: Tensor) -> list[Tensor]:
        m, s = rot.shape[0], self.settings
        unit = s.sigma * self._each(self.size, m)[..., None, None]
        data = (predicted - self._each(self.pixels, m)) * torch.sqrt(weights)[..., None] / unit
        turned = turn(self._each(self.rot0, m).transpose(-1, -2) @ rot)
        W = self.prior_weights(rot)
        away = turned / self.sigma if W is None else (W @ turned[..., None])[..., 0]
        return [data.reshape(m, -1), away.reshape(m, -1), (betas - self._each(self.betas0, m)) / s.prior_betas]


class _WorldFit(_Fit):
    """Calibrated: every view's keypoints projected with its camera (see :func:`refine_world`)."""

    def __init__(self, body: BodyModel, rot0: Tensor, betas0: Tensor, pixels: Tensor, conf: Tensor, K: Tensor,
                 R: Tensor, t: Tensor, previous: Tensor | None, settings: RefineSettings) -> None:  # fmt: skip
        self.body, self.rot0, self.betas0, self.settings = body, rot0, betas0, settings
        self.pixels, self.conf, self.K, self.R, self.t, self.previous = pixels, conf, K, R, t, previous
        self.N, V = pixels.shape[:2]
        self.size = person_size(pixels, conf, settings)  # [N, V] pixels
        self.shape = (V, 17, 2)
        self.sigma = torch.full((NUM_JOINTS, 1), settings.prior_rot, dtype=rot0.dtype, device=rot0.device)
        self.sigma[0] = settings.prior_root_rot
        self.analytic = not body.has_posedirs  # pose-corrective shapes: forward differences instead

    def predict(self, rot: Tensor, betas: Tensor, transl: Tensor) -> Tensor:
        out = self.body.joints_rotmat(betas, rot)
        assert out.keypoints is not None
        return self._project(out.keypoints + transl[:, None])[0]

    def _project(self, kp: Tensor) -> tuple[Tensor, Tensor]:
        """World keypoints ``[M, 17, 3]`` to pixels ``[M, V, 17, 2]``, and the camera-frame points."""
        m = kp.shape[0]
        return _pinhole(kp, self._each(self.K, m), self._each(self.R, m), self._each(self.t, m))

    def residual(self, predicted: Tensor, rot: Tensor, betas: Tensor, weights: Tensor) -> Tensor:
        terms = self._terms(predicted, rot, betas, weights)
        if self.previous is not None:
            since = turn(self._each(self.previous, rot.shape[0]).transpose(-1, -2) @ rot)[:, 1:] / self.settings.temporal_rot
            terms.append(since.reshape(rot.shape[0], -1))
        return torch.cat(terms, dim=1)

    def linearize(self, rot: Tensor, betas: Tensor, transl: Tensor) -> tuple[Tensor, Normal]:
        """The pixels at this state ``[N, V, 17, 2]``, and the normal equations of :meth:`residual`
        there as a function of the robust weights and the residual (one call of the body model):
        ``J^T J`` ``[N, P, P]`` and ``J^T r`` ``[N, P]``."""
        if not self.analytic:
            return _forward_differences(self, rot, betas, transl)
        N, B, V = rot.shape[0], betas.shape[-1], self.shape[0]
        out = self.body.joints_rotmat(_with_unit_steps(betas), rot.repeat_interleave(B + 1, dim=0))
        assert out.keypoints is not None
        kp = out.keypoints.reshape(N, B + 1, 17, 3)
        d_betas = (kp[:, 1:] - kp[:, :1]).permute(0, 2, 3, 1)  # [N, 17, 3, B]: exact (the keypoints are affine in the betas)
        base, cam = self._project(kp[:, 0] + transl[:, None])
        z = cam[..., 2].clamp_min(1e-3)
        d_norm = torch.zeros(*cam.shape[:-1], 2, 3, dtype=cam.dtype, device=cam.device)  # d (x/z, y/z) / d cam
        d_norm[..., 0, 0] = d_norm[..., 1, 1] = 1.0 / z
        d_norm[..., 0, 2], d_norm[..., 1, 2] = -cam[..., 0] / z**2, -cam[..., 1] / z**2
        d_world = self.K[:, :, None, :2, :2] @ d_norm @ self.R[:, :, None]  # [N, V, 17, 2, 3] pixels per world metre
        assert out.transforms is not None
        d_rot = keypoint_rotation_jacobian(self.body, out.joints[:: B + 1], out.transforms[:: B + 1], betas)  # [N, 17, 3, 24, 3]
        # each keypoint's world motion per parameter (rotations, betas, translation), then its pixels' [N, V, 17, 2, P]
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device).expand(N, 17, 3, 3)
        moved = torch.cat([d_rot.reshape(N, 17, 3, 3 * NUM_JOINTS), d_betas, eye], dim=-1)
        seen = d_world @ moved[:, None]
        s = self.settings

        def normal(weights: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
            unit = torch.sqrt(weights) / (s.sigma * self.size[..., None])  # [N, V, 17]
            data = (seen * unit[..., None, None]).reshape(N, V * 34, -1)
            since = None
            if self.previous is not None:
                since = _rotation_prior_blocks(self.previous, rot, torch.full_like(self.sigma, s.temporal_rot))[:, 1:]
            return _normal_equations(data, r, _rotation_prior_blocks(self.rot0, rot, self.sigma), B, s.prior_betas, since)

        return base, normal


Normal = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _depth_weights(rot0: Tensor, parents: list[int], settings: RefineSettings) -> Tensor:
    """One view's prior weights ``[N, 24, 3, 3]`` (see ``RefineSettings.prior_depth_rot``) from the
    prior's state ``rot0`` ``[N, 24, 3, 3]`` (pose, then the view's root). A joint's turn from the
    prior, ``turn(rot0^T rot)``, is about an axis in the joint's frame; seen in the camera (through
    the prior's frame of that joint, ``G``: the root's, then down the body's tree, ``parents``) its parts about
    the image's x and y axes are weighed by ``1 / prior_depth_rot`` and about the line of sight by
    ``1 / prior_rot``: ``W = diag(...) G``. The view's root keeps ``1 / prior_root_rot``. Taken from
    the prior, not the current state, ``W`` is fixed, so the residual's Jacobian stays exact."""
    local = each_view(rot0, 1)[:, 0]  # root first, as the tree takes them
    frames = forward_kinematics(local, torch.zeros_like(local[..., 0]), parents)[1][..., :3]  # [N, 24, 3, 3] in the camera
    per_axis = torch.tensor([1.0 / settings.prior_depth_rot, 1.0 / settings.prior_depth_rot, 1.0 / settings.prior_rot],
                            dtype=rot0.dtype, device=rot0.device)  # fmt: skip
    pose = per_axis[:, None] * frames[:, 1:]  # [N, 23, 3, 3]
    root = torch.eye(3, dtype=rot0.dtype, device=rot0.device) / settings.prior_root_rot
    return torch.cat([pose, root.expand(rot0.shape[0], 1, 3, 3)], dim=1)


def _rotation_prior_blocks(target: Tensor, rot: Tensor, sigma: Tensor) -> Tensor:
    """The Jacobian blocks ``[N, R, 3, 3]`` of ``turn(target^T R) / sigma`` for each of the state's
    R rotations (``rot`` ``[N, R, 3, 3]``), each with respect to its own rotation's parameters (the
    others do not move it): for ``R exp(d)``, ``turn`` being linear, rotation k's block is
    ``d -> turn(M_k [d]x) = (tr(M_k) I - M_k^T) d / 2`` with ``M = target^T R``
    (``M [d]x + [d]x M^T = [(tr(M) I - M^T) d]x``)."""
    M = target.transpose(-1, -2) @ rot
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    trace = M.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    return 0.5 * (trace * eye - M.transpose(-1, -2)) / sigma[..., None]


def _normal_equations(data: Tensor, r: Tensor, away: Tensor, B: int, prior_betas: float,
                      since: Tensor | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``J^T J`` ``[N, P, P]`` and ``J^T r`` ``[N, P]`` of a residual ``r`` whose rows are: the data
    term's, with Jacobian ``data`` ``[N, D, P]``; the R rotations' prior, 3 rows each, with the
    blocks ``away`` ``[N, R, 3, 3]``; the B betas' prior ``(betas - betas0) / prior_betas``; and,
    when ``since`` ``[N, R - 1, 3, 3]`` is given, the temporal pull on rotations 1..R-1. The
    parameters are the rotations' (3 R columns), then the betas', then the rest. The priors touch
    one rotation or beta each, so their blocks are added to the data's products directly: the same
    sums as through the full Jacobian, without its mostly empty rows."""
    N, D, P = data.shape
    R = away.shape[1]
    JtJ = data.transpose(1, 2) @ data
    g = (data.transpose(1, 2) @ r[:, :D, None])[..., 0]
    per_rot = away.transpose(-1, -2)
    blocks = per_rot @ away  # [N, R, 3, 3]
    pulled = (per_rot @ r[:, D : D + 3 * R].reshape(N, R, 3, 1))[..., 0]  # [N, R, 3]
    if since is not None:
        late = since.transpose(-1, -2)
        first = torch.zeros_like(blocks[:, :1])
        blocks = blocks + torch.cat([first, late @ since], dim=1)
        tail = (late @ r[:, D + 3 * R + B :].reshape(N, R - 1, 3, 1))[..., 0]
        pulled = pulled + torch.cat([torch.zeros_like(pulled[:, :1]), tail], dim=1)
    diagonal = torch.eye(R, dtype=data.dtype, device=data.device)[:, None, :, None]  # [R, 1, R, 1]: block k at k
    rotations = (blocks[:, :, :, None, :] * diagonal).reshape(N, 3 * R, 3 * R)
    shape = torch.cat([torch.zeros(3 * R, dtype=data.dtype, device=data.device),
                       torch.full((B,), prior_betas**-2, dtype=data.dtype, device=data.device),
                       torch.zeros(P - 3 * R - B, dtype=data.dtype, device=data.device)])  # fmt: skip
    JtJ = JtJ + torch.nn.functional.pad(rotations, (0, P - 3 * R, 0, P - 3 * R)) + torch.diag(shape)
    rest = r[:, D + 3 * R : D + 3 * R + B] / prior_betas
    g = g + torch.nn.functional.pad(torch.cat([pulled.reshape(N, 3 * R), rest], dim=1), (0, P - 3 * R - B))
    return JtJ, g


def _with_unit_steps(betas: Tensor) -> Tensor:
    """Each body's betas ``[N, B]`` followed by one unit step per beta: ``[N (B + 1), B]`` (the
    keypoints are affine in the betas, so the steps give their Jacobian columns exactly)."""
    B = betas.shape[-1]
    eye = torch.eye(B, dtype=betas.dtype, device=betas.device)
    return (betas[:, None] + torch.cat([torch.zeros_like(eye[:1]), eye])).reshape(-1, B)


def _forward_differences(problem: _WorldFit | _ViewFit, rot: Tensor, betas: Tensor, second: Tensor) -> tuple[Tensor, Normal]:
    """A problem's ``linearize`` from forward differences: every body and its ``P`` nudged copies
    through the body model in one call (bodies with pose-corrective shapes, and the tests)."""
    N, h = rot.shape[0], 1e-6
    P = 3 * rot.shape[1] + betas.shape[-1] + second.shape[-1]
    nudged = _nudged(rot, betas, second, h)
    predicted = problem.predict(*nudged)

    def normal(weights: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        r_all = problem.residual(predicted, nudged[0], nudged[1], weights.repeat_interleave(P + 1, dim=0)).reshape(N, P + 1, -1)
        J = ((r_all[:, 1:] - r_all[:, :1]) / h).transpose(1, 2)
        return J.transpose(1, 2) @ J, (J.transpose(1, 2) @ r[..., None])[..., 0]

    return predicted.reshape(N, P + 1, *problem.shape)[:, 0], normal


def refine_views(
    body: BodyModel,
    rotations: Tensor,
    betas: Tensor,
    cam: Tensor,
    crop_xy: Tensor,
    conf: Tensor,
    lens: Tensor,
    settings: RefineSettings = DEFAULT,
) -> tuple[Tensor, Tensor, Tensor]:
    """Uncalibrated views: fit N people, each seen in the same V views, to those views' keypoints.

    Without a calibration the views cannot be placed in one world, but they do see one body: the
    fit keeps one pose (joints 1..23) and one shape per person, and per view the body's orientation
    in that camera and its place (``cam``, HeatFormer's weak-perspective parameters, see
    :func:`project_view`), projected through a pinhole ``lens`` of an assumed field of view
    (:func:`assumed_lens`), so that the parts nearer a camera look larger, as they do. The fit runs
    in ``body``'s precision (see :func:`fit_body`); rotations ``[N, V, 24, 3, 3]`` (HeatFormer's
    per-view answer, the prior; the pose is taken from the first view), betas ``[N, B]``, cam
    ``[N, V, 3]``; crop_xy ``[N, V, 17, 2]``, conf ``[N, V, 17]``, lens ``[N, V, 3]``. Returns
    rotations ``[N, V, 24, 3, 3]``, betas ``[N, B]`` and cam ``[N, V, 3]`` (float64)."""
    return refine_views_seen(body, rotations, betas, cam, crop_xy, conf, lens, settings)[0]


def refine_views_seen(body: BodyModel, rotations: Tensor, betas: Tensor, cam: Tensor, crop_xy: Tensor, conf: Tensor, lens: Tensor,
                  settings: RefineSettings = DEFAULT) -> Seen:  # fmt: skip
    """:func:`refine_views`, and the refined bodies' keypoints in their views ``[N, V, 17, 2]``
    (crop units, in the fit's precision), as the fit computed them for its last check."""
    rotations, cam = _as(body, rotations), _as(body, cam)
    N, V = rotations.shape[:2]
    state = torch.cat([rotations[:, 0, 1:], rotations[:, :, 0]], dim=1)  # [N, 23 + V, 3, 3]: pose, then each view's root
    args = [state, _as(body, betas), cam.reshape(N, 3 * V), _as(body, crop_xy), _as(body, conf), _as(body, lens)]
    fitted, seen = _run(_fit_views, body, settings, args)
    rot, b, c = _float64(fitted)
    return (each_view(rot, V), b, c.reshape(N, V, 3)), seen


ASSUMED_FOV_DEG = 65.0  # an uncalibrated camera's field of view across the image's longer side (most see 55-80)


def assumed_lens(image_size: Tensor, boxes: Tensor, fov_deg: float = ASSUMED_FOV_DEG) -> Tensor:
    """An uncalibrated view's pinhole in its crop's units ``[..., 3]`` (focal length, principal
    point x, y): the principal point at the image centre and the focal length of a camera that sees
    ``fov_deg`` across the image's longer side (a camera turned upright keeps its lens), from
    image_size ``[..., 2]`` (w, h px) and the crop boxes ``[..., 3]`` (x0, y0, size px)."""
    size = boxes[..., 2:3]
    focal = image_size.amax(dim=-1, keepdim=True) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return torch.cat([focal, image_size / 2.0 - boxes[..., :2]], dim=-1) / size


MIN_DEPTH = 0.1  # m in front of the camera: nearer points are projected as if there (a bad start, not a body)


def _placement(cam: Tensor, lens: Tensor) -> Tensor:
    """The mid-hip's position in the camera ``[..., 3]`` from weak-perspective parameters ``[..., 3]``
    (scale ``0.5 exp(c0)`` crop units per metre at the mid-hip's depth, the mid-hip seen at
    ``0.5 + (c1, c2)``) and the lens ``[..., 3]``."""
    per_metre = 0.5 * torch.exp(cam[..., :1])
    return torch.cat([(0.5 + cam[..., 1:] - lens[..., 1:]) / per_metre, lens[..., :1] / per_metre], dim=-1)


def project_view(relative: Tensor, cam: Tensor, lens: Tensor) -> Tensor:
    """Points ``[..., K, 3]`` in a view's camera frame relative to the mid-hip, placed by ``cam``
    ``[..., 3]`` and seen through ``lens`` ``[..., 3]``: crop coordinates ``[..., K, 2]``. As the lens's
    focal length grows this becomes the weak-perspective ``0.5 exp(c0) xy + 0.5 + (c1, c2)``."""
    P = relative + _placement(cam, lens)[..., None, :]
    return lens[..., None, :1] * P[..., :2] / P[..., 2:3].clamp_min(MIN_DEPTH) + lens[..., None, 1:]


def each_view(rot: Tensor, views: int) -> Tensor:
    """Each view's 24 rotations ``[M, V, 24, 3, 3]`` from a view fit's state ``[M, 23 + V, 3, 3]``
    (the pose, then each view's root)."""
    pose = rot[:, None, : NUM_JOINTS - 1].expand(rot.shape[0], views, NUM_JOINTS - 1, 3, 3)
    return torch.cat([rot[:, NUM_JOINTS - 1 :, None], pose], dim=2)


def _fit_views(body: BodyModel, settings: RefineSettings, state: Tensor, betas: Tensor, cam: Tensor, crop_xy: Tensor,
               conf: Tensor, lens: Tensor) -> Seen:  # fmt: skip
    problem = _ViewFit(body, state, betas, crop_xy, conf, lens, settings)
    return _levenberg_marquardt(problem, state, betas, cam, settings)


class _ViewFit(_Fit):
    """Uncalibrated: one pose and shape, a root and a camera placement per view, seen through each
    view's lens (see :func:`refine_views`). The state's rotations are ``[N, 23 + V, 3, 3]``: pose,
    then roots."""

    def __init__(self, body: BodyModel, rot0: Tensor, betas0: Tensor, crop_xy: Tensor, conf: Tensor, lens: Tensor,
                 settings: RefineSettings) -> None:  # fmt: skip
        self.body, self.rot0, self.betas0, self.settings = body, rot0, betas0, settings
        self.pixels, self.conf, self.lens = crop_xy, conf, lens
        self.N, self.V = crop_xy.shape[:2]
        self.size = person_size(crop_xy, conf, settings)  # [N, V] crop units
        self.shape = (self.V, 17, 2)
        sigma = [settings.prior_rot] * (NUM_JOINTS - 1) + [settings.prior_root_rot] * self.V
        self.sigma = torch.tensor(sigma, dtype=rot0.dtype, device=rot0.device)[:, None]
        self.analytic = not body.has_posedirs
        one_view = self.V == 1 and settings.prior_depth_rot != settings.prior_rot
        self.depth_weights = _depth_weights(rot0, body.parents, settings) if one_view else None

    def prior_weights(self, rot: Tensor) -> Tensor | None:
        return None if self.depth_weights is None else self._each(self.depth_weights, rot.shape[0])

    def _relative(self, rot: Tensor, betas: Tensor) -> tuple[Tensor, BodyOutput]:
        """Mid-hip-relative keypoints ``[M * V, 17, 3]`` in each view's camera, and the body output."""
        out = self.body.joints_rotmat(
            betas.repeat_interleave(self.V, dim=0), each_view(rot, self.V).reshape(-1, NUM_JOINTS, 3, 3)
        )
        assert out.keypoints is not None
        return out.keypoints - 0.5 * (out.keypoints[:, 11:12] + out.keypoints[:, 12:13]), out

    def _project(self, kp: Tensor, cam: Tensor) -> Tensor:
        M = kp.shape[0] // self.V
        lens = self._each(self.lens, M).reshape(-1, 3)
        return project_view(kp, cam.reshape(-1, 3), lens).reshape(-1, *self.shape)

    def predict(self, rot: Tensor, betas: Tensor, cam: Tensor) -> Tensor:
        return self._project(self._relative(rot, betas)[0], cam)

    def residual(self, predicted: Tensor, rot: Tensor, betas: Tensor, weights: Tensor) -> Tensor:
        return torch.cat(self._terms(predicted, rot, betas, weights), dim=1)

    def linearize(self, rot: Tensor, betas: Tensor, cam: Tensor) -> tuple[Tensor, Normal]:
        if not self.analytic:
            return _forward_differences(self, rot, betas, cam)
        N, V, B, J = rot.shape[0], self.V, betas.shape[-1], NUM_JOINTS
        kp, out = self._relative(rot.repeat_interleave(B + 1, dim=0), _with_unit_steps(betas))
        kp = kp.reshape(N, B + 1, V, 17, 3)
        cam = cam.reshape(N, V, 3)
        placed = _placement(cam, self.lens)  # [N, V, 3]
        P = kp[:, 0] + placed[:, :, None]  # [N, V, 17, 3] camera frame
        depth = P[..., 2].clamp_min(MIN_DEPTH)
        f = self.lens[..., :1] / depth  # [N, V, 17]
        base = project_view(kp[:, 0], cam, self.lens)  # [N, V, 17, 2]
        # d crop / d point: f / z [[1, 0, -x / z], [0, 1, -y / z]] (0 in depth where the depth is clamped)
        D = torch.zeros(N, V, 17, 2, 3, dtype=rot.dtype, device=rot.device)
        D[..., 0, 0] = f
        D[..., 1, 1] = f
        D[..., :, 2] = -f[..., None] * P[..., :2] / depth[..., None] * (P[..., 2:3] > MIN_DEPTH)
        d_betas = D @ (kp[:, 1:] - kp[:, :1]).permute(0, 2, 3, 4, 1)  # [N, V, 17, 2, B]
        assert out.transforms is not None
        base_rows = lambda a: a.reshape(N, B + 1, V, *a.shape[1:])[:, 0].reshape(N * V, *a.shape[1:])  # noqa: E731
        per_view = betas.repeat_interleave(V, dim=0)
        d_rot = keypoint_rotation_jacobian(self.body, base_rows(out.joints), base_rows(out.transforms), per_view)
        d_rot = (d_rot - 0.5 * (d_rot[:, 11:12] + d_rot[:, 12:13])).reshape(N, V, 17, 3, J * 3)  # mid-hip-relative
        d_rot = (D @ d_rot).reshape(N, V, 17, 2, J, 3)
        # the placement moves with the camera parameters: d/dc0 = -placement, d/dc1,2 = unit x, y / scale
        per_metre = 0.5 * torch.exp(cam[..., 0])  # [N, V]
        moves = torch.zeros(N, V, 3, 3, dtype=rot.dtype, device=rot.device)  # [N, V, point axis, parameter]
        moves[..., 0] = -placed
        moves[..., 0, 1] = 1.0 / per_metre
        moves[..., 1, 2] = 1.0 / per_metre
        d_cam = D @ moves[:, :, None]  # [N, V, 17, 2, 3]
        s = self.settings

        def normal(weights: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
            w = (torch.sqrt(weights) / (s.sigma * self.size[..., None]))[..., None, None]  # [N, V, 17, 1, 1]
            pose = (w[..., None] * d_rot[..., 1:, :]).reshape(N, V * 34, 3 * (J - 1))
            v = torch.arange(V, device=rot.device)
            roots = torch.zeros(N, V, 17, 2, V, 3, dtype=rot.dtype, device=rot.device)
            roots[:, v, :, :, v, :] = (w * d_rot[..., 0, :]).permute(1, 0, 2, 3, 4)
            shape = (w * d_betas).reshape(N, V * 34, B)
            cams = torch.zeros(N, V, 17, 2, V, 3, dtype=rot.dtype, device=rot.device)
            cams[:, v, :, :, v, :] = (w * d_cam).permute(1, 0, 2, 3, 4)
            data = torch.cat([pose, roots.reshape(N, V * 34, 3 * V), shape, cams.reshape(N, V * 34, 3 * V)], dim=-1)
            away = _rotation_prior_blocks(self.rot0, rot, self.sigma)
            W = self.prior_weights(rot)
            if W is not None:  # the blocks of W turn(...): W times those of turn(...)
                away = W @ (away * self.sigma[..., None])
            return _normal_equations(data, r, away, B, s.prior_betas)

        return base, normal


def keypoint_rotation_jacobian(body: BodyModel, joints: Tensor, A: Tensor, betas: Tensor) -> Tensor:
    """How the body's COCO-17 keypoints (before translation) move when each joint turns by
    ``R_j <- R_j exp(d_j)``: ``[N, 17, 3, 24, 3]``, for a body without pose-corrective shapes, from
    its posed ``joints`` ``[N, 24, 3]`` and skinning transforms ``A`` ``[N, 24, 3, 4]`` (untranslated).
    Turning j turns every bone below it (and j) about j's position by ``G_j d``; a keypoint is a
    blend of skinned vertices, so it moves by ``(G_j d) x r`` with ``r`` the blend of its vertices'
    parts on those bones minus their share of j's position (plus its offset, when its part turns)."""
    below, share, part_moves = _subtrees(body)
    full = body._betas(betas)
    v = body.kp_template + torch.einsum("vcb,nb->nvc", body.kp_shapedirs, full)  # [N, S, 3]
    on_bone = torch.einsum("nbij,nvj->nvbi", A[..., :3], v) + A[:, None, :, :, 3]  # [N, S, 24, 3]: vertex as bone b places it
    N, S = on_bone.shape[:2]
    # each vertex's part carried by joint j's turn (its weight on every bone that turns with j), blended into the keypoints
    carried = (on_bone * body.kp_weights[:, :, None]).transpose(-1, -2) @ below  # [N, S, 3, 24]
    blended = (body.kp_regressor @ carried.reshape(N, S, 3 * NUM_JOINTS)).reshape(N, 17, 3, NUM_JOINTS)
    r = blended.transpose(-1, -2) - share[..., None] * joints[:, None]  # [N, 17, 24, 3]
    if body.has_offsets:
        offset = (A[:, list(KEYPOINT_PARTS), :, :3] @ body.kp_offsets[..., None])[..., 0]  # [N, 17, 3] world
        r = r + part_moves[..., None] * offset[:, :, None]
    return -(skew(r) @ A[:, None, :, :, :3]).permute(0, 1, 3, 2, 4)  # d kp / d d_j = -[r]x G_j


def _subtrees(body: BodyModel) -> tuple[Tensor, Tensor, Tensor]:
    """For the analytic Jacobian: ``[24, 24]`` whether bone b turns with joint j; ``[17, 24]``
    each keypoint's total skinning weight on the bones that turn with joint j; ``[17, 24]``
    whether its offset's part turns with joint j."""
    if body not in _SUBTREES:
        below = torch.zeros(NUM_JOINTS, NUM_JOINTS, dtype=body.kp_weights.dtype, device=body.kp_weights.device)
        for b in range(NUM_JOINTS):
            j = b
            while j >= 0:  # b turns with j and with every joint above j
                below[b, j] = 1.0
                j = body.parents[j]
        _SUBTREES[body] = (below, body.kp_regressor @ body.kp_weights @ below, below[list(KEYPOINT_PARTS)])
    return _SUBTREES[body]


_SUBTREES: weakref.WeakKeyDictionary[BodyModel, tuple[Tensor, Tensor, Tensor]] = weakref.WeakKeyDictionary()


def fit_body(body: BodyModel) -> BodyModel:
    """A copy of ``body`` in the fit's precision (:func:`fit_dtype`; ``body`` itself when it is
    already), made once per body."""
    from engine.heatformer.offsets import offset_body

    return offset_body(body, None, fit_dtype(body))


def float64_body(body: BodyModel) -> BodyModel:
    """A float64 copy of ``body`` (made once per body): the precision a fit with forward differences
    needs, and the tests' reference."""
    from engine.heatformer.offsets import offset_body

    return offset_body(body, None, torch.float64)
