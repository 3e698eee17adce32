"""The multi-person files: the people_* arrays, the 5-D keypoints exchange layout, and session
rows of different people counts joined."""

from __future__ import annotations

import numpy as np
import pytest

from core.formats import ExchangeFileError, load_keypoints_npz, pad_people, people_arrays
from core.types import FrameBody, Keypoints2D, Person
from recording.writer import concat_rows


def fused_body(x: float) -> FrameBody:
    """A fused body standing at (x, 0, 0.9) with an identity pose."""
    eye = np.eye(3)
    joints = np.tile([x, 0.0, 0.9], (24, 1))
    return FrameBody(
        view_orient=np.tile(eye, (2, 1, 1)), view_pose=np.tile(eye, (2, 23, 1, 1)), view_betas=np.zeros((2, 10)),
        view_cam=np.zeros((2, 3)), view_boxes=np.zeros((2, 3)), used=np.array([True, True]),
        orient=eye, pose=np.tile(eye, (23, 1, 1)), betas=np.full(10, 0.5), transl=np.array([x, 0.0, 0.0]), joints=joints,
    )  # fmt: skip


def person(track: int, x: float, cameras: tuple[str, ...] = ("a", "b")) -> Person:
    points = np.zeros((17, 3), np.float32)
    points[:, 0], points[:, 2] = 100.0 * track, 0.9
    k3d = np.tile([x, 0.0, 1.0, 1.0], (17, 1))
    return Person(track, {c: Keypoints2D(c, points) for c in cameras}, k3d, body=fused_body(x))


def test_people_arrays_hold_ids_positions_and_empty_slots() -> None:
    frames = [[person(1, 0.0), person(3, 2.0)], [person(3, 2.1)], []]
    arrays = people_arrays(frames, ["a", "b"])
    assert arrays["people_ids"].tolist() == [[1, 3], [3, -1], [-1, -1]]
    assert arrays["people_joints"].shape == (3, 2, 24, 3)
    assert arrays["people_transl"][0, 1, 0] == pytest.approx(2.0)
    assert arrays["people_transl"][1, 0, 0] == pytest.approx(2.1)
    assert np.isnan(arrays["people_transl"][1, 1]).all() and np.isnan(arrays["people_joints"][2]).all()
    assert arrays["people_keypoints3d"][0, 1, 5].tolist() == [2.0, 0.0, 1.0, 1.0]
    assert arrays["people_betas"][0, 0] == pytest.approx(np.full(10, 0.5))
    assert arrays["people_global_orient"][0, 0] == pytest.approx(np.zeros(3))
    assert arrays["people_keypoints2d"][0, 1, 0, 0, 0] == pytest.approx(300.0)
    assert arrays["people_view"].tolist() == [[-1, -1], [-1, -1], [-1, -1]]


def test_a_person_of_one_uncalibrated_view_names_it() -> None:
    body = fused_body(0.0)
    body.orient = body.pose = body.transl = body.joints = None  # per view only
    body.used = np.array([False, True])
    alone = Person(1001, {"b": Keypoints2D("b", np.ones((17, 3), np.float32))}, body=body)
    arrays = people_arrays([[alone]], ["a", "b"])
    assert arrays["people_view"].tolist() == [[1]]
    assert np.isfinite(arrays["people_global_orient"][0, 0]).all() and np.isnan(arrays["people_transl"][0, 0]).all()


def test_session_rows_of_different_people_counts_join() -> None:
    def row(index: int, people: list[Person]) -> dict[str, np.ndarray]:
        base = {"set_index": np.array([index]), "timestamps": np.array([index / 30.0])}
        return base | (people_arrays([people], ["a", "b"]) if people else {})

    joined = concat_rows([row(0, [person(1, 0.0)]), row(1, []), row(2, [person(1, 0.1), person(2, 1.0)])])
    assert joined["people_ids"].tolist() == [[1, -1], [-1, -1], [1, 2]]
    assert joined["people_transl"][2, 1, 0] == pytest.approx(1.0)
    assert np.isnan(joined["people_transl"][1]).all()
    widened = pad_people({"people_ids": np.array([[4]]), "other": np.array([[1.0]])}, 3)
    assert widened["people_ids"].tolist() == [[4, -1, -1]] and widened["other"].tolist() == [[1.0]]


def test_multi_person_exchange_file_reads(tmp_path) -> None:
    kp = np.zeros((2, 3, 4, 17, 3), np.float32)
    kp[:, :, :2, :, :2] = 50.0
    kp[:, :, :2, :, 2] = 0.8
    kp[0, 1, 3, 0] = [np.nan, np.nan, 0.0]  # a missing point in an empty slot reads as 0
    np.savez(tmp_path / "people.npz", keypoints=kp, camera_names=np.array(["a", "b", "c"]),
             image_size=np.array([[640, 480]] * 3))  # fmt: skip
    data = load_keypoints_npz(tmp_path / "people.npz")
    assert data.multi_person and data.keypoints.shape == (2, 3, 4, 17, 3)
    assert data.keypoints[0, 1, 3, 0].tolist() == [0.0, 0.0, 0.0]
    cams = data.cameras()
    assert [c.name for c in cams] == ["a", "b", "c"] and cams[0].image_size == (640, 480) and not cams[0].calibrated


def test_multi_person_exchange_file_errors_name_the_slot(tmp_path) -> None:
    kp = np.zeros((1, 2, 3, 17, 3), np.float32)
    kp[0, 1, 2, 4, 2] = 7.0
    np.savez(tmp_path / "bad.npz", keypoints=kp)
    with pytest.raises(ExchangeFileError, match=r"confidence 7 at \[frame, view, slot, joint\] \[0, 1, 2, 4\]"):
        load_keypoints_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "shape.npz", keypoints=np.zeros((1, 2, 3, 4, 17, 3)))
    with pytest.raises(ExchangeFileError, match=r"expected \[T, V, 17, 3\] \(one person\) or \[T, V, P, 17, 3\]"):
        load_keypoints_npz(tmp_path / "shape.npz")
