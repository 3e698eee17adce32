"""The body picture for the README: T-pose front and side, shapes, and everyday poses.

python -m tools.body.picture [--out docs/images/body.png] [--model FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from core.errors import AppError
from core.outputs import check_output
from core.paths import ROOT
from engine.body.model import BodyModel
from engine.body.render import look_at, render_mesh

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
PANEL = (360, 540)  # width, height
# (label, betas, {SMPL joint: axis-angle}) ; joint 1/2 hips, 4/5 knees, 16/17 shoulders, 18/19 elbows
POSES: list[tuple[str, dict[int, float], dict[int, tuple[float, float, float]]]] = [
    ("beta0 -2", {0: -2.0}, {}),
    ("beta0 +2", {0: 2.0}, {}),
    ("beta1 -2", {1: -2.0}, {}),
    ("beta1 +2", {1: 2.0}, {}),
    ("walking", {}, {1: (-0.5, 0, 0), 2: (0.35, 0, 0), 4: (0.3, 0, 0), 5: (0.6, 0, 0), 16: (0.3, 0, -1.25), 17: (-0.3, 0, 1.25)}),
    ("sitting", {}, {1: (-1.5, 0, 0.1), 2: (-1.5, 0, -0.1), 4: (1.5, 0, 0), 5: (1.5, 0, 0), 16: (0, 0, -1.2), 17: (0, 0, 1.2)}),
    ("reaching up", {}, {16: (0, 0, 1.3), 17: (0, 0, -1.3), 18: (0, 0.3, 0), 19: (0, -0.3, 0)}),
    ("bending down", {}, {1: (-0.9, 0, 0), 2: (-0.9, 0, 0), 3: (0.4, 0, 0), 6: (0.3, 0, 0), 16: (0, 0, -1.4), 17: (0, 0, 1.4)}),
]


def panel(
    model: BodyModel, betas: dict[int, float], joints: dict[int, tuple[float, float, float]], eye: np.ndarray, label: str
) -> np.ndarray:
    beta = torch.zeros(1, model.num_betas)
    for k, value in betas.items():
        beta[0, k] = value
    pose = torch.zeros(1, 23, 3)
    for j, aa in joints.items():
        pose[0, j - 1] = torch.tensor(aa)
    with torch.no_grad():
        out = model(beta, torch.zeros(1, 3), pose)
    assert out.vertices is not None
    vertices = out.vertices[0].double().numpy()
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    R, t = look_at(centre + eye, centre)
    w, h = PANEL
    K = np.array([[h * 1.6, 0, w / 2], [0, h * 1.6, h / 2], [0, 0, 1.0]])
    image = render_mesh(np.full((h, w, 3), 246, np.uint8), vertices, model.faces, K, R, t, color=(170, 150, 120))
    cv2.putText(image, label, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (40, 40, 40), 2, cv2.LINE_AA)
    return image


def body_picture(model: BodyModel) -> np.ndarray:
    """A 2 x 5 grid: front and side T-pose, four shapes, four poses."""
    front, side, oblique = np.array([0, 0, 4.2]), np.array([4.2, 0, 0]), np.array([2.6, 0.6, 3.3])
    panels = [panel(model, {}, {}, front, "T-pose, front"), panel(model, {}, {}, side, "T-pose, side")]
    panels += [panel(model, b, j, front if "beta" in name else oblique, name) for name, b, j in POSES]
    rows = [np.hstack(panels[i : i + 5]) for i in (0, 5)]
    return np.vstack(rows)


def render_picture(model_path: Path | None, out: Path) -> int:
    check_output(out, "--out", suffix=PICTURE_SUFFIXES, create_folder=True)
    if not cv2.imwrite(str(out), body_picture(BodyModel.from_file(model_path))):
        raise AppError(f"cannot write {out}")
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.body.picture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "body.png")
    parser.add_argument("--model", type=Path, help="body model file (default: the bundled body)")
    args = parser.parse_args(argv)
    try:
        return render_picture(args.model, args.out)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
