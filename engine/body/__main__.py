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
    args = parser.parse_args(argv)
    try:
        return convert(args.source, args.out)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def convert(source: Path, out: Path) -> int:
    check_output(out, "output", suffix=".npz")  # before reading: a bad path fails at once
    model = load_body_file(source)
    save_body_npz(out, model)
    print(f"wrote {out}: {model.num_vertices} vertices, {len(model.f)} faces, {model.num_betas} betas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
