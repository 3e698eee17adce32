"""Procedural SMPL poses with activity templates and joint limits (torch, any device).

SMPL body frame: Y up, Z forward, the subject's left = +X. Signs used below (checked on the
default body): hip flexion (leg forward) = -X rotation, knee flexion = +X, spine forward bend =
+X, left arm down = -Z at the left shoulder (right arm: +Z), left elbow flexion = -Y (right: +Y).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from core.geometry import matrix_to_rodrigues

# body_pose index = SMPL joint - 1
L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = 0, 1, 2, 3, 4, 5, 6, 7, 8
NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 11, 12, 13, 14, 15, 16, 17, 18
L_FOOT, R_FOOT, L_WRIST, R_WRIST = 9, 10, 19, 20
X, Y, Z = 0, 1, 2

# (name, relative frequency, global posture) ; posture: "upright", "lying", "falling", "floor"
ACTIVITIES: tuple[tuple[str, float, str], ...] = (
    ("standing", 2.0, "upright"),
    ("walking", 2.0, "upright"),
    ("sitting_chair", 2.0, "upright"),
    ("sitting_floor", 1.0, "upright"),
    ("lying", 2.0, "lying"),
    ("kneeling", 1.0, "upright"),
    ("crouching", 1.0, "upright"),
    ("bending", 1.5, "upright"),
    ("reaching_up", 1.0, "upright"),
    ("falling", 1.5, "falling"),
    ("getting_up", 1.0, "floor"),
)

# Largest rotation (radians) allowed per body joint (23): spine/neck/head small, limbs large.
JOINT_LIMITS = torch.tensor(
    [2.4, 2.4, 0.9, 2.5, 2.5, 0.6, 0.9, 0.9, 0.6, 0.5, 0.5, 0.8, 0.6, 0.6, 0.8, 2.8, 2.8, 2.6, 2.6, 1.2, 1.2, 0.5, 0.5]
)


def uniform(n: int | tuple[int, ...], low: float, high: float, g: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand((n,) if isinstance(n, int) else n, generator=g)


def sample_activity_poses(n: int, g: torch.Generator) -> tuple[Tensor, list[str]]:
    """``[n, 23, 3]`` axis-angle body poses and the activity name of each."""
    weights = torch.tensor([w for _, w, _ in ACTIVITIES])
    choice = torch.multinomial(weights, n, replacement=True, generator=g)
    pose = 0.08 * torch.randn(n, 23, 3, generator=g)  # everyone moves a little
    names = [ACTIVITIES[int(c)][0] for c in choice]
    for index, (name, _, _) in enumerate(ACTIVITIES):
        rows = (choice == index).nonzero().flatten()
        if len(rows):
            pose[rows] += TEMPLATES[name](len(rows), g)
    return limit(pose), names


def limit(pose: Tensor) -> Tensor:
    angle = pose.norm(dim=-1, keepdim=True)
    return pose * torch.clamp(JOINT_LIMITS.to(pose.device)[:, None] / angle.clamp_min(1e-8), max=1.0)


def widen_limbs(pose: Tensor, fraction: float, g: torch.Generator) -> Tensor:
    """Training augmentation: in ``fraction`` of the poses ``[n, 23, 3]``, each arm and each leg
    (independently, even odds) is replaced by a wide, random but reachable pose: legs raised
    forward, to the side or back with any knee bend and pointed or flexed feet; arms anywhere from
    down to overhead with any elbow bend and bent wrists. The activity templates rarely leave the
    everyday range; this is what they miss (dance, sport, a leg caught mid-fall). With
    ``fraction`` 0 the poses are returned as they are and nothing is drawn from ``g``."""
    if fraction <= 0:
        return pose
    n = pose.shape[0]
    chosen = torch.rand(n, generator=g) < fraction
    pose = pose.clone()
    for side in (1.0, -1.0):  # left, right (the subject's)
        hip, knee, ankle, foot = (L_HIP, L_KNEE, L_ANKLE, L_FOOT) if side > 0 else (R_HIP, R_KNEE, R_ANKLE, R_FOOT)
        leg = chosen & (torch.rand(n, generator=g) < 0.5)
        wide = torch.zeros(n, 4, 3)
        wide[:, 0, X] = -uniform(n, -0.5, 2.2, g)  # flexion: leg forward (up to above the hip) or back
        wide[:, 0, Z] = side * uniform(n, -0.3, 1.3, g)  # abduction: out to the side
        wide[:, 0, Y] = uniform(n, -0.7, 0.7, g)  # turned in or out
        wide[:, 1, X] = uniform(n, 0.0, 2.3, g)  # knee bend
        wide[:, 2, X] = uniform(n, -0.9, 0.9, g)  # pointed or flexed foot
        wide[:, 2, 1:] = uniform((n, 2), -0.3, 0.3, g)
        wide[:, 3, X] = uniform(n, -0.5, 0.5, g)
        rows = [hip, knee, ankle, foot]
        pose[:, rows] = torch.where(leg[:, None, None], wide, pose[:, rows])
    for side in (1.0, -1.0):
        shoulder, elbow, wrist = (L_SHOULDER, L_ELBOW, L_WRIST) if side > 0 else (R_SHOULDER, R_ELBOW, R_WRIST)
        arm = chosen & (torch.rand(n, generator=g) < 0.5)
        wide = torch.zeros(n, 3, 3)
        wide[:, 0, Z] = side * uniform(n, -1.5, 1.6, g)  # down (-1.5) .. level (0) .. overhead (1.6)
        wide[:, 0, Y] = side * uniform(n, -1.2, 1.2, g)  # forward / back
        wide[:, 0, X] = uniform(n, -0.8, 0.8, g)  # twist
        wide[:, 1, Y] = -side * uniform(n, 0.0, 2.4, g)  # elbow bend
        wide[:, 2] = uniform((n, 3), -1.0, 1.0, g)  # wrist
        rows = [shoulder, elbow, wrist]
        pose[:, rows] = torch.where(arm[:, None, None], wide, pose[:, rows])
    return limit(pose)


# Everyday arm gestures of the rooms the app watches (training: see :func:`everyday_arms`). Each is
# (name, relative frequency, arms: "one" or "both"); directions are in the body frame (Y up, Z
# forward, the subject's left +X) with x given for the left arm (mirrored for the right).
GESTURES: tuple[tuple[str, float, str], ...] = (
    ("shelf", 1.0, "one"),  # reaching up and forward to a shelf
    ("cup", 1.0, "one"),  # holding a cup or a phone in front of the chest
    ("phone_call", 1.0, "one"),  # a phone at the ear
    ("hands_to_face", 1.0, "both"),
    ("arms_crossed", 1.0, "both"),
    ("walker", 1.0, "both"),  # hands on a walker's grips, or a wheelchair's push handles
    ("pointing", 1.0, "one"),
    ("waving", 1.0, "one"),
)


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def _gesture_arm(name: str, n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """For the left arm: the upper arm's direction ``u`` ``[n, 3]``, the direction the forearm bends
    towards ``b`` ``[n, 3]`` and the elbow bend (radians) ``[n]``, before jitter."""

    def vec(x: tuple[float, float], y: tuple[float, float], z: tuple[float, float]) -> Tensor:
        return torch.stack([uniform(n, *x, g), uniform(n, *y, g), uniform(n, *z, g)], -1)

    if name == "shelf":
        return vec((0.1, 0.5), (0.6, 1.2), (0.3, 0.8)), vec((-0.2, 0.2), (0.0, 0.5), (0.5, 1.0)), uniform(n, 0.0, 0.5, g)
    if name == "cup":
        return vec((0.05, 0.3), (-1.0, -0.8), (0.1, 0.5)), vec((-0.3, 0.0), (0.0, 0.3), (0.8, 1.0)), uniform(n, 1.2, 2.0, g)
    if name == "phone_call":
        return vec((0.2, 0.5), (-0.8, -0.5), (0.1, 0.5)), vec((-0.7, -0.4), (0.8, 1.0), (0.0, 0.3)), uniform(n, 2.3, 2.55, g)
    if name == "hands_to_face":
        return vec((0.0, 0.25), (-0.8, -0.4), (0.5, 0.9)), vec((-0.5, -0.2), (0.8, 1.0), (0.0, 0.3)), uniform(n, 2.2, 2.55, g)
    if name == "arms_crossed":
        return vec((0.0, 0.12), (-0.95, -0.75), (0.35, 0.6)), vec((-1.0, -0.9), (0.0, 0.3), (-0.1, 0.1)), uniform(n, 1.7, 2.0, g)
    if name == "walker":
        return vec((0.0, 0.25), (-0.9, -0.5), (0.4, 0.9)), vec((-0.2, 0.2), (-0.3, 0.2), (0.8, 1.0)), uniform(n, 0.2, 0.8, g)
    if name == "pointing":
        return vec((0.0, 1.0), (-0.4, 0.5), (0.3, 1.0)), vec((-0.2, 0.2), (0.0, 0.5), (0.5, 1.0)), uniform(n, 0.0, 0.25, g)
    if name == "waving":
        return vec((0.7, 1.0), (-0.1, 0.5), (0.0, 0.5)), vec((-0.3, 0.0), (0.8, 1.0), (0.0, 0.3)), uniform(n, 1.0, 2.0, g)
    raise ValueError(f"unknown gesture {name!r}")


def _frame_rotation(u: Tensor, b: Tensor, side: float) -> Tensor:
    """The shoulder rotation ``[n, 3, 3]`` that turns the rest arm (along ``side`` * X) onto ``u``
    and the elbow's bending direction (rest: +Z, forward) onto ``b`` made perpendicular to ``u``."""
    u = _unit(u)
    b = _unit(b - (b * u).sum(-1, keepdim=True) * u)
    x = side * u  # local X
    y = torch.linalg.cross(b, x)  # local Y = Z x X
    return torch.stack([x, y, b], dim=-1)


def everyday_arms(
    pose: Tensor, fraction: float, g: torch.Generator, gestures: tuple[tuple[str, float, str], ...] = GESTURES
) -> Tensor:
    """Training augmentation: in ``fraction`` of the poses ``[n, 23, 3]`` one or both arms take an
    everyday gesture of the rooms the app watches (:data:`GESTURES`: reaching to a shelf, a cup or a
    phone held, a phone at the ear, hands to the face, arms crossed, hands on a walker or a
    wheelchair's push handles, pointing, waving), with the rest of the body as its activity left it.
    One-arm gestures take the left or right arm with even odds. Shoulder, elbow and wrist are set;
    directions are jittered. With ``fraction`` 0 the poses are returned as they are and nothing is
    drawn from ``g``. ``gestures``: the gestures to draw from (name, relative frequency, arms)."""
    if fraction <= 0:
        return pose
    n = pose.shape[0]
    chosen = torch.rand(n, generator=g) < fraction
    weights = torch.tensor([w for _, w, _ in gestures])
    kind = torch.multinomial(weights, n, replacement=True, generator=g)
    left_only = torch.rand(n, generator=g) < 0.5
    pose = pose.clone()
    for index, (name, _, arms) in enumerate(gestures):
        rows = (chosen & (kind == index)).nonzero().flatten()
        if not len(rows):
            continue
        m = len(rows)
        u, b, bend = _gesture_arm(name, m, g)
        for side in (1.0, -1.0):
            shoulder, elbow, wrist = (L_SHOULDER, L_ELBOW, L_WRIST) if side > 0 else (R_SHOULDER, R_ELBOW, R_WRIST)
            if arms == "both":
                use = torch.ones(m, dtype=torch.bool)
            else:
                use = left_only[rows] if side > 0 else ~left_only[rows]
            mirror = torch.tensor([side, 1.0, 1.0])
            jitter = 0.12 * torch.randn(m, 2, 3, generator=g)
            frame = _frame_rotation(u * mirror + jitter[:, 0], b * mirror + jitter[:, 1], side)
            rot = torch.as_tensor(matrix_to_rodrigues(frame.cpu().numpy()), dtype=pose.dtype, device=pose.device)
            flex = torch.zeros(m, 3)
            flex[:, Y] = -side * (bend + 0.1 * torch.randn(m, generator=g)).clamp(0.0, float(JOINT_LIMITS[elbow]))
            twist = uniform((m, 3), -0.4, 0.4, g)
            use = use & (rot.norm(dim=-1) < JOINT_LIMITS[shoulder])  # beyond the shoulder's limit: left as they were
            sel = rows[use]
            pose[sel, shoulder], pose[sel, elbow], pose[sel, wrist] = rot[use], flex[use], twist[use]
    return pose  # within the joint limits as drawn; the other joints (recorded poses too) as they came


# One-leg balance (training: see :func:`one_leg_balance`): how the free leg is held, with relative
# frequencies. The bundled demo is a balance trial (the subject stands on one leg, the other lifted
# behind or to the side, the arms flung out), and standing on one leg is a common test of balance and
# exercise for it in the rooms the app watches; the activity templates never lift a foot off the floor.
BALANCE_LEGS: tuple[tuple[str, float], ...] = (
    ("knee_up", 1.0),  # the thigh raised in front, the knee bent
    ("foot_back", 1.0),  # the knee bent, the foot raised behind
    ("leg_side", 1.0),  # the leg out to the side
    ("leg_back", 1.0),  # the leg stretched out behind
    ("turned_out", 1.0),  # the knee bent and turned out, the foot by the other leg
)


def _free_leg(name: str, n: int, side: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Hip and knee axis-angle rotations ``[n, 3]`` of a free leg held as ``name`` (``side``: +1 the
    subject's left leg, -1 the right)."""
    hip, knee = torch.zeros(n, 3), torch.zeros(n, 3)
    if name == "knee_up":
        hip[:, X], hip[:, Z], knee[:, X] = -uniform(n, 0.4, 1.7, g), side * uniform(n, -0.1, 0.4, g), uniform(n, 0.3, 2.2, g)
    elif name == "foot_back":
        hip[:, X], hip[:, Z], knee[:, X] = uniform(n, -0.3, 0.5, g), side * uniform(n, -0.1, 0.3, g), uniform(n, 1.0, 2.3, g)
    elif name == "leg_side":
        hip[:, X], hip[:, Z], knee[:, X] = -uniform(n, -0.2, 0.5, g), side * uniform(n, 0.3, 1.0, g), uniform(n, 0.0, 0.8, g)
    elif name == "leg_back":
        hip[:, X], hip[:, Z], knee[:, X] = uniform(n, 0.2, 0.8, g), side * uniform(n, 0.0, 0.5, g), uniform(n, 0.0, 1.0, g)
    elif name == "turned_out":
        hip[:, X], hip[:, Z], knee[:, X] = -uniform(n, 0.3, 1.2, g), side * uniform(n, 0.3, 1.0, g), uniform(n, 1.5, 2.4, g)
        hip[:, Y] = side * uniform(n, 0.3, 1.0, g)  # turned out: the knee points to the side
    else:
        raise ValueError(f"unknown free-leg pose {name!r}")
    if name != "turned_out":
        hip[:, Y] = uniform(n, -0.3, 0.3, g)
    return hip, knee


def one_leg_balance(
    pose: Tensor, fraction: float, g: torch.Generator, standing: Tensor | None = None,
    legs: tuple[tuple[str, float], ...] = BALANCE_LEGS,
) -> Tensor:  # fmt: skip
    """Training augmentation: ``fraction`` of the poses ``[n, 23, 3]`` (of the rows where
    ``standing`` ``[n]`` is true, when given) stand on one leg, nearly straight, with the other leg
    off the floor (:data:`BALANCE_LEGS`: the knee raised in front, the foot raised behind, the leg
    out to the side or stretched behind, the knee turned out), the trunk leaning a little and, in
    two of three, the arms out for balance (anywhere from low at the sides to overhead, elbows
    loose); the others keep their activity's arms. Either leg with even odds. Like
    :func:`widen_limbs`, it returns every pose within :data:`JOINT_LIMITS` (the activity poses are
    already; of the recorded ones, mostly a hand, a toe or a head turned past its limit is clamped).
    With ``fraction`` 0 the poses are returned as they are and nothing is drawn from ``g``."""
    if fraction <= 0:
        return pose
    n = pose.shape[0]
    chosen = torch.rand(n, generator=g) < fraction
    if standing is not None:
        chosen &= standing.to(chosen.device)
    kind = torch.multinomial(torch.tensor([w for _, w in legs]), n, replacement=True, generator=g)
    left_free = torch.rand(n, generator=g) < 0.5
    arms_out = torch.rand(n, generator=g) < 2 / 3
    pose = pose.clone()
    for free_side in (1.0, -1.0):
        rows = (chosen & (left_free if free_side > 0 else ~left_free)).nonzero().flatten()
        if not len(rows):
            continue
        m = len(rows)
        free = (L_HIP, L_KNEE, L_ANKLE) if free_side > 0 else (R_HIP, R_KNEE, R_ANKLE)
        stance = (R_HIP, R_KNEE, R_ANKLE) if free_side > 0 else (L_HIP, L_KNEE, L_ANKLE)
        hip, knee = torch.zeros(m, 3), torch.zeros(m, 3)
        for index, (name, _) in enumerate(legs):
            pick = kind[rows] == index
            drawn_hip, drawn_knee = _free_leg(name, m, free_side, g)
            hip, knee = torch.where(pick[:, None], drawn_hip, hip), torch.where(pick[:, None], drawn_knee, knee)
        pose[rows, free[0]], pose[rows, free[1]] = hip, knee
        pose[rows, free[2]] = torch.stack([uniform(m, -0.8, 0.5, g), uniform(m, -0.2, 0.2, g), uniform(m, -0.2, 0.2, g)], -1)
        # the stance leg: nearly straight, drawn in a little under the body
        pose[rows, stance[0]] = torch.stack(
            [uniform(m, -0.2, 0.1, g), uniform(m, -0.2, 0.2, g), free_side * uniform(m, -0.05, 0.15, g)], -1
        )
        pose[rows, stance[1]] = torch.stack([uniform(m, 0.0, 0.35, g), torch.zeros(m), torch.zeros(m)], -1)
        pose[rows, stance[2]] = uniform((m, 3), -0.2, 0.2, g)
        for spine in (SPINE1, SPINE2, SPINE3):  # the trunk leans a little, mostly over the stance leg
            pose[rows, spine] = torch.stack(
                [uniform(m, -0.1, 0.2, g), uniform(m, -0.15, 0.15, g), free_side * uniform(m, -0.05, 0.15, g)], -1
            )
        out = rows[arms_out[rows]]
        k = len(out)
        for side in (1.0, -1.0):
            shoulder, elbow, wrist = (L_SHOULDER, L_ELBOW, L_WRIST) if side > 0 else (R_SHOULDER, R_ELBOW, R_WRIST)
            arm = torch.zeros(k, 3)
            arm[:, Z] = side * uniform(k, -1.2, 1.5, g)  # low at the side (-1.2) .. level (0) .. overhead (1.5)
            arm[:, Y] = side * uniform(k, -0.8, 0.8, g)  # forward / back
            arm[:, X] = uniform(k, -0.5, 0.5, g)  # twist
            pose[out, shoulder] = arm
            pose[out, elbow] = torch.stack([torch.zeros(k), -side * uniform(k, 0.0, 1.5, g), torch.zeros(k)], -1)
            pose[out, wrist] = uniform((k, 3), -0.5, 0.5, g)
    return limit(pose)


def _arms(p: Tensor, g: torch.Generator, down: tuple[float, float], forward: tuple[float, float] = (-0.3, 0.3)) -> None:
    n = p.shape[0]
    p[:, L_SHOULDER, Z] += -uniform(n, *down, g)
    p[:, R_SHOULDER, Z] += uniform(n, *down, g)
    p[:, L_SHOULDER, Y] += uniform(n, *forward, g)
    p[:, R_SHOULDER, Y] -= uniform(n, *forward, g)
    bend = uniform(n, 0.0, 0.8, g)
    p[:, L_ELBOW, Y] -= bend
    p[:, R_ELBOW, Y] += bend * uniform(n, 0.6, 1.4, g)


def _standing(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    _arms(p, g, (1.0, 1.45))
    return p


def _walking(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    swing = uniform(n, -0.5, 0.5, g)
    p[:, L_HIP, X] += swing
    p[:, R_HIP, X] -= swing
    p[:, L_KNEE, X] += uniform(n, 0.0, 0.7, g)
    p[:, R_KNEE, X] += uniform(n, 0.0, 0.7, g)
    _arms(p, g, (1.1, 1.4))
    p[:, L_SHOULDER, X] -= 0.6 * swing
    p[:, R_SHOULDER, X] += 0.6 * swing
    return p


def _sitting_chair(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    for hip, knee, sign in ((L_HIP, L_KNEE, 1.0), (R_HIP, R_KNEE, -1.0)):
        p[:, hip, X] -= uniform(n, 1.3, 1.75, g)
        p[:, hip, Z] += sign * uniform(n, 0.0, 0.3, g)
        p[:, knee, X] += uniform(n, 1.1, 1.8, g)
    p[:, SPINE1, X] += uniform(n, -0.1, 0.3, g)
    _arms(p, g, (0.9, 1.4), (0.0, 0.6))
    return p


def _sitting_floor(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    for hip, knee, sign in ((L_HIP, L_KNEE, 1.0), (R_HIP, R_KNEE, -1.0)):
        p[:, hip, X] -= uniform(n, 1.3, 1.7, g)
        p[:, hip, Z] += sign * uniform(n, 0.0, 0.6, g)
        p[:, knee, X] += uniform(n, 0.0, 2.2, g)
    p[:, SPINE1, X] += uniform(n, 0.0, 0.4, g)
    _arms(p, g, (0.8, 1.4), (0.0, 0.5))
    return p


def _lying(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    p[:, L_HIP, X] -= uniform(n, -0.2, 0.9, g)
    p[:, R_HIP, X] -= uniform(n, -0.2, 0.9, g)
    p[:, L_KNEE, X] += uniform(n, 0.0, 1.2, g)
    p[:, R_KNEE, X] += uniform(n, 0.0, 1.2, g)
    _arms(p, g, (-0.5, 1.5), (-0.5, 0.8))
    return p


def _kneeling(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    for hip, knee in ((L_HIP, L_KNEE), (R_HIP, R_KNEE)):
        p[:, hip, X] -= uniform(n, -0.1, 0.6, g)
        p[:, knee, X] += uniform(n, 1.4, 2.3, g)
    _arms(p, g, (0.8, 1.4), (0.0, 0.6))
    return p


def _crouching(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        p[:, hip, X] -= uniform(n, 1.7, 2.3, g)
        p[:, knee, X] += uniform(n, 2.0, 2.5, g)
        p[:, ankle, X] -= uniform(n, 0.2, 0.5, g)
    p[:, SPINE1, X] += uniform(n, 0.1, 0.5, g)
    _arms(p, g, (0.6, 1.3), (0.2, 0.8))
    return p


def _bending(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    bend = uniform(n, 0.5, 1.4, g)
    p[:, L_HIP, X] -= bend
    p[:, R_HIP, X] -= bend
    p[:, L_KNEE, X] += uniform(n, 0.0, 0.6, g)
    p[:, R_KNEE, X] += uniform(n, 0.0, 0.6, g)
    for spine in (SPINE1, SPINE2, SPINE3):
        p[:, spine, X] += uniform(n, 0.1, 0.4, g)
    _arms(p, g, (1.0, 1.5), (0.0, 0.8))
    return p


def _reaching_up(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    p[:, L_SHOULDER, Z] += uniform(n, 0.6, 1.5, g)
    p[:, R_SHOULDER, Z] -= uniform(n, -1.3, 1.5, g)  # sometimes one arm only
    p[:, L_ELBOW, Y] -= uniform(n, 0.0, 0.6, g)
    p[:, R_ELBOW, Y] += uniform(n, 0.0, 0.6, g)
    p[:, SPINE3, X] -= uniform(n, 0.0, 0.2, g)
    return p


def _falling(n: int, g: torch.Generator) -> Tensor:
    p = 0.6 * torch.randn(n, 23, 3, generator=g) * (JOINT_LIMITS.to(g.device)[:, None] / 2.5)
    p[:, L_HIP, X] -= uniform(n, -0.5, 1.5, g)
    p[:, R_HIP, X] -= uniform(n, -0.5, 1.5, g)
    p[:, L_KNEE, X] += uniform(n, 0.0, 1.5, g)
    p[:, R_KNEE, X] += uniform(n, 0.0, 1.5, g)
    _arms(p, g, (-0.8, 1.2), (-0.6, 1.0))
    return p


def _getting_up(n: int, g: torch.Generator) -> Tensor:
    p = torch.zeros(n, 23, 3)
    p[:, L_HIP, X] -= uniform(n, 0.6, 2.0, g)
    p[:, R_HIP, X] -= uniform(n, 0.0, 1.6, g)
    p[:, L_KNEE, X] += uniform(n, 0.5, 2.3, g)
    p[:, R_KNEE, X] += uniform(n, 1.0, 2.3, g)
    p[:, SPINE1, X] += uniform(n, 0.0, 0.5, g)
    _arms(p, g, (0.4, 1.4), (0.3, 1.2))
    return p


TEMPLATES = {
    "standing": _standing, "walking": _walking, "sitting_chair": _sitting_chair, "sitting_floor": _sitting_floor,
    "lying": _lying, "kneeling": _kneeling, "crouching": _crouching, "bending": _bending,
    "reaching_up": _reaching_up, "falling": _falling, "getting_up": _getting_up,
}  # fmt: skip


def sample_global_orient(names: list[str], g: torch.Generator) -> Tensor:
    """Body-to-world rotations ``[n, 3, 3]`` (world Z up): a random heading, plus lying on the
    back / side / front, tilting mid-fall, or leaning forward when getting up."""
    n = len(names)
    posture = {name: kind for name, _, kind in ACTIVITIES}
    yaw = uniform(n, -math.pi, math.pi, g)
    tilt = torch.zeros(n)
    roll = torch.zeros(n)
    for i, name in enumerate(names):
        kind = posture[name]
        if kind == "lying":
            tilt[i] = -math.pi / 2  # on the back; roll turns it to a side or the front
            roll[i] = float(torch.randint(0, 4, (1,), generator=g)) * math.pi / 2 + 0.2 * float(torch.randn(1, generator=g))
        elif kind == "falling":
            tilt[i] = float(uniform(1, -1.4, 1.4, g))
            roll[i] = float(uniform(1, -0.8, 0.8, g))
        elif kind == "floor":
            tilt[i] = float(uniform(1, 0.2, 1.0, g))
        else:
            tilt[i] = 0.08 * float(torch.randn(1, generator=g))
    # body Y up -> world Z up (rotate +90 deg about X), then tilt about X, roll about the body's
    # long axis, and heading about world Z.
    up = rot_x(torch.full((n,), math.pi / 2))
    return rot_z(yaw) @ rot_x(tilt) @ up @ rot_y(roll)


def rot_x(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(-1, 3, 3)


def rot_y(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(-1, 3, 3)


def rot_z(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(-1, 3, 3)
