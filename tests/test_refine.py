"""engine.heatformer.refine: the Levenberg-Marquardt fit after HeatFormer, on known geometry."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

from core.camera import looking_at
from core.types import COCO17_MIRROR as MIRROR
from engine.body import BodyModel
from engine.heatformer.refine import DEFAULT as DEFAULT_SETTINGS
from engine.heatformer.refine import (
    exp_so3,
    float64_body,
    mirror_distance,
    refine_world,
    refine_world_seen,
    settle_mirrored,
    turn,
)

UP = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)  # body Y up -> world Z up
ARMS = (16, 17, 18, 19, 20, 21)  # shoulders, elbows, wrists
CAMERAS = [looking_at(f"c{i}", (3.0 * np.cos(a), 3.0 * np.sin(a), 1.5)) for i, a in enumerate((0.3, 1.9, 3.4, 5.0))]


def scene(body: BodyModel, people: int, seed: int) -> dict[str, torch.Tensor]:
    """People in a 4-camera room: their true bodies, exact pixels, and a start with the arms
    turned by about 0.5 rad and the shape and place off (what HeatFormer gets wrong on real data)."""
    g = torch.Generator().manual_seed(seed)
    rot = exp_so3(0.3 * torch.randn(people, 24, 3, generator=g, dtype=torch.float64))
    rot[:, 0] = UP
    betas = 0.8 * torch.randn(people, 10, generator=g, dtype=torch.float64)
    transl = torch.tensor([[0.1, 0.2, 0.9]], dtype=torch.float64) + 0.3 * torch.randn(people, 3, generator=g, dtype=torch.float64)
    kp = body.joints_rotmat(betas, rot).keypoints + transl[:, None]
    K, R, t = (torch.as_tensor(np.stack([getattr(c, a) for c in CAMERAS]))[None].repeat(people, 1, 1, *([1] * (a != "t")))
               for a in ("K", "R", "t"))  # fmt: skip
    cam = torch.einsum("nvij,nkj->nvki", R, kp) + t[:, :, None]
    uvw = torch.einsum("nvij,nvkj->nvki", K, cam)
    start = rot.clone()
    for j in ARMS:
        start[:, j] = start[:, j] @ exp_so3(0.5 * torch.randn(people, 3, generator=g, dtype=torch.float64))
    return {"rot": rot, "betas": betas, "transl": transl, "kp": kp, "pixels": uvw[..., :2] / uvw[..., 2:3], "K": K, "R": R,
            "t": t, "start": start, "start_betas": betas + 0.7 * torch.randn(people, 10, generator=g, dtype=torch.float64),
            "start_transl": transl + 0.03}  # fmt: skip


def keypoint_error_mm(
    body: BodyModel, rot: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, truth: torch.Tensor
) -> np.ndarray:
    kp = body.joints_rotmat(betas, rot).keypoints + transl[:, None]
    return ((kp - truth).norm(dim=-1).mean(dim=-1) * 1000).numpy()


def test_exp_so3_is_a_rotation_and_turn_inverts_it_for_small_angles() -> None:
    v = torch.tensor([[0.0, 0.0, 0.0], [1e-9, 0.0, 0.0], [0.1, -0.2, 0.05], [1.0, 2.0, -0.5]], dtype=torch.float64)
    R = exp_so3(v)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(turn(R[:3]), v[:3], atol=2e-3)  # sin(angle) x axis
    angle = v[3].norm()
    assert torch.allclose(turn(R[3]), torch.sin(angle) * v[3] / angle, atol=1e-12)


def test_refinement_pulls_the_arms_onto_the_keypoints_of_every_view(body: BodyModel) -> None:
    body64 = float64_body(body)
    s = scene(body64, 2, seed=3)
    noisy = s["pixels"] + 2.0 * torch.randn(s["pixels"].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    noisy[0, 0, 9] += 80.0  # one wrist 80 px off in one view (a detector's mistake)
    conf = torch.full(noisy.shape[:3], 0.9, dtype=torch.float64)
    before = keypoint_error_mm(body64, s["start"], s["start_betas"], s["start_transl"], s["kp"])
    rot, betas, transl = refine_world(
        body64, s["start"], s["start_betas"], s["start_transl"], noisy, conf, s["K"], s["R"], s["t"]
    )
    after = keypoint_error_mm(body64, rot, betas, transl, s["kp"])
    # HeatFormer's answer is the prior, so a start this far off is pulled most of the way, not all.
    assert (before > 60).all() and (after < 0.5 * before).all() and after[1] < 25, (before, after)
    # Several people are one batched call, each solved as if alone.
    alone = refine_world(body64, s["start"][1:], s["start_betas"][1:], s["start_transl"][1:], noisy[1:], conf[1:],
                         s["K"][1:], s["R"][1:], s["t"][1:])  # fmt: skip
    assert torch.allclose(alone[0], rot[1:], atol=1e-6) and torch.allclose(alone[2], transl[1:], atol=1e-6)


def test_without_evidence_the_body_stays_where_heatformer_put_it(body: BodyModel) -> None:
    """Keypoints of confidence 0 leave only the prior: the answer stays HeatFormer's."""
    body64 = float64_body(body)
    s = scene(body64, 1, seed=5)
    conf = torch.zeros(s["pixels"].shape[:3], dtype=torch.float64)
    rot, betas, transl = refine_world(body64, s["start"], s["start_betas"], s["start_transl"], s["pixels"], conf, s["K"], s["R"],
                                      s["t"])  # fmt: skip
    assert torch.allclose(rot, s["start"], atol=1e-6) and torch.allclose(betas, s["start_betas"], atol=1e-6)
    assert torch.allclose(transl, s["start_transl"], atol=1e-6)


def test_analytic_jacobian_matches_finite_differences(body: BodyModel) -> None:
    """The normal equations from the rotations' analytic columns, the betas' unit steps and the
    priors' blocks against those of forward differences of the whole residual, with keypoint
    offsets, a previous body, two people and a keypoint not seen; and with no keypoint seen (the
    priors' blocks alone)."""
    from engine.heatformer.offsets import offset_body
    from engine.heatformer.refine import DEFAULT, _WorldFit

    offsets = np.zeros((17, 3))
    offsets[[0, 5, 6, 11, 12, 15, 16]] = [[0, 0, -0.07], [0.01, 0.03, 0], [-0.01, 0.03, 0], [0, -0.04, 0.01], [0, -0.04, 0.01],
                                           [0, 0.05, 0], [0, 0.05, 0]]  # fmt: skip
    for moved in (float64_body(body), offset_body(body, offsets, torch.float64)):
        s = scene(moved, 2, seed=3)
        conf = torch.full(s["pixels"].shape[:3], 0.9, dtype=torch.float64)
        conf[0, 1, 3] = 0.0
        fit = _WorldFit(moved, s["start"], s["start_betas"], s["pixels"] + 3.0, conf, s["K"], s["R"], s["t"], s["rot"], DEFAULT)
        state = (s["start"], s["start_betas"] + 0.3, s["start_transl"])
        assert fit.analytic
        base, analytic = fit.linearize(*state)
        fit.analytic = False
        base_fd, numeric = fit.linearize(*state)
        assert torch.equal(base, base_fd)
        for w in (fit.weights(base, 0.1), torch.zeros_like(conf)):  # the keypoints weighed, then none (the priors alone)
            r = fit.residual(base, state[0], state[1], w)
            assert r.shape == (2, 4 * 34 + 72 + 10 + 69)
            (JtJ_a, g_a), (JtJ_n, g_n) = analytic(w, r), numeric(w, r)
            assert JtJ_a.shape == JtJ_n.shape == (2, 85, 85) and g_a.shape == g_n.shape == (2, 85)
            assert (JtJ_a - JtJ_n).abs().max() < 1e-4 * JtJ_n.abs().max(), (JtJ_a - JtJ_n).abs().max()
            assert (g_a - g_n).abs().max() < 1e-4 * g_n.abs().max(), (g_a - g_n).abs().max()
            assert JtJ_n.diagonal(dim1=1, dim2=2)[:, 72:82].min() >= 0.25 - 1e-6  # the betas' prior: 1 / 2^2 at least
        assert JtJ_n[:, :72, :72].abs().max() < 1e3  # the priors alone (the data term's rotations reach 1e4 and more above)


def test_a_body_with_pose_corrective_shapes_takes_finite_differences(body: BodyModel) -> None:
    from engine.heatformer.offsets import offset_body

    shaped = copy.deepcopy(offset_body(body, None, torch.float64))
    shaped.posedirs.normal_(0.0, 1e-4, generator=torch.Generator().manual_seed(0))
    shaped.kp_posedirs.copy_(shaped.posedirs.reshape(207, -1, 3)[:, shaped.kp_support].reshape(207, -1))
    shaped.has_posedirs = True
    s = scene(shaped, 1, seed=3)
    conf = torch.full(s["pixels"].shape[:3], 0.9, dtype=torch.float64)
    rot, betas, transl = refine_world(shaped, s["start"], s["start_betas"], s["start_transl"], s["pixels"], conf, s["K"], s["R"],
                                      s["t"])  # fmt: skip
    before = keypoint_error_mm(shaped, s["start"], s["start_betas"], s["start_transl"], s["kp"])
    after = keypoint_error_mm(shaped, rot, betas, transl, s["kp"])
    assert after[0] < 0.5 * before[0], (before, after)


def view_scene(body64: BodyModel, people: int, views: int, seed: int, focal: float = 1.8) -> dict[str, torch.Tensor]:
    """People seen by uncalibrated views: one pose and shape each, a root turn and a placement per
    view, seen through a lens of ``focal`` crop units (1.8: the person about 3 m away) with its
    principal point near the crop's centre; their exact crop keypoints, noisy ones, and a start with
    the pose turned."""
    from engine.heatformer.refine import _ViewFit

    g = torch.Generator().manual_seed(seed)
    lens = torch.cat([torch.full((people, views, 1), focal, dtype=torch.float64),
                      0.5 + 0.2 * torch.randn(people, views, 2, generator=g, dtype=torch.float64)], -1)  # fmt: skip
    pose = exp_so3(0.3 * torch.randn(people, 23, 3, generator=g, dtype=torch.float64))
    roots = exp_so3(torch.randn(people, views, 3, generator=g, dtype=torch.float64))
    betas = 0.5 * torch.randn(people, 10, generator=g, dtype=torch.float64)
    cam = torch.cat([torch.full((people, views, 1), 0.2, dtype=torch.float64),
                     0.05 * torch.randn(people, views, 2, generator=g, dtype=torch.float64)], -1)  # fmt: skip
    state = torch.cat([pose, roots], 1)
    probe = _ViewFit(body64, state, betas, torch.zeros(people, views, 17, 2, dtype=torch.float64),
                     torch.ones(people, views, 17, dtype=torch.float64), lens, DEFAULT_SETTINGS)  # fmt: skip
    exact = probe.predict(state, betas, cam.reshape(people, -1))
    start = torch.cat([pose @ exp_so3(0.2 * torch.randn(people, 23, 3, generator=g, dtype=torch.float64)), roots], 1)
    return {"pose": pose, "roots": roots, "betas": betas, "cam": cam, "lens": lens, "exact": exact, "start": start,
            "noisy": exact + 0.003 * torch.randn(exact.shape, generator=g, dtype=torch.float64)}  # fmt: skip


def test_uncalibrated_views_fit_one_body_and_their_analytic_jacobian_is_right(body: BodyModel) -> None:
    from engine.heatformer.refine import _ViewFit, refine_views

    body64 = float64_body(body)
    s = view_scene(body64, 2, 3, seed=0)
    conf = torch.full(s["exact"].shape[:3], 0.9, dtype=torch.float64)
    conf[0, 1, 4] = 0.0
    fit = _ViewFit(body64, s["start"], s["betas"] + 0.3, s["noisy"], conf, s["lens"], DEFAULT_SETTINGS)
    turned = s["start"] @ exp_so3(torch.full((2, 26, 3), 0.05, dtype=torch.float64))  # away from the prior, so that it pulls
    state = (turned, s["betas"] + 0.5, s["cam"].reshape(2, -1) + 0.02)
    base, analytic = fit.linearize(*state)
    fit.analytic = False
    _, numeric = fit.linearize(*state)
    for w in (fit.weights(base, 0.1), torch.zeros_like(conf)):  # the keypoints weighed, then none (the priors alone)
        r = fit.residual(base, state[0], state[1], w)
        assert r.shape == (2, 3 * 34 + 3 * (23 + 3) + 10)
        (JtJ_a, g_a), (JtJ_n, g_n) = analytic(w, r), numeric(w, r)
        assert JtJ_a.shape == JtJ_n.shape == (2, 3 * (23 + 3) + 10 + 9, 3 * (23 + 3) + 10 + 9)
        assert (JtJ_a - JtJ_n).abs().max() < 1e-4 * JtJ_n.abs().max()
        assert (g_a - g_n).abs().max() < 1e-4 * g_n.abs().max()
    # From the turned start, the fit comes back onto the keypoints of every view, one pose for all.
    full = torch.cat([s["start"][:, 23:, None], s["start"][:, None, :23].expand(2, 3, 23, 3, 3)], 2)
    rot, betas, cam = refine_views(body64, full, s["betas"] + 0.3, s["cam"] + 0.02, s["noisy"], conf, s["lens"])
    assert torch.equal(rot[:, 0, 1:], rot[:, 2, 1:])  # one pose, shared by the views
    probe = _ViewFit(body64, s["start"], s["betas"], s["noisy"], conf, s["lens"], DEFAULT_SETTINGS)
    before = (probe.predict(s["start"], s["betas"] + 0.3, (s["cam"] + 0.02).reshape(2, -1)) - s["exact"]).norm(dim=-1).mean()
    fitted = torch.cat([rot[:, 0, 1:], rot[:, :, 0]], 1)
    after = (probe.predict(fitted, betas, cam.reshape(2, -1)) - s["exact"]).norm(dim=-1).mean()
    assert before > 0.05 and after < 0.006, (before, after)  # crop units; the noise is 0.003 per axis
    pose_before = turn(s["pose"].transpose(-1, -2) @ s["start"][:, :23]).norm(dim=-1).mean()
    pose_after = turn(s["pose"].transpose(-1, -2) @ rot[:, 0, 1:]).norm(dim=-1).mean()
    assert pose_after < pose_before


def test_one_view_holds_depth_to_the_prior_and_its_jacobian_stays_exact(body: BodyModel) -> None:
    """One view shows nothing of depth: a forearm drawn 10 % short is explained by the isotropic prior
    as a forearm tilted out of the image, and by the one-view prior (turns about the image's axes at
    ``prior_depth_rot``) mostly not; the weighted prior's Jacobian is still the finite differences'."""
    from engine.heatformer.refine import _levenberg_marquardt, _ViewFit

    body64 = float64_body(body)
    s = view_scene(body64, 1, 1, seed=3)
    short = s["exact"].clone()
    short[0, 0, 9] = short[0, 0, 7] + 0.9 * (short[0, 0, 9] - short[0, 0, 7])  # left wrist towards the elbow
    conf = torch.full(short.shape[:3], 0.9, dtype=torch.float64)
    truth = torch.cat([s["pose"], s["roots"]], 1)  # HeatFormer right: the prior is the truth
    isotropic = replace(DEFAULT_SETTINGS, prior_depth_rot=DEFAULT_SETTINGS.prior_rot)
    tilt = []
    for settings in (isotropic, DEFAULT_SETTINGS):
        fit = _ViewFit(body64, truth, s["betas"], short, conf, s["lens"], settings)
        assert (fit.depth_weights is None) == (settings is isotropic)
        state, _ = _levenberg_marquardt(fit, truth, s["betas"], s["cam"].reshape(1, -1), settings)
        before, after = fit._relative(truth, s["betas"])[0], fit._relative(state[0], state[1])[0]
        forearm = lambda kp: kp[0, 9] - kp[0, 7]  # noqa: E731  # camera frame, metres
        tilt.append(float((forearm(after)[2] - forearm(before)[2]).abs()))
        drawn = fit.predict(*state)[0, 0, 9]
        assert (drawn - short[0, 0, 9]).norm() < (s["exact"][0, 0, 9] - short[0, 0, 9]).norm()  # towards the short wrist
    assert tilt[0] > 0.015 and tilt[1] < 0.5 * tilt[0], tilt  # metres the wrist moved in depth: 0.024 and 0.009
    fit = _ViewFit(body64, truth, s["betas"], short, conf, s["lens"], DEFAULT_SETTINGS)
    turned = truth @ exp_so3(torch.full((1, 24, 3), 0.05, dtype=torch.float64))
    state = (turned, s["betas"] + 0.2, s["cam"].reshape(1, -1) + 0.02)
    base, analytic = fit.linearize(*state)
    fit.analytic = False
    _, numeric = fit.linearize(*state)
    for w in (fit.weights(base, 0.1), torch.zeros_like(conf)):  # the keypoints weighed, then the priors alone
        r = fit.residual(base, state[0], state[1], w)
        (JtJ_a, g_a), (JtJ_n, g_n) = analytic(w, r), numeric(w, r)
        assert (JtJ_a - JtJ_n).abs().max() < 1e-4 * JtJ_n.abs().max()
        assert (g_a - g_n).abs().max() < 1e-4 * g_n.abs().max()


def test_one_view_prior_weighs_each_turn_by_its_axis_in_the_camera(body: BodyModel) -> None:
    """A joint turned by 0.1 rad from the prior about the camera's x or y axis costs
    sin(0.1) / prior_depth_rot, about the line of sight sin(0.1) / prior_rot; no other rotation's
    prior moves. The joint frames in the camera come from the body model's own transforms."""
    from engine.heatformer.refine import _ViewFit, each_view

    body64 = float64_body(body)
    s = view_scene(body64, 1, 1, seed=5)
    state = torch.cat([s["pose"], s["roots"]], 1)  # the prior: [1, 23 + 1, 3, 3]
    conf = torch.full(s["exact"].shape[:3], 0.9, dtype=torch.float64)
    fit = _ViewFit(body64, state, s["betas"], s["exact"], conf, s["lens"], DEFAULT_SETTINGS)
    out = body64.joints_rotmat(s["betas"], each_view(state, 1)[:, 0])
    assert out.transforms is not None
    frames = out.transforms[0, :, :, :3]  # each joint's frame in the camera
    cam, none = s["cam"].reshape(1, -1), torch.zeros_like(conf)
    for joint in (4, 18, 21):  # left knee, left elbow, right wrist
        for axis, sigma in ((0, DEFAULT_SETTINGS.prior_depth_rot), (1, DEFAULT_SETTINGS.prior_depth_rot),
                            (2, DEFAULT_SETTINGS.prior_rot)):  # fmt: skip
            about = frames[joint].T @ torch.eye(3, dtype=torch.float64)[axis]  # the camera axis in the joint's frame
            turned = state.clone()
            turned[0, joint - 1] = state[0, joint - 1] @ exp_so3(0.1 * about)
            r = fit.residual(fit.predict(turned, s["betas"], cam), turned, s["betas"], none)
            prior = r[0, 34 : 34 + 3 * 24].reshape(24, 3)  # after the data rows (one view: 17 x 2), before the betas
            assert abs(float(prior[joint - 1].norm()) - np.sin(0.1) / sigma) < 1e-9, (joint, axis)
            assert float(torch.cat([prior[: joint - 1], prior[joint:]]).abs().max()) < 1e-12


def test_a_thread_that_traces_aside_keeps_fitting_while_the_trace_is_made(body: BodyModel) -> None:
    """A live body thread (engine.runner) makes its traces on a helper thread: the call that would
    trace returns the fit's own answer at once, the helper (after its setup) leaves the trace and
    its executor's first runs ready, and the next calls go through it with the same answers. Other
    threads still trace on the spot."""
    import threading
    import time

    import engine.heatformer.refine as refine

    body64 = float64_body(body)
    refine._TRACES.pop(body64, None)
    s = scene(body64, 1, seed=31)
    args = [s[k] for k in ("start", "start_betas", "start_transl", "pixels")]
    args += [torch.full(s["pixels"].shape[:3], 0.8, dtype=torch.float64), s["K"], s["R"], s["t"]]
    with torch.no_grad():
        own = refine._fit_world(body64, DEFAULT_SETTINGS, *args)[0]
    helpers: list[str] = []
    seen: list[object] = []
    failed: list[BaseException] = []

    def live() -> None:
        try:
            checks()
        except BaseException as exc:  # an assertion in a thread would not fail the test by itself
            failed.append(exc)

    def checks() -> None:
        refine.trace_aside(lambda: helpers.append(threading.current_thread().name))
        for _ in range(refine.TRACE_AFTER):
            answer = refine_world(body64, *args)
            assert all(torch.allclose(a, b, atol=1e-12, rtol=0) for a, b in zip(own, answer, strict=True))
        seen.append(next(iter(refine._TRACES[body64].values())))  # right after the call that would have traced
        deadline = time.monotonic() + 60
        while not callable(next(iter(refine._TRACES[body64].values()))) and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = refine_world(body64, *args)  # through the trace now
        assert all(torch.allclose(a, b, atol=1e-12, rtol=0) for a, b in zip(own, answer, strict=True))

    began = time.perf_counter()
    thread = threading.Thread(target=live)
    thread.start()
    thread.join(120)
    assert not thread.is_alive() and not failed, failed
    assert seen == [refine.PENDING] and helpers == ["refine-trace"]
    assert [callable(t) for t in refine._TRACES[body64].values()] == [True]
    # the helper's trace is noted with when it was made (engine.benchmark keeps it out of its measure)
    made = [t for t in refine.trace_times() if t[0] > began]
    assert len(made) == 1 and made[0][0] < made[0][1] < time.perf_counter()
    # this thread did not ask: a new shape is traced on the spot, on its TRACE_AFTER-th call
    two = scene(body64, 2, seed=32)
    more = [two[k] for k in ("start", "start_betas", "start_transl", "pixels")]
    more += [torch.full(two["pixels"].shape[:3], 0.8, dtype=torch.float64), two["K"], two["R"], two["t"]]
    for _ in range(refine.TRACE_AFTER):
        refine_world(body64, *more)
    assert [callable(t) for t in refine._TRACES[body64].values()] == [True, True]
    made = [t for t in refine.trace_times() if t[0] > began]
    assert len(made) == 2 and made[0][1] <= made[1][0] < made[1][1] < time.perf_counter()  # the second on the spot, after
    refine._TRACES.pop(body64, None)


def test_the_traced_fits_give_the_fits_own_answers_for_new_data_and_shapes(body: BodyModel, monkeypatch, caplog) -> None:
    """The fits run through a trace per shape (engine.heatformer.refine._run): on other data of the
    same shapes the trace must still answer as the fit itself does (nothing of the first data kept),
    a new count of people gets its own trace, and a tracer failure leaves the fit running as it is."""
    import engine.heatformer.refine as refine

    body64 = float64_body(body)
    refine._TRACES.pop(body64, None)
    s1 = scene(body64, 1, seed=20)
    conf1 = torch.full(s1["pixels"].shape[:3], 0.8, dtype=torch.float64)
    for _ in range(refine.TRACE_AFTER):  # traced on the TRACE_AFTER-th call with these shapes, not before
        assert not any(callable(t) for t in refine._TRACES.get(body64, {}).values())
        refine_world(body64, s1["start"], s1["start_betas"], s1["start_transl"], s1["pixels"], conf1, s1["K"], s1["R"], s1["t"])
    assert [callable(t) for t in refine._TRACES[body64].values()] == [True]
    refine._TRACES.pop(body64, None)
    monkeypatch.setattr(refine, "TRACE_AFTER", 1)  # from here on, every new shape is traced at once

    def world(s: dict[str, torch.Tensor], previous: torch.Tensor | None = None) -> list[torch.Tensor]:
        return [s[k] for k in ("start", "start_betas", "start_transl", "pixels")] + [
            torch.full(s["pixels"].shape[:3], 0.8, dtype=torch.float64), s["K"], s["R"], s["t"]] + (
            [] if previous is None else [previous])  # fmt: skip

    runs = [(scene(body64, 1, seed=21), None), (scene(body64, 1, seed=22), None), (scene(body64, 2, seed=23), None)]
    runs.append((runs[2][0], runs[2][0]["rot"]))  # a previous body: another trace
    for s, previous in runs:
        args = world(s, previous)
        with torch.no_grad():
            own = refine._fit_world(body64, DEFAULT_SETTINGS, *args)[0]
        traced, seen = refine.refine_world_seen(body64, *args[:8], previous)
        assert all(torch.allclose(a, b, atol=1e-12, rtol=0) for a, b in zip(own, traced, strict=True))
        # the fit's own keypoints of the bodies it returns (the mirrored views' check takes them)
        with torch.no_grad():
            keypoints = body64.joints_rotmat(traced[1], traced[0]).keypoints
        assert keypoints is not None
        again = refine._pinhole(keypoints + traced[2][:, None], *args[5:8])[0]
        assert torch.allclose(seen, again, atol=1e-9, rtol=0)
    traces = refine._TRACES[body64]
    assert len(traces) == 3 and all(t is not None for t in traces.values())
    # the uncalibrated fit too
    v = view_scene(body64, 2, 4, seed=4)
    conf = torch.full(v["exact"].shape[:3], 0.9, dtype=torch.float64)
    with torch.no_grad():
        own = refine._fit_views(body64, DEFAULT_SETTINGS, v["start"], v["betas"], v["cam"].reshape(2, -1), v["noisy"], conf,
                                v["lens"])[0]  # fmt: skip
    rot, betas, cam = refine.refine_views(body64, refine.each_view(v["start"], 4), v["betas"], v["cam"], v["noisy"], conf,
                                          v["lens"])  # fmt: skip
    assert torch.allclose(refine.each_view(own[0], 4), rot, atol=1e-12, rtol=0) and torch.allclose(own[1], betas, atol=1e-12)
    # no tracer: the same answers, said once in the log
    refine._TRACES.pop(body64, None)

    def broken(*args, **kwargs):
        raise RuntimeError("tracer unavailable")

    monkeypatch.setattr(torch.jit, "trace", broken)
    s, _ = runs[0]
    args = world(s)
    with caplog.at_level("WARNING", logger="engine.heatformer.refine"):
        first = refine_world(body64, *args[:8])
        again = refine_world(body64, *args[:8])
    with torch.no_grad():
        own = refine._fit_world(body64, DEFAULT_SETTINGS, *args)[0]
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(own, first, again, strict=True))
    assert [r.message for r in caplog.records] == ["refinement: running untraced (tracer unavailable)"]


def test_the_assumed_lens_and_its_projection_on_known_numbers() -> None:
    from engine.heatformer.refine import assumed_lens, project_view

    lens = assumed_lens(torch.tensor([[640.0, 480.0]], dtype=torch.float64), torch.tensor([[100.0, 50.0, 200.0]]).double(), 90.0)
    assert torch.allclose(lens, torch.tensor([[1.6, 1.1, 0.95]], dtype=torch.float64))  # 320 px focal, centre (320, 240)
    upright = assumed_lens(torch.tensor([480.0, 640.0], dtype=torch.float64), torch.tensor([0.0, 0.0, 100.0]).double(), 90.0)
    assert torch.allclose(upright, torch.tensor([3.2, 2.4, 3.2], dtype=torch.float64))  # the same lens, turned upright
    cam = torch.tensor([0.2, 0.05, -0.1], dtype=torch.float64)
    lens = torch.tensor([1.8, 0.4, 0.6], dtype=torch.float64)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, -0.5], [0.3, -0.2, 0.5]], dtype=torch.float64)
    crop = project_view(points, cam, lens)
    s = 0.5 * np.exp(0.2)  # crop units per metre at the mid-hip's depth, which is 1.8 / s
    assert torch.allclose(crop[0], torch.tensor([0.55, 0.4], dtype=torch.float64))  # the mid-hip where cam puts it
    depth = 1.8 / s
    place = np.array([(0.55 - 0.4) / s, (0.4 - 0.6) / s])
    near = 1.8 * (np.array([0.3, -0.2]) + place) / (depth - 0.5) + np.array([0.4, 0.6])
    assert np.allclose(crop[1].numpy(), near)  # nearer the camera: larger, as a pinhole sees it
    assert (crop[1] - crop[0]).norm() > s * 0.3606 > (crop[2] - crop[0]).norm()  # |(0.3, -0.2)| = 0.3606 m
    far = project_view(points, cam, torch.tensor([1e7, 0.4, 0.6], dtype=torch.float64))  # a very long lens ...
    weak = s * points[:, :2] + 0.5 + cam[1:]  # ... is HeatFormer's weak perspective
    assert torch.allclose(far, weak, atol=1e-6)


def test_uncalibrated_views_seen_close_fit_better_through_their_lens_than_by_weak_perspective(body: BodyModel) -> None:
    from engine.heatformer.refine import refine_views

    body64 = float64_body(body)
    s = view_scene(body64, 3, 4, seed=7, focal=1.0)  # about 1.6 m away: strong perspective
    conf = torch.full(s["exact"].shape[:3], 0.9, dtype=torch.float64)
    full = torch.cat([s["start"][:, 23:, None], s["start"][:, None, :23].expand(3, 4, 23, 3, 3)], 2)
    full_truth = torch.cat([s["roots"][:, :, None], s["pose"][:, None].expand(3, 4, 23, 3, 3)], 2).reshape(12, 24, 3, 3)

    def keypoints_mm(rot: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:  # in each view's camera, mid-hip-relative
        kp = body64.joints_rotmat(betas.repeat_interleave(4, 0), rot.reshape(12, 24, 3, 3)).keypoints
        return 1000 * (kp - 0.5 * (kp[:, 11:12] + kp[:, 12:13]))

    truth = keypoints_mm(full_truth, s["betas"])
    errors = {"start": float((keypoints_mm(full, s["betas"]) - truth).norm(dim=-1).mean())}
    for name, focal in (("lens", 1.0), ("weak", 1e7)):
        lens = s["lens"].clone()
        lens[..., 0] = focal
        rot, betas, _ = refine_views(body64, full, s["betas"], s["cam"], s["noisy"], conf, lens)
        errors[name] = float((keypoints_mm(rot, betas) - truth).norm(dim=-1).mean())
    assert errors["lens"] < 0.5 * errors["weak"] and errors["lens"] < 0.5 * errors["start"], errors


def test_a_view_with_left_and_right_exchanged_is_found_and_fitted_mirrored(body: BodyModel) -> None:
    """Two views from opposite sides, one person's second view mirrored (as BlazePose gives someone
    seen from behind): one other view cannot outvote it, so the plain fit lands between the two
    labellings; settle_mirrored finds that view by the body model's fit, and leaves the person whose
    views are right as they are."""
    body64 = float64_body(body)
    s = scene(body64, 2, seed=11)
    two = [0, 2]  # cameras at 0.3 and 3.4 rad: one sees the front, the other the back
    pixels, K, R, t = (s[k][:, two].clone() for k in ("pixels", "K", "R", "t"))
    pixels[0, 1] = pixels[0, 1, MIRROR]
    conf = torch.full(pixels.shape[:3], 0.9, dtype=torch.float64)
    fit = refine_world_seen(body64, s["start"], s["start_betas"], s["start_transl"], pixels, conf, K, R, t)
    fitted = fit[0]
    before = keypoint_error_mm(body64, *fitted, s["kp"])
    (rot, betas, transl), mirrored = settle_mirrored(body64, fit, pixels, conf, K, R, t)
    after = keypoint_error_mm(body64, rot, betas, transl, s["kp"])
    assert mirrored.tolist() == [[False, True], [False, False]]
    assert before[0] > 40 and after[0] < 0.5 * before[0] and after[0] < before[1] + 10, (before, after)
    assert torch.equal(rot[1], fitted[0][1]) and torch.equal(transl[1], fitted[2][1])  # the right one is kept as it was
    # The check is a setting; off, the fit is returned as it is.
    off = settle_mirrored(body64, fit, pixels, conf, K, R, t, settings=replace(DEFAULT_SETTINGS, mirror_check=False))
    assert not off[1].any() and off[0] is fitted
    # A view whose mirror image lands on itself (both sides' keypoints at the same pixels) is never tried.
    same = 0.5 * (pixels + pixels[..., MIRROR, :])
    assert (mirror_distance(same, conf) == 0).all() and (mirror_distance(pixels, conf) > DEFAULT_SETTINGS.mirror_distinct).all()
