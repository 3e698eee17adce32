"""Measure where BlazePose marks its keypoints on the default body, and write
``assets/body/blazepose_keypoint_offsets.json`` (engine.heatformer.offsets explains what they are).

    python -m tools.body.keypoint_offsets [--source assets/demo_static] [--out FILE] [--passes 2]

BlazePose runs over every frame-set of ``--source`` (default: the bundled demo capture's static
trial, real footage that the real-data benchmark does not judge), then
:func:`engine.heatformer.offsets.estimate_offsets` fits the body to all its views and measures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from core.paths import DEFAULT_BODY, ROOT, STATIC_DEMO_DIR
from engine.heatformer.offsets import BLAZEPOSE_OFFSETS, PASSES, KeypointOffsets, estimate_offsets, file_sha256, save_offsets

ALL_FRAMES = 10_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.body.keypoint_offsets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=STATIC_DEMO_DIR, help="calibrated recording (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=BLAZEPOSE_OFFSETS, help="offsets file to write (default: %(default)s)")
    parser.add_argument("--passes", type=int, default=PASSES, help="fit-and-measure passes (default: %(default)s)")
    args = parser.parse_args(argv)
    from engine.heatformer.runtime import load_heatformer
    from engine.realbench import detect_demo

    det = detect_demo(ALL_FRAMES, args.source)
    model = load_heatformer()
    model.eval()
    offsets = estimate_offsets(model, det.cameras, det.keypoints, args.passes)
    try:
        source = str(args.source.resolve().relative_to(ROOT))
    except ValueError:
        source = str(args.source)
    source = f"{source}: {len(det.times)} frame-sets x {len(det.cameras)} views, {args.passes} passes"
    save_offsets(args.out, KeypointOffsets("blazepose", file_sha256(DEFAULT_BODY), offsets, source))
    for name, row in zip(("nose", "eyes", "ears", "shoulders", "elbows", "wrists", "hips", "knees", "ankles"),
                         offsets[[0, 1, 3, 5, 7, 9, 11, 13, 15]], strict=True):  # fmt: skip
        print(f"{name:>10}: {np.round(row * 1000).astype(int)} mm (left side)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
