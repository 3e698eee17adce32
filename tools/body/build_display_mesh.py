"""Build ``assets/body/display_mesh.npz``: a coarse version of the body mesh for drawing over
camera images live (a few ms per view instead of tens).

    python -m tools.body.build_display_mesh [--vertices 1200]

It decimates the default body's mesh with the same mirror-symmetric edge collapse that built it,
so the display mesh is a subset of the body's vertices (``vertices``: their indices) with its own
``faces`` (indices into that subset). Any body in SMPL's 6,890-vertex topology can use it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from core.paths import DEFAULT_BODY, DISPLAY_MESH
from tools.body.decimate import decimate_symmetric


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vertices", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=DISPLAY_MESH)
    args = parser.parse_args()
    body = np.load(DEFAULT_BODY)
    mirror = np.load(DEFAULT_BODY.with_name("default_body_mirror.npy"))
    kept, faces = decimate_symmetric(body["v_template"].astype(np.float64), body["f"], mirror, args.vertices)
    kept = np.sort(np.asarray(kept))
    lookup = np.full(len(body["v_template"]), -1)
    lookup[kept] = np.arange(len(kept))
    local = lookup[np.asarray(faces)]
    assert (local >= 0).all()
    np.savez_compressed(args.out, vertices=kept.astype(np.int32), faces=local.astype(np.int32),
                        source_vertices=np.array(len(body["v_template"])))  # fmt: skip
    print(f"wrote {args.out}: {len(kept)} vertices, {len(local)} faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
