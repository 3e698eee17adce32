"""Bodies of several people against each person alone, on synthetic scenes.

    python -m training.people_bodies --people 3 --views 4 --frames 90 --json out.json

A scene of the multi-person generator (training.synth.people: people walking past and occluding
each other, detector-like noise with swaps, merged skeletons and false positives) goes through the
product's multi-person path (engine.heatformer.people.people_results: association, tracking, a
refined and smoothed body per person) as a 5-D keypoints exchange file. The same scene is then run
one person at a time, each person's own detections as a one-person file (body_results), which is
the single-person figure. Both are scored the same way: the COCO-17 keypoints of the fitted body
against the person's true keypoints (MPJPE, mm), over the frame-sets where the person is in the
room and has a world body. The issue's target: the multi-person figure within 10 % of the
single-person one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from core.formats import KeypointsFile
from core.geometry import rodrigues_to_matrix
from engine.heatformer.inference import body_results
from engine.heatformer.model import HeatFormer
from engine.heatformer.people import people_results
from engine.heatformer.runtime import load_heatformer
from training.synth.people import PeopleScene, sample_people_scene

MATCH_M = 0.5  # an output person is the true person whose mid-hip is nearest, within this (m)


def exchange(scene: PeopleScene, keypoints: np.ndarray) -> KeypointsFile:
    cams = scene.cameras
    stack = lambda attr: np.stack([getattr(c, attr) for c in cams]).astype(np.float64)  # noqa: E731
    return KeypointsFile(
        keypoints=keypoints.astype(np.float32), camera_names=[c.name for c in cams],
        image_size=np.array([c.image_size for c in cams]), timestamps=scene.times,
        K=stack("K"), R=stack("R"), t=stack("t"), dist=stack("dist"),
    )  # fmt: skip


def body_keypoints(model: HeatFormer, orient: np.ndarray, pose: np.ndarray, betas: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """World COCO-17 keypoints ``[N, 17, 3]`` of bodies given as axis-angle ``orient`` ``[N, 3]``,
    ``pose`` ``[N, 23, 3]``, ``betas`` ``[N, 10]``, ``transl`` ``[N, 3]``."""
    rot = np.stack([rodrigues_to_matrix(r) for r in np.concatenate([orient[:, None], pose], axis=1).reshape(-1, 3)])
    rotations = torch.as_tensor(rot.reshape(len(orient), 24, 3, 3), dtype=torch.float32)
    with torch.no_grad():
        out = model.body.joints_rotmat(torch.as_tensor(betas, dtype=torch.float32), rotations)
    assert out.keypoints is not None
    return out.keypoints.double().numpy() + transl[:, None]


def multi_person_errors(model: HeatFormer, scene: PeopleScene) -> list[float]:
    """Per (frame-set, person) mean keypoint error (m) of the multi-person path."""
    out = people_results(model, exchange(scene, scene.detections))
    errors = []
    for i in range(len(scene.times)):
        have = np.flatnonzero((out["people_ids"][i] >= 0) & np.isfinite(out["people_transl"][i, :, 0]))
        if not len(have):
            continue
        kp = body_keypoints(model, out["people_global_orient"][i, have], out["people_body_pose"][i, have],
                            out["people_betas"][i, have], out["people_transl"][i, have])  # fmt: skip
        present = np.flatnonzero(scene.ids[i] >= 0)
        truth = scene.keypoints[i, present]
        for body in kp:
            gaps = np.linalg.norm(truth[:, 11:13].mean(axis=1) - body[11:13].mean(axis=0), axis=-1)
            if len(gaps) and gaps.min() < MATCH_M:
                errors.append(float(np.linalg.norm(body - truth[int(np.argmin(gaps))], axis=-1).mean()))
    return errors


def single_person_errors(model: HeatFormer, scene: PeopleScene) -> list[float]:
    """The same, each person alone: their own detections (slots labelled with them) as a one-person file."""
    errors = []
    T, V = scene.detections.shape[:2]
    for p in range(scene.keypoints.shape[1]):
        mine = np.zeros((T, V, 17, 3), np.float32)
        for i in range(T):
            for v in range(V):
                slots = np.flatnonzero(scene.detection_person[i, v] == p)
                if len(slots):
                    mine[i, v] = scene.detections[i, v, slots[0]]
        out = body_results(model, exchange(scene, mine))
        for i in np.flatnonzero(out["fused"] & (scene.ids[:, p] >= 0)):
            kp = body_keypoints(model, out["global_orient"][i : i + 1], out["body_pose"][i : i + 1],
                                out["betas"][i : i + 1], out["transl"][i : i + 1])[0]  # fmt: skip
            errors.append(float(np.linalg.norm(kp - scene.keypoints[i, p], axis=-1).mean()))
    return errors


def evaluate(people: int, views: int, frames: int, scenes: int, seed: int = 0) -> dict[str, object]:
    model = load_heatformer()
    multi: list[float] = []
    single: list[float] = []
    for k in range(scenes):
        scene = sample_people_scene(people, views, frames, seed=seed + k)
        multi += multi_person_errors(model, scene)
        single += single_person_errors(model, scene)
    m, s = 1000 * float(np.mean(multi)), 1000 * float(np.mean(single))
    return {
        "people": people, "views": views, "frames": frames, "scenes": scenes,
        "multi_person_mpjpe_mm": round(m, 1), "single_person_mpjpe_mm": round(s, 1), "ratio": round(m / s, 3),
        "person_frames": {"multi": len(multi), "single": len(single)}, "target_ratio": 1.1,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.people_bodies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = evaluate(args.people, args.views, args.frames, args.scenes, args.seed)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
