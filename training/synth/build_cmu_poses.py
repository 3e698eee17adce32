"""Retarget the bundled CMU clips to SMPL poses: ``assets/synth/cmu_poses.npz``.

    python -m training.synth.build_cmu_poses

Arrays: ``body_pose`` ``[N, 23, 3]`` axis-angle, ``root`` ``[N, 3, 3]`` (body frame, Y up),
``clip`` ``[N]`` (clip name), at 30 fps (every 4th frame of the 120 fps recordings).
"""

from __future__ import annotations

import numpy as np

from core.paths import CMU_POSES, SYNTH_DIR
from engine.body import BodyModel
from engine.body.model_file import SMPL_PARENTS
from training.synth.cmu import retarget

CMU_DIR = SYNTH_DIR / "cmu"

CLIPS = {"backflip": "backflip", "charleston1": "charleston", "charleston2": "charleston", "lambada": "lambada",
         "pirouette": "pirouette", "zombie": "zombie"}  # fmt: skip


def main() -> None:
    body = BodyModel.from_file()
    rest = body.joint_template.double().numpy()
    poses, roots, names = [], [], []
    for clip, skeleton in CLIPS.items():
        pose, root = retarget(CMU_DIR / f"{skeleton}.asf", CMU_DIR / f"{clip}.amc", rest, SMPL_PARENTS)
        poses.append(pose)
        roots.append(root)
        names += [clip] * len(pose)
        print(f"{clip}: {len(pose)} poses")
    out = CMU_POSES
    np.savez_compressed(out, body_pose=np.concatenate(poses).astype(np.float32), root=np.concatenate(roots).astype(np.float32),
                        clip=np.array(names))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
