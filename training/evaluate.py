"""Evaluate HeatFormer-S on the fixed, seeded synthetic benchmark, against the usual baseline.

    python -m training.evaluate --benchmark synthetic --json out/eval.json [--quick] [--weights FILE] [--backend NAME]

For 1, 2, 4 and 8 views, calibrated (2+ views) and uncalibrated, with 0 %, 15 % and 30 % of the
keypoints missing, it reports MPJPE, PA-MPJPE and MPVPE (mm; per view, in that camera's frame,
pelvis-aligned) after every iteration (0 = initialisation), and on the same samples the baseline
a user would otherwise pick: DLT triangulation + an optimisation fit of the body model
(calibrated), or a per-view fit to the 2D keypoints with a weak-perspective camera (uncalibrated),
both with pose and shape priors, with its accuracy and time per frame-set. Both are timed on
single frame-sets, as the app runs them (median), and "speedup" is the ratio.
The benchmark's scenes come from seeds outside the training range (training uses seeds < 1e6),
and a quarter of its bodies take poses from a CMU clip held out of training (pirouette). Two more
settings (1 view uncalibrated, 4 calibrated, no keypoints missing) give every body an everyday arm
gesture (training.synth.poses.everyday_arms), two more stand every standing, walking and reaching body on
one leg (training.synth.poses.one_leg_balance; the other activities as drawn), and every setting scores
the arms too (``pa_arms_mm``: elbows and wrists after the whole body's Procrustes alignment).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from core.outputs import check_output
from core.report import run_and_report
from engine.backends import HeatFormerRunner
from engine.body import BodyModel
from engine.body.lbs import axis_angle_to_matrix, rotation_6d_to_matrix
from engine.evaluate import BACKENDS, make_runner
from engine.heatformer.inputs import ViewInputs, prepare, triangulate_root
from engine.heatformer.model import Estimate, HeatFormer
from engine.heatformer.runtime import load_heatformer
from engine.heatformer.tta import augmented_average
from training.baseline import fit_calibrated, fit_uncalibrated
from training.metrics import ARM_JOINTS, mpjpe, mpvpe, pa_mpjpe
from training.synth.scene import NoiseModel, PoseBank, Scene, sample_scene

BENCHMARK_SEED = 1_000_003
VIEWS = (1, 2, 4, 8)
OCCLUSION = (0.0, 0.15, 0.30)
GESTURE_SEED = 1_003_001
GESTURE_SETTINGS = ((1, False), (4, True))  # (views, calibrated): everyday arm gestures, clean keypoints
BALANCE_SEED = 1_004_001
BALANCE_SETTINGS = ((1, False), (4, True))  # (views, calibrated): one-leg balance, clean keypoints
# (poses, seed, settings, sample_scene's arm_gestures and balance shares), in the benchmark's order
FAMILIES = (
    ("arm_gestures", GESTURE_SEED, GESTURE_SETTINGS, 1.0, 0.0),
    ("one_leg_balance", BALANCE_SEED, BALANCE_SETTINGS, 0.0, 1.0),
)


def camera_frame_truth(body: BodyModel, scene: Scene) -> tuple[Tensor, Tensor]:
    """Ground-truth joints ``[B*V, 24, 3]`` and vertices ``[B*V, V', 3]`` in each camera frame."""
    B, V = scene.R.shape[:2]
    orient = (scene.R @ scene.body_to_world[:, None]).reshape(B * V, 1, 3, 3)
    pose = axis_angle_to_matrix(scene.body_pose).repeat_interleave(V, dim=0)
    out = body.forward_rotmat(scene.betas.repeat_interleave(V, dim=0), torch.cat([orient, pose], dim=1))
    assert out.vertices is not None
    return out.joints, out.vertices


def estimate_bodies(body: BodyModel, state: Estimate) -> tuple[Tensor, Tensor]:
    B, V = state.orient.shape[:2]
    rot = rotation_6d_to_matrix(torch.cat([state.orient[:, :, None], state.pose], dim=2)).reshape(B * V, 24, 3, 3)
    out = body.forward_rotmat(state.betas.reshape(B * V, -1), rot)
    assert out.vertices is not None
    return out.joints, out.vertices


def score(joints: Tensor, vertices: Tensor, gt_joints: Tensor, gt_vertices: Tensor) -> dict[str, float]:
    return {
        "mpjpe_mm": round(1000 * float(mpjpe(joints, gt_joints).mean()), 1),
        "pa_mpjpe_mm": round(1000 * float(pa_mpjpe(joints, gt_joints).mean()), 1),
        "pa_arms_mm": round(1000 * float(pa_mpjpe(joints, gt_joints, ARM_JOINTS).mean()), 1),
        "mpvpe_mm": round(1000 * float(mpvpe(vertices, gt_vertices, joints[:, 0], gt_joints[:, 0]).mean()), 1),
    }


def run_setting(
    model: HeatFormer, scene: Scene, calibrated: bool, baseline_steps: int, runner: HeatFormerRunner | None = None
) -> dict[str, Any]:
    body = model.body
    gt_joints, gt_vertices = camera_frame_truth(body, scene)
    if calibrated:
        root, ok = triangulate_root(scene.observed, scene.K, scene.R, scene.t)
        truth = 0.5 * (scene.keypoints3d[:, 11] + scene.keypoints3d[:, 12])
        root = torch.where(ok[:, None], root, truth)  # (rare) failures: the app falls back to per-view mode
        inputs = prepare(scene.observed, scene.K, scene.R, scene.t, root)
    else:
        inputs = prepare(scene.observed)
    with torch.no_grad():
        states = augmented_average(model, inputs)  # one uncalibrated view: averaged over augmentations, as in the app
        run_one = runner if runner is not None else lambda x: augmented_average(model, x)
        run_one(single_inputs(scene, root if calibrated else None, 0))  # warm-up: first-call set-up is not per-frame time
        model_ms = median_ms(lambda b: run_one(single_inputs(scene, root if calibrated else None, b)), min(8, scene.R.shape[0]))
    iterations = [score(*estimate_bodies(body, s), gt_joints, gt_vertices) for s in states[:-1]]
    final_joints, final_vertices = estimate_bodies(body, states[-1])
    iterations.append(score(final_joints, final_vertices, gt_joints, gt_vertices))
    final_pa = pa_mpjpe(final_joints, gt_joints)
    backend_final = None
    if runner is not None:  # the last iteration as the chosen runtime computes it
        out = {k: torch.from_numpy(v) for k, v in runner(inputs).items()}
        final = Estimate(out["orient"], out["pose"], out["betas"], out["cam"])
        backend_final = score(*estimate_bodies(body, final), gt_joints, gt_vertices)
    refined = None
    if not calibrated:
        refined = view_refined(model, inputs, states[-1], gt_joints, gt_vertices, scene.image_size, scene.activities)
    fit = fit_calibrated if calibrated else fit_uncalibrated
    base_joints, base_vertices = fit(body, scene, inputs, baseline_steps)  # accuracy: all samples at once
    # Time: single frame-sets, the way the app would run it (and the way HeatFormer is timed).
    baseline_ms = median_ms(lambda b: fit(body, *single_scene(scene, inputs, b), baseline_steps), min(3, scene.R.shape[0]))
    return {
        "heatformer": {
            "per_iteration": iterations,
            "ms_per_frameset": round(model_ms, 2),
            "by_activity": by_activity(final_pa, scene.activities),
            **({"backend_final": backend_final} if backend_final is not None else {}),
        },  # fmt: skip
        "baseline": {**score(base_joints, base_vertices, gt_joints, gt_vertices), "ms_per_frameset": round(baseline_ms, 1)},
        "speedup": round(baseline_ms / model_ms, 1),
        **({"refined": refined} if refined is not None else {}),
    }


def view_refined(
    model: HeatFormer, inputs: ViewInputs, final: Estimate, gt_joints: Tensor, gt_vertices: Tensor, image_size: Tensor,
    activities: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Uncalibrated views: HeatFormer's final per-view bodies fitted to the views' keypoints
    (engine.heatformer.refine.refine_views: one pose and shape, a root and a placement per view,
    through a lens of the assumed field of view for the view's ``image_size`` ``[B, V, 2]``, as the
    app does: the true one is not known), scored per view like HeatFormer's, with the refinement's
    median time per frame-set; with the samples' ``activities``, PA-MPJPE per activity too."""
    from engine.heatformer.refine import assumed_lens, fit_body, float64_body, refine_views_seen, settle_mirrored_views

    fitting = fit_body(model.body)  # as the app fits
    body = float64_body(model.body)
    B, V = final.orient.shape[:2]
    rot = rotation_6d_to_matrix(torch.cat([final.orient[:, :, None], final.pose], dim=2)).double()
    lens = assumed_lens(image_size.double(), inputs.boxes.double())

    def fit(b: slice) -> tuple[Tensor, Tensor, Tensor]:
        fitted = refine_views_seen(
            fitting, rot[b], final.betas[b, 0], final.cam[b], inputs.obs_xy[b], inputs.obs_conf[b], lens[b]
        )
        return settle_mirrored_views(fitting, fitted, inputs.obs_xy[b], inputs.obs_conf[b], lens[b])[0]  # as the app does

    with torch.no_grad():
        r, betas, _ = fit(slice(None))
        out = body.forward_rotmat(betas.repeat_interleave(V, dim=0), r.reshape(B * V, 24, 3, 3))
    assert out.vertices is not None
    fit(slice(0, 1))  # warm-up
    ms = median_ms(lambda b: fit(slice(b, b + 1)), min(8, B))
    result: dict[str, Any] = score(out.joints.float(), out.vertices.float(), gt_joints, gt_vertices)
    result["ms_per_frameset"] = round(ms, 2)
    if activities is not None:
        result["by_activity"] = by_activity(pa_mpjpe(out.joints.float(), gt_joints), activities)
    return result


def by_activity(pa: Tensor, activities: list[str]) -> dict[str, dict[str, Any]]:
    """PA-MPJPE ``pa`` ``[B * V]`` (metres; per view, the views of a sample together) as the mean
    over each activity's samples (mm), with their count: where the error is. In the benchmark's
    activity settings "recorded" are the poses of the held-out CMU clip (pirouette)."""
    per_sample = pa.reshape(len(activities), -1).mean(dim=1)
    result = {}
    for name in sorted(set(activities)):
        rows = [i for i, activity in enumerate(activities) if activity == name]
        result[name] = {"samples": len(rows), "pa_mpjpe_mm": round(1000 * float(per_sample[rows].mean()), 1)}
    return result


def world_bodies(model: HeatFormer, scene: Scene, refine: bool) -> dict[str, Any]:
    """The app's calibrated path on every sample (engine.heatformer.inference.estimate_frame: the
    views fused into one world body, then refined when ``refine``), scored on the world joints
    against the truth, with the median time per frame-set. Samples without a fused body (hips seen
    in fewer than two views) are counted, not scored."""
    from engine.heatformer.inference import estimate_frame

    joints, truth, times, names = [], [], [], []
    cams = [scene.K.double().numpy(), scene.R.double().numpy(), scene.t.double().numpy()]
    observed = scene.observed.double().numpy()
    for b in range(len(observed)):
        start = time.perf_counter()
        frame = estimate_frame(model, observed[b], cams[0][b], cams[1][b], cams[2][b], None, refine=refine)
        times.append(1000 * (time.perf_counter() - start))
        if frame.fused and frame.joints is not None:
            joints.append(frame.joints)
            truth.append(scene.joints[b].double().numpy())
            names.append(scene.activities[b])
    if not joints:
        return {"fused": 0, "samples": len(observed)}
    pred, gt = torch.as_tensor(np.stack(joints)), torch.as_tensor(np.stack(truth))
    pa = pa_mpjpe(pred, gt)
    mm = lambda errors: round(1000 * float(errors.mean()), 1)  # noqa: E731
    return {"mpjpe_mm": mm(mpjpe(pred, gt)), "pa_mpjpe_mm": mm(pa),
            "pa_arms_mm": mm(pa_mpjpe(pred, gt, ARM_JOINTS)), "world_mpjpe_mm": mm((pred - gt).norm(dim=-1)),
            "fused": len(joints), "samples": len(observed), "ms_per_frameset": round(float(np.median(times)), 2),
            "by_activity": by_activity(pa, names)}  # fmt: skip


def median_ms(work: Callable[[int], object], count: int) -> float:
    """Median wall time (ms) of ``work(b)`` for b = 0 .. count-1."""
    times = []
    for b in range(count):
        start = time.perf_counter()
        work(b)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def single_inputs(scene: Scene, root: Tensor | None, b: int) -> ViewInputs:
    """Model inputs of frame-set ``b`` alone (calibrated when ``root`` is given)."""
    one = slice(b, b + 1)
    if root is None:
        return prepare(scene.observed[one])
    return prepare(scene.observed[one], scene.K[one], scene.R[one], scene.t[one], root[one])


def single_scene(scene: Scene, inputs: ViewInputs, b: int) -> tuple[Scene, ViewInputs]:
    """Frame-set ``b`` of a scene and its inputs, alone."""
    one = slice(b, b + 1)
    cut = {f.name: getattr(scene, f.name)[one] for f in fields(scene)}
    optional = (None if x is None else x[one] for x in (inputs.K_crop, inputs.root_cam, inputs.R))
    part = ViewInputs(inputs.obs_xy[one], inputs.obs_conf[one], inputs.boxes[one], *optional)
    return Scene(**cut), part


def run(weights: Path | None, quick: bool, samples: int | None, baseline_steps: int, backend: str = "torch") -> dict[str, object]:
    torch.set_grad_enabled(True)
    model = load_heatformer(weights)
    runner = make_runner(backend, model, weights)
    n = samples or (8 if quick else 128)
    views_list = (1, 4) if quick else VIEWS
    results: list[dict[str, object]] = []
    held_out = PoseBank.load(held_out=True)  # a CMU clip never used in training
    for views in views_list:
        for occlusion in OCCLUSION if not quick else (0.0, 0.30):
            for calibrated in (False, True):
                if calibrated and views < 2:
                    continue
                g = torch.Generator().manual_seed(BENCHMARK_SEED + 97 * views + int(1000 * occlusion))
                noise = NoiseModel(drop=(occlusion, occlusion), view_mask=0.0)
                scene = sample_scene(model.body, n, views, g, noise, bank=held_out, bank_fraction=0.25)
                results.append(setting_entry(model, scene, views, occlusion, calibrated, "activities", baseline_steps, runner))
    # Pose families on every body, clean keypoints: the everyday arm gestures of the rooms the app
    # watches (a cup or phone held, hands to the face, arms crossed, a walker's grips, pointing,
    # waving, a shelf), one or both arms; one-leg balance (the demo's balance trial; a test of
    # balance in those rooms): every standing, walking and reaching body stands on one leg.
    for poses, seed, settings, gestures, balance in FAMILIES:
        for views, calibrated in settings if not quick else settings[:1]:
            g = torch.Generator().manual_seed(seed + 97 * views)
            noise = NoiseModel(drop=(0.0, 0.0), view_mask=0.0)
            scene = sample_scene(model.body, n, views, g, noise, arm_gestures=gestures, balance=balance)
            results.append(setting_entry(model, scene, views, 0.0, calibrated, poses, baseline_steps, runner))
    return {"benchmark": "synthetic", "seed": BENCHMARK_SEED, "quick": quick, "weights": str(weights or "bundled"),
            "backend": runner.describe() if runner is not None else "torch (the model itself)",
            "baseline_steps": baseline_steps, "results": results}  # fmt: skip


def setting_entry(model: HeatFormer, scene: Scene, views: int, occlusion: float, calibrated: bool, poses: str,
                  baseline_steps: int, runner: HeatFormerRunner | None) -> dict[str, Any]:  # fmt: skip
    """One setting's results: HeatFormer, the baseline and, side by side, the app's refined bodies."""
    entry: dict[str, Any] = {
        "views": views,
        "occlusion": occlusion,
        "mode": "calibrated" if calibrated else "uncalibrated",
        "poses": poses,
        "samples": int(scene.R.shape[0]),
    }
    entry |= run_setting(model, scene, calibrated, baseline_steps, runner)
    if calibrated:  # side by side: HeatFormer's fused world body alone and refined
        entry["fused"] = world_bodies(model, scene, refine=False)
        entry["refined"] = world_bodies(model, scene, refine=True)
    # uncalibrated: run_setting's "refined", the views' bodies fitted to their keypoints
    final, base = entry["heatformer"]["per_iteration"][-1], entry["baseline"]
    print(f"{views} views, {entry['mode']:12s}, {int(100 * occlusion):2d}% missing, {poses}: "
          f"MPJPE {final['mpjpe_mm']:.0f} mm (baseline {base['mpjpe_mm']:.0f})", file=sys.stderr)  # fmt: skip
    return entry


def benchmark_summary(result: dict[str, Any]) -> str:
    """A few lines for the screen when the full results go to a JSON file."""
    rows = result["results"]
    assert isinstance(rows, list)
    lines = [f"{len(rows)} settings, weights {result['weights']}, backend {result['backend']}"]
    for r in rows:
        final = r["heatformer"]["per_iteration"][-1]
        poses = "" if r.get("poses", "activities") == "activities" else f" {r['poses']}"
        line = (f"  {r['views']} view(s) {r['mode']:12s} {int(100 * r['occlusion']):2d}% missing{poses}: PA-MPJPE "
                f"{final['pa_mpjpe_mm']} mm (baseline {r['baseline']['pa_mpjpe_mm']}), "
                + (f"arms {final['pa_arms_mm']} mm, " if "pa_arms_mm" in final else "")
                + f"speedup {r['speedup']}x")  # fmt: skip
        held_out = r["heatformer"].get("by_activity", {}).get("recorded")
        if held_out and r.get("poses", "activities") == "activities":
            line += f", held-out clip {held_out['pa_mpjpe_mm']} mm"
        if r.get("refined") and not r.get("fused"):
            refined = r["refined"]
            line += f"; refined {refined['mpjpe_mm']} / {refined['pa_mpjpe_mm']} mm ({refined['ms_per_frameset']} ms)"
        elif r.get("refined"):
            fused, refined = r["fused"], r["refined"]
            line += (f"; world body MPJPE / PA {fused.get('mpjpe_mm')} / {fused.get('pa_mpjpe_mm')} mm, "
                     f"refined {refined.get('mpjpe_mm')} / {refined.get('pa_mpjpe_mm')} mm "
                     f"({refined.get('ms_per_frameset')} ms)")  # fmt: skip
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--benchmark", choices=["synthetic"], default="synthetic")
    parser.add_argument("--json", type=Path, help="write the full results here (the screen then shows a summary)")
    parser.add_argument("--quick", action="store_true", help="a small subset (under 2 minutes)")
    parser.add_argument("--samples", type=int, help="samples per setting (default 128, quick 8; fewer give noisy means)")
    parser.add_argument("--baseline-steps", type=int, default=150)
    parser.add_argument("--weights", type=Path, help="model weights (default: assets/models/heatformer_s.pt)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="runtime for HeatFormer (per-iteration figures always come from PyTorch)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.samples is not None and args.samples < 1:
        parser.error("--samples must be at least 1")
    if args.baseline_steps < 1:
        parser.error("--baseline-steps must be at least 1")

    def checked(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The output paths first: a bad one fails now, not after the work."""
        if args.json is not None:
            check_output(args.json, "--json", create_folder=True)
        return work()

    np.set_printoptions(precision=1)
    work = lambda: run(args.weights, args.quick, args.samples, args.baseline_steps, args.backend)  # noqa: E731
    return run_and_report(lambda: checked(work), args.json, benchmark_summary)


if __name__ == "__main__":
    sys.exit(main())
