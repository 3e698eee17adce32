"""Build ``assets/demo/`` from the Pose2Sim demo in ``../shared/data/pose2sim_demo``.

Copies the balancing-trial videos and converts the Qualisys calibration (already expressed in
OpenCV conventions in ``qualisys_as_opencv.json``) to the project's calibration TOML.

    python -m tools.make_demo_assets [--source DIR] [--out assets/demo]
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import date
from pathlib import Path

import cv2
import numpy as np

from calibration.io import save_calibration
from core.camera import Camera
from core.paths import DEMO_DIR, ROOT


def video_size(path: Path) -> tuple[int, int]:
    cap = cv2.VideoCapture(str(path))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    return size


def convert(source: Path, out: Path) -> None:
    calib = json.loads((source / "calibration" / "qualisys_as_opencv.json").read_text())
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    cameras = []
    for entry in calib["cameras"]:
        name = entry["name"]
        src_video = source / "balancing_trial" / "videos" / f"{name}.mp4"
        shutil.copyfile(src_video, videos / f"{name}.mp4")
        # cam01/cam02 videos are 1080 px wide while the Qualisys sensor mode is 1088:
        # the image size follows the video; K (principal point) is kept as calibrated.
        raw = np.asarray(entry["dist_k1k2p1p2_raw_qualisys"], float)
        cameras.append(
            Camera(
                name=name,
                image_size=video_size(src_video),
                K=np.asarray(entry["K"], float),
                dist=np.concatenate([raw, [0.0]]),
                R=np.asarray(entry["R_world_to_cam"], float),
                t=np.asarray(entry["t_world_to_cam_m"], float),
            )
        )
        assert np.allclose(cameras[-1].rvec, entry["rvec"], atol=1e-6)
    save_calibration(
        out / "calibration.toml",
        cameras,
        {
            "source": "Qualisys QTM calibration of the Pose2Sim Demo_SinglePerson capture (wand-based)",
            "world_frame": "Qualisys lab frame, metres, Z up, floor at z = 0",
            "board": "none (Qualisys wand)",
            "errors_px": {c["name"]: c["qualisys_avg_residual"] for c in calib["cameras"]},
            "date": date.today().isoformat(),
        },
    )
    shutil.copyfile(source / "LICENSE_pose2sim_BSD3.txt", out / "LICENSE_pose2sim_BSD3.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "pose2sim_demo")
    parser.add_argument("--out", type=Path, default=DEMO_DIR)
    args = parser.parse_args()
    convert(args.source, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
