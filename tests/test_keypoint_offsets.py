"""engine.heatformer.offsets and BodyModel.set_keypoint_offsets: where a detector marks its keypoints
on the body, measured and used by the refinement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from calibration.io import load_calibration
from core.paths import DEFAULT_BODY, DEMO_DIR
from engine.body import BodyModel
from engine.body.model import KEYPOINT_PARTS
from engine.heatformer.inference import estimate_frame
from engine.heatformer.model import HeatFormer
from engine.heatformer.offsets import (
    BLAZEPOSE_OFFSETS,
    KeypointOffsets,
    OffsetsError,
    _local_residual,
    estimate_offsets,
    file_sha256,
    load_offsets,
    offset_body,
    offsets_for,
    save_offsets,
)
from engine.heatformer.refine import exp_so3

UP = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)  # body Y up -> world Z up
L_WRIST, L_ELBOW, L_FOREARM, L_UPPER_ARM = 9, 7, 18, 16


def known_offsets() -> np.ndarray:
    """Offsets of the size BlazePose's have (2-7 cm), mirrored left-right."""
    half = {0: (0.0, 0.0, -0.07), 1: (-0.005, -0.015, -0.065), 3: (-0.03, -0.02, 0.02), 5: (0.005, 0.03, 0.0),
            7: (0.0, 0.0, -0.005), 9: (0.015, 0.0, -0.02), 11: (-0.01, -0.045, 0.005), 13: (0.005, -0.02, -0.01),
            15: (-0.005, 0.05, 0.01)}  # fmt: skip
    out = np.zeros((17, 3))
    for k, v in half.items():
        out[k] = v
        if k:
            out[k + 1] = (-v[0], v[1], v[2])
    return out


def test_offsets_ride_on_the_body_part_they_sit_on(body: BodyModel) -> None:
    own, moved = offset_body(body, None, torch.float64), offset_body(body, known_offsets(), torch.float64)
    betas = torch.zeros(1, 10, dtype=torch.float64)
    rot = torch.eye(3, dtype=torch.float64).repeat(1, 24, 1, 1)
    a, b = own.joints_rotmat(betas, rot), moved.joints_rotmat(betas, rot)
    assert a.keypoints is not None and b.keypoints is not None
    # Rest pose: every part frame is the model's, so each keypoint moves by its offset exactly.
    assert np.allclose((b.keypoints - a.keypoints)[0].numpy(), known_offsets(), atol=1e-12)
    assert torch.equal(a.joints, b.joints)  # the skeleton itself does not move
    # Bend the left elbow 90 degrees: the wrist's offset (on the forearm) turns with it, the
    # elbow's (on the upper arm) does not.
    rot[0, L_FOREARM] = exp_so3(torch.tensor([0.0, 0.0, np.pi / 2], dtype=torch.float64))
    a, b = own.joints_rotmat(betas, rot), moved.joints_rotmat(betas, rot)
    assert a.keypoints is not None and b.keypoints is not None
    turned = rot[0, L_FOREARM].numpy() @ known_offsets()[L_WRIST]
    assert np.allclose((b.keypoints - a.keypoints)[0, L_WRIST].numpy(), turned, atol=1e-12)
    assert np.allclose((b.keypoints - a.keypoints)[0, L_ELBOW].numpy(), known_offsets()[L_ELBOW], atol=1e-12)
    # The mesh path agrees with the joints-only path; the body without offsets is untouched.
    full = moved.forward_rotmat(betas, rot)
    assert full.keypoints is not None and torch.allclose(full.keypoints, b.keypoints, atol=1e-9)
    assert offset_body(body, None) is body and not body.has_offsets
    assert KEYPOINT_PARTS[L_WRIST] == L_FOREARM and KEYPOINT_PARTS[L_ELBOW] == L_UPPER_ARM


def test_wrong_offsets_are_refused(body: BodyModel) -> None:
    copy = offset_body(body, None, torch.float64)
    with pytest.raises(ValueError, match=r"\[17, 3\]"):
        copy.set_keypoint_offsets(np.zeros((12, 3)))
    with pytest.raises(ValueError, match="finite"):
        copy.set_keypoint_offsets(np.full((17, 3), np.nan))


def test_offsets_file_round_trip_and_bad_files_named(tmp_path: Path) -> None:
    path = tmp_path / "offsets.json"
    save_offsets(path, KeypointOffsets("blazepose", "ab" * 32, known_offsets(), "a test"))
    back = load_offsets(path)
    assert np.allclose(back.offsets, known_offsets(), atol=5e-5) and back.detector == "blazepose"
    raw = json.loads(path.read_text())
    for change, message in (
        (lambda r: r.pop("body_sha256"), "field body_sha256 must be a string"),
        (lambda r: r["offsets_mm"].pop("left_ear"), "must name the 17 COCO keypoints"),
        (lambda r: r["offsets_mm"].__setitem__("nose", [0, 0, 400]), "nose is moved more than 25 cm"),
        (lambda r: r["offsets_mm"].__setitem__("nose", "up"), "offsets_mm must hold"),
        (lambda r: r.__setitem__("format_version", 9), "format_version must be 1"),
    ):
        bad = json.loads(json.dumps(raw))
        change(bad)
        path.write_text(json.dumps(bad))
        with pytest.raises(OffsetsError, match=message) as caught:
            load_offsets(path)
        assert str(path) in str(caught.value)
    path.write_text("{ not json")
    with pytest.raises(OffsetsError, match="cannot be read"):
        load_offsets(path)


def test_bundled_offsets_are_for_blazepose_on_the_default_body(body: BodyModel, tmp_path: Path) -> None:
    bundled = load_offsets(BLAZEPOSE_OFFSETS)
    assert bundled.body_sha256 == file_sha256(DEFAULT_BODY), "rebuild with python -m tools.body.keypoint_offsets"
    assert "demo_static" in bundled.source
    found = offsets_for(body, "blazepose-multi")
    assert found is not None and np.array_equal(found, bundled.offsets)
    # What BlazePose is known to do against a skeleton's joints: hips marked lower, ankles higher.
    assert bundled.offsets[11, 1] < -0.02 and bundled.offsets[15, 1] > 0.02
    assert offsets_for(body, "fake") is None  # the fake detector's keypoints are the body's own
    other = offset_body(body, None, torch.float64)
    other.source = tmp_path / "another_body.npz"
    other.source.write_bytes(b"another body")
    assert offsets_for(other, "blazepose") is None


def scene(model: HeatFormer, frames: int) -> tuple[list, np.ndarray, np.ndarray, dict[str, torch.Tensor]]:
    """A person standing in the bundled demo's lab, arms down, moving a little: true bodies and
    the 4 views' detections of their keypoints moved by ``known_offsets`` (1 px noise)."""
    cameras = load_calibration(DEMO_DIR / "calibration.toml")[0]
    g = torch.Generator().manual_seed(0)
    base = exp_so3(0.15 * torch.randn(1, 24, 3, generator=g, dtype=torch.float64))
    base[0, 16], base[0, 17] = (
        exp_so3(torch.tensor([0, 0, -1.2], dtype=torch.float64)),
        exp_so3(torch.tensor([0, 0, 1.2], dtype=torch.float64)),
    )
    rot = base.repeat(frames, 1, 1, 1) @ exp_so3(0.15 * torch.randn(frames, 24, 3, generator=g, dtype=torch.float64))
    rot[:, 0] = exp_so3(torch.tensor([0, 0, 0.5], dtype=torch.float64)) @ UP
    betas = torch.zeros(frames, 10, dtype=torch.float64)
    transl = torch.tensor([-1.0, 0.0, 0.95], dtype=torch.float64).repeat(frames, 1)
    with torch.no_grad():
        truth = (
            offset_body(model.body, known_offsets(), torch.float64).joints_rotmat(betas, rot).keypoints + transl[:, None]
        ).numpy()
    rng = np.random.default_rng(0)
    dets = np.zeros((frames, len(cameras), 17, 3))
    for v, c in enumerate(cameras):
        dets[:, v, :, :2] = c.project(truth.reshape(-1, 3)).reshape(frames, 17, 2) + rng.normal(0.0, 1.0, (frames, 17, 2))
        dets[:, v, :, 2] = 0.9
    return cameras, dets, truth, {"rot": rot, "betas": betas, "transl": transl}


def test_measuring_a_right_body_gives_the_offsets_exactly(model: HeatFormer) -> None:
    _, _, truth, bodies = scene(model, 1)

    class Frame:  # the true body, as a fused frame carries it
        orient, pose = bodies["rot"][0, 0].numpy(), bodies["rot"][0, 1:].numpy()
        betas, transl = bodies["betas"][0].numpy(), bodies["transl"][0].numpy()

    measured = _local_residual(offset_body(model.body, None, torch.float64), Frame(), truth[0])
    assert np.allclose(measured, known_offsets(), atol=1e-9)


def test_estimated_offsets_point_the_right_way_and_bring_the_body_closer(model: HeatFormer) -> None:
    """The fit absorbs part of the offsets (a turned collar passes for a moved shoulder), so the
    estimate does not find their full size; it must find their directions, and a body fitted with
    it must sit closer to the true keypoints than one fitted with the model's own."""
    cameras, dets, truth, _ = scene(model, 11)
    est = estimate_offsets(model, cameras, dets)
    assert model.keypoint_offsets is None  # left as it was
    size = np.linalg.norm(known_offsets(), axis=1)
    big = size >= 0.02
    cos = (est * known_offsets()).sum(axis=1)[big] / (np.linalg.norm(est, axis=1)[big] * size[big])
    assert (cos > 0.6).all(), np.round(cos, 2)
    K, R, t, dist = (np.stack([np.asarray(getattr(c, a), np.float64) for c in cameras]) for a in ("K", "R", "t", "dist"))

    def error_mm(offsets: np.ndarray | None) -> float:
        model.keypoint_offsets = offsets
        try:
            errors = []
            for kp, aim in zip(dets, truth, strict=True):
                f = estimate_frame(model, kp, K, R, t, dist, refine=True)
                assert f.orient is not None and f.pose is not None and f.betas is not None and f.transl is not None
                rot = torch.as_tensor(np.concatenate([f.orient[None], f.pose]))[None]
                moved = offset_body(model.body, known_offsets(), torch.float64)
                with torch.no_grad():
                    placed = moved.joints_rotmat(torch.as_tensor(f.betas)[None], rot).keypoints
                assert placed is not None
                errors.append(np.linalg.norm(placed[0].numpy() + f.transl - aim, axis=-1).mean())
            return 1000.0 * float(np.mean(errors))
        finally:
            model.keypoint_offsets = None

    without, with_estimate, with_truth = error_mm(None), error_mm(est), error_mm(known_offsets())
    assert with_truth < 10.0 < with_estimate < without, (without, with_estimate, with_truth)
