"""Body model tools.

python -m engine.body convert SMPL_NEUTRAL.pkl out.npz   # SMPL pickle -> our .npz (safe)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import AppError
from core.outputs import check_output
from engine.body.model_file import load_body_file, save_body_npz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.body", description="Body model tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    convert_cmd = sub.add_parser("convert", help="convert an SMPL .pkl (read without executing code) to .npz")
    convert_cmd.add_argument("source", type=Path)
    convert_cmd.add_argument("out", type=Path)
    render_cmd = sub.add_parser("render", help="draw the body (T-pose front/side, shapes, poses) to a PNG")
    render_cmd.add_argument("--out", type=Path, default=Path("docs/images/body.png"))
    render_cmd.add_argument("--model", type=Path, help="body model file (default: the bundled body)")
    args = parser.parse_args(argv)
    try:
        return convert(args.source, args.out) if args.command == "convert" else render_picture(args.model, args.out)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def convert(source: Path, out: Path) -> int:
    check_output(out, "output", suffix=".npz")  # before reading: a bad path fails at once
    model = load_body_file(source)
    save_body_npz(out, model)
    print(f"wrote {out}: {model.num_vertices} vertices, {len(model.f)} faces, {model.num_betas} betas")
    return 0


def render_picture(model_path: Path | None, out: Path) -> int:
    import cv2

    from engine.body.model import BodyModel
    from engine.body.pictures import body_picture

    check_output(out, "--out", suffix=PICTURE_SUFFIXES, create_folder=True)
    if not cv2.imwrite(str(out), body_picture(BodyModel.from_file(model_path))):
        raise AppError(f"cannot write {out}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
