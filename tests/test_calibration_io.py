"""calibration.io: save/load round trip, the bundled demo calibration, and every error path;
capture.session.match_calibration and calibration.matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.io import load_calibration, save_calibration
from capture.session import match_calibration
from capture.sources import SyntheticSource
from core.camera import Camera, uncalibrated
from core.errors import AppError, CalibrationError
from core.geometry import rodrigues_to_matrix

ROOT = Path(__file__).resolve().parents[1]
DEMO_CALIBRATION = ROOT / "assets" / "demo" / "calibration.toml"
DEMO_FX = {"cam01": 1681.2, "cam02": 1673.7, "cam03": 1681.6, "cam04": 1675.2}
DEMO_SIZES = {"cam01": (1080, 1920), "cam02": (1080, 1920), "cam03": (1088, 1920), "cam04": (1088, 1920)}

GOOD_TABLE = """
[cam_0]
name = "a"
size = [640, 480]
matrix = [[1000.0, 0.0, 320.0], [0.0, 1000.0, 240.0], [0.0, 0.0, 1.0]]
distortions = [0.1, -0.01, 0.0, 0.0, 0.0]
rotation = [0.0, 0.0, 0.0]
translation = [0.0, 0.0, 3.0]
"""


def made_up_cameras() -> list[Camera]:
    return [
        Camera(
            "cam_A",
            (1280, 720),
            np.array([[1210.5, 0.25, 641.125], [0.0, 1205.75, 359.5], [0.0, 0.0, 1.0]]),
            np.array([-0.123456789, 0.0456, 1.25e-3, -7.5e-4, -0.0111]),
            rodrigues_to_matrix(np.array([0.3, -1.2, 2.1])),
            np.array([0.1, -0.25, 3.75]),
        ),
        Camera(
            "left side",
            (1920, 1080),
            np.array([[1700.0, 0.0, 960.0], [0.0, 1700.0, 540.0], [0.0, 0.0, 1.0]]),
            np.array([0.01, 0.0, 0.0, 0.0, 0.0]),
            rodrigues_to_matrix(np.array([1.5, 0.2, -0.4])),
            np.array([-1.0, 0.5, 4.0]),
        ),
    ]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- round trip


def test_save_load_round_trip(tmp_path):
    cams = made_up_cameras()
    meta = {
        "world_frame": "Z up, metres, floor at z = 0",
        "source": 'a "quoted" \\ string',
        "count": 7,
        "flag": True,
        "scale": 0.001,
        "values": [1.0, 2.5, -3.0],
        "errors_px": {"cam_A": 0.25, "left_side": 0.5},
        "nested": {"inner": {"n": 3, "ok": False, "list": [1, 2]}, "label": "x"},
    }
    path = tmp_path / "calib.toml"
    save_calibration(path, cams, meta)
    loaded, loaded_meta = load_calibration(path)

    assert loaded_meta == {"format_version": 1, **meta}
    assert [c.name for c in loaded] == ["cam_A", "left side"]
    for orig, back in zip(cams, loaded, strict=True):
        assert back.image_size == orig.image_size
        assert isinstance(back.image_size[0], int)
        assert back.calibrated
        np.testing.assert_array_equal(back.K, orig.K)  # repr() floats survive exactly
        np.testing.assert_array_equal(back.dist, orig.dist)
        np.testing.assert_array_equal(back.t, orig.t)
        np.testing.assert_allclose(back.R, orig.R, rtol=0, atol=1e-12)
        np.testing.assert_allclose(back.center, orig.center, rtol=0, atol=1e-12)


def test_save_forces_current_format_version(tmp_path):
    path = tmp_path / "c.toml"
    save_calibration(path, made_up_cameras()[:1], {"format_version": 99})
    _, meta = load_calibration(path)
    assert meta["format_version"] == 1


def test_save_numpy_scalars_in_metadata(tmp_path):
    path = tmp_path / "c.toml"
    save_calibration(path, made_up_cameras()[:1], {"rms": np.float64(0.375), "n": np.int64(12)})
    _, meta = load_calibration(path)
    assert meta["rms"] == 0.375 and meta["n"] == 12


def test_save_uncalibrated_camera_raises(tmp_path):
    with pytest.raises(CalibrationError, match="uncalibrated"):
        save_calibration(tmp_path / "c.toml", [uncalibrated("webcam", (640, 480))])


@pytest.mark.parametrize("key", ["cam 1", "cam.1"])
def test_save_metadata_keys_that_are_not_bare_toml_keys(tmp_path, key):
    path = tmp_path / "c.toml"
    save_calibration(path, made_up_cameras()[:1], {"errors_px": {key: 0.5}})
    _, meta = load_calibration(path)
    assert meta["errors_px"] == {key: 0.5}


def test_load_pads_four_distortion_values(tmp_path):
    path = write(tmp_path / "c.toml", GOOD_TABLE.replace("[0.1, -0.01, 0.0, 0.0, 0.0]", "[0.1, -0.01, 0.002, 0.003]"))
    (cam,), meta = load_calibration(path)
    np.testing.assert_array_equal(cam.dist, [0.1, -0.01, 0.002, 0.003, 0.0])
    assert meta == {}  # no [metadata] table -> empty, version 1 assumed
    np.testing.assert_array_equal(cam.R, np.eye(3))
    np.testing.assert_allclose(cam.project(np.array([0.0, 0.0, 0.0])), [320.0, 240.0])


# ----------------------------------------------------------------------------- bundled demo


def test_demo_calibration_loads():
    cams, meta = load_calibration(DEMO_CALIBRATION)
    assert [c.name for c in cams] == ["cam01", "cam02", "cam03", "cam04"]
    assert meta["format_version"] == 1
    for cam in cams:
        assert cam.calibrated
        assert cam.image_size == DEMO_SIZES[cam.name]
        assert abs(cam.K[0, 0] - DEMO_FX[cam.name]) / DEMO_FX[cam.name] < 0.01
        assert abs(cam.K[1, 1] - DEMO_FX[cam.name]) / DEMO_FX[cam.name] < 0.01
        np.testing.assert_allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(cam.R) == pytest.approx(1.0, abs=1e-12)
        assert 1.0 < cam.center[2] < 3.0, f"{cam.name} centre {cam.center}"
        # the capture volume (a point 1 m above the world origin) is in front of every camera
        # and inside its image
        target = np.array([0.0, 0.0, 1.0])
        assert 1.0 < cam.depth(target) < 6.0
        u, v = cam.project(target)
        assert 0 <= u < cam.image_size[0] and 0 <= v < cam.image_size[1]
    centers = np.array([c.center for c in cams])
    # cameras surround the subject: pairwise distances of at least 1.5 m
    d = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    assert d[np.triu_indices(4, 1)].min() > 1.5


# ----------------------------------------------------------------------------- errors


def assert_calibration_error(path: Path, *fragments: str) -> CalibrationError:
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(info.value, AppError)
    return info.value


def test_missing_file(tmp_path):
    assert_calibration_error(tmp_path / "nope.toml", "not found")


def test_directory_is_not_a_calibration_file(tmp_path):
    assert_calibration_error(tmp_path, "not found")


def test_invalid_toml(tmp_path):
    assert_calibration_error(write(tmp_path / "bad.toml", "[cam_0\nname = 'x'\n"), "not valid TOML")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[cam_0]\nname = "\xe9"\n')
    assert_calibration_error(path, "not valid TOML")


def test_camera_missing_matrix(tmp_path):
    text = "\n".join(line for line in GOOD_TABLE.splitlines() if not line.startswith("matrix"))
    err = assert_calibration_error(write(tmp_path / "c.toml", text), "matrix", "[cam_0]", "missing")
    assert "translation" not in str(err)  # names only what is missing


def test_wrong_rotation_shape(tmp_path):
    text = GOOD_TABLE.replace("rotation = [0.0, 0.0, 0.0]", "rotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]")
    assert_calibration_error(write(tmp_path / "c.toml", text), "rotation", "(3,)", "(3, 3)")


def test_wrong_matrix_shape(tmp_path):
    text = GOOD_TABLE.replace("[0.0, 0.0, 1.0]]", "]")
    assert_calibration_error(write(tmp_path / "c.toml", text), "matrix", "shape")


@pytest.mark.parametrize("version", ["2", '"1"', "1.5"])
def test_unsupported_format_version(tmp_path, version):
    path = write(tmp_path / "c.toml", f"[metadata]\nformat_version = {version}\n" + GOOD_TABLE)
    assert_calibration_error(path, "unsupported format_version")


def test_no_camera_tables(tmp_path):
    assert_calibration_error(write(tmp_path / "c.toml", "[metadata]\nformat_version = 1\n"), "no camera tables")


def test_duplicate_camera_names(tmp_path):
    text = GOOD_TABLE + GOOD_TABLE.replace("[cam_0]", "[cam_1]")
    assert_calibration_error(write(tmp_path / "c.toml", text), "duplicate")


def test_non_numeric_and_non_finite_fields(tmp_path):
    assert_calibration_error(
        write(tmp_path / "a.toml", GOOD_TABLE.replace("translation = [0.0, 0.0, 3.0]", 'translation = ["a", 0.0, 3.0]')),
        "translation",
        "not numeric",
    )
    assert_calibration_error(
        write(tmp_path / "b.toml", GOOD_TABLE.replace("translation = [0.0, 0.0, 3.0]", "translation = [nan, 0.0, 3.0]")),
        "translation",
        "non-finite",
    )


def test_bad_distortion_count_and_focal_length(tmp_path):
    assert_calibration_error(
        write(tmp_path / "a.toml", GOOD_TABLE.replace("[0.1, -0.01, 0.0, 0.0, 0.0]", "[0.1, -0.01, 0.0]")), "distortions"
    )
    assert_calibration_error(write(tmp_path / "b.toml", GOOD_TABLE.replace("[[1000.0,", "[[-1000.0,")), "matrix", "focal")


# ----------------------------------------------------------------------------- match_calibration


def demo_sources(names=("cam01", "cam02", "cam03", "cam04"), sizes=None):
    sizes = sizes or {}
    return [SyntheticSource(n, size=sizes.get(n, DEMO_SIZES.get(n, (1080, 1920))), frames=1) for n in names]


def test_match_calibration_by_name_follows_source_order():
    sources = demo_sources(("cam03", "cam01", "cam04", "cam02"))
    cams = match_calibration(DEMO_CALIBRATION, sources)
    assert [c.name for c in cams] == ["cam03", "cam01", "cam04", "cam02"]
    assert cams[0].image_size == (1088, 1920)


def test_match_calibration_by_order_when_names_differ():
    """Matched by order, the cameras take the sources' names (frames are keyed by them) and keep
    the calibration's geometry in file order."""
    sources = [SyntheticSource(f"video{i}", size=s, frames=1) for i, s in enumerate(DEMO_SIZES.values())]
    cams = match_calibration(DEMO_CALIBRATION, sources)
    assert [c.name for c in cams] == ["video0", "video1", "video2", "video3"]
    calibrated, _ = load_calibration(DEMO_CALIBRATION)
    for cam, ref in zip(cams, calibrated, strict=True):
        assert np.array_equal(cam.K, ref.K) and np.array_equal(cam.t, ref.t)


def test_match_calibration_wrong_camera_count():
    sources = demo_sources(("cam01", "cam02", "cam03"))
    with pytest.raises(CalibrationError) as info:
        match_calibration(DEMO_CALIBRATION, sources)
    message = str(info.value)
    assert str(DEMO_CALIBRATION) in message
    assert "has 4 camera(s)" in message and "has 3" in message
    assert "cam01, cam02, cam03" in message


def test_match_calibration_large_size_mismatch_names_the_camera():
    sources = demo_sources(sizes={"cam03": (1280, 720)})
    with pytest.raises(CalibrationError) as info:
        match_calibration(DEMO_CALIBRATION, sources)
    message = str(info.value)
    assert str(DEMO_CALIBRATION) in message
    assert "'cam03'" in message and "1088x1920" in message and "1280x720" in message
    assert "cam01" not in message


def test_small_size_mismatch_warns_and_shifts_the_principal_point(caplog):
    """cam03 calibrated at 1088x1920, its video 1080x1920: a warning naming the file and camera,
    cx moved by half the difference (-4 px), everything else as calibrated."""
    sources = demo_sources(sizes={"cam03": (1080, 1920)})
    with caplog.at_level("WARNING", logger="capture.session"):
        cams = match_calibration(DEMO_CALIBRATION, sources)
    calibrated = {c.name: c for c in load_calibration(DEMO_CALIBRATION)[0]}
    cam03 = cams[2]
    assert cam03.name == "cam03" and cam03.image_size == (1080, 1920)
    assert cam03.K[0, 2] == pytest.approx(calibrated["cam03"].K[0, 2] - 4.0)
    assert cam03.K[1, 2] == calibrated["cam03"].K[1, 2] and cam03.K[0, 0] == calibrated["cam03"].K[0, 0]
    assert np.array_equal(cam03.t, calibrated["cam03"].t)
    assert all(np.array_equal(c.K, calibrated[c.name].K) for c in cams if c.name != "cam03")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(DEMO_CALIBRATION) in warnings[0] and "'cam03'" in warnings[0]
    assert "1088x1920" in warnings[0] and "cx -4.0 px" in warnings[0]


def test_pose2sim_qualisys_file_on_its_1080_wide_videos(caplog):
    """The real case: Pose2Sim's Qualisys calibration is for the 1088x1920 sensor mode, while the
    balancing trial's cam01 and cam02 videos are 1080x1920: two warnings naming the file and the
    camera, cx -4 px for those two, cam03 and cam04 untouched."""
    from calibration.importers import read_qualisys
    from calibration.matching import match_cameras

    qualisys = ROOT / "tests" / "data" / "calibration" / "pose2sim_Calib.qca.txt"
    views = [(n, DEMO_SIZES[n]) for n in ("cam01", "cam02", "cam03", "cam04")]
    with caplog.at_level("WARNING", logger="capture.session"):
        cams = match_cameras(qualisys, views)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "calibrated for" in r.getMessage()]
    assert len(warnings) == 2 and all("pose2sim_Calib.qca.txt" in w and "1088x1920" in w and "cx -4.0 px" in w for w in warnings)
    assert "'cam01'" in warnings[0] and "'cam02'" in warnings[1]
    assert [c.image_size for c in cams] == list(DEMO_SIZES.values())
    raw = read_qualisys(qualisys)
    assert [c.K[0, 2] - r.K[0, 2] for c, r in zip(cams, raw, strict=True)] == pytest.approx([-4.0, -4.0, 0.0, 0.0])


def test_match_calibration_missing_file_raises_calibration_error(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        match_calibration(tmp_path / "missing.toml", demo_sources())


def test_rational_distortion_terms_that_are_not_used_are_warned(tmp_path, caplog) -> None:
    """An 8-value (rational model) distortion: k1 k2 p1 p2 k3 are used, k4..k6 are named in a
    warning instead of being dropped without a word."""
    import logging

    from calibration.io import load_calibration

    text = (ROOT / "assets" / "demo" / "calibration.toml").read_text()
    path = tmp_path / "rational.toml"
    path.write_text(text.replace("distortions = [-0.046183, 0.139983, 0.000608, 0.00069, 0.0]",
                                 "distortions = [-0.046183, 0.139983, 0.000608, 0.00069, 0.0, 0.02, 0.0, 0.0]"))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        cameras, _ = load_calibration(path)
    assert cameras[0].dist.tolist() == [-0.046183, 0.139983, 0.000608, 0.00069, 0.0]
    warned = [r.getMessage() for r in caplog.records if "distortions" in r.getMessage()]
    assert len(warned) == 1 and "cam01" in warned[0] and "0.02" in warned[0]


# ----------------------------------------------------------------------------- the format detector
CALIBRATION_DATA = ROOT / "tests" / "data" / "calibration"


def test_detect_format_of_the_shipped_and_test_files():
    from calibration.formats import detect_format

    assert detect_format(DEMO_CALIBRATION) == "ours"
    assert detect_format(CALIBRATION_DATA / "caliscope" / "camera_array.toml") == "caliscope"
    assert detect_format(CALIBRATION_DATA / "pose2sim_Calib.qca.txt") == "qualisys"


def test_detect_format_reads_tables_not_text(tmp_path):
    """caliscope's config.toml ([cam_N] with cam_id) is caliscope; our file that merely mentions
    'cam_id' or '[cameras.' in a string or comment stays ours (a text search got these wrong)."""
    from calibration.formats import detect_format, read_calibration

    config = tmp_path / "config.toml"
    matrix = "[[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]]"
    config.write_text(f"[cam_0]\ncam_id = 0\nsize = [640, 480]\nmatrix = {matrix}\ndistortions = [0.0, 0.0, 0.0, 0.0, 0.0]\n")
    assert detect_format(config) == "caliscope"
    ours = tmp_path / "ours.toml"
    text = DEMO_CALIBRATION.read_text(encoding="utf-8")
    ours.write_text(text.replace('source = "', 'source = "cam_id [cameras.0] ', 1) + "# cam_id, [cameras.1]\n", encoding="utf-8")
    assert detect_format(ours) == "ours"
    cameras, metadata = read_calibration(ours)
    assert [c.name for c in cameras] == ["cam01", "cam02", "cam03", "cam04"] and metadata["format_version"] == 1
    assert read_calibration(config)[0][0].K[0, 0] == 500.0


def test_read_calibration_of_a_broken_file_names_it(tmp_path):
    from calibration.formats import detect_format, read_calibration

    broken = tmp_path / "broken.toml"
    broken.write_text("[cam_0\nname = ", encoding="utf-8")
    assert detect_format(broken) == "ours"
    with pytest.raises(CalibrationError, match="broken.toml"):
        read_calibration(broken)
    with pytest.raises(CalibrationError, match=r"missing\.toml: not found"):
        read_calibration(tmp_path / "missing.toml")
