"""Where the app's files are: the repository root and the data under ``assets/``.

Every module that needs a bundled file asks here, so that moving a folder is a one-line change.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
DEMO_DIR = ASSETS / "demo"
BODY_DIR = ASSETS / "body"
MODELS_DIR = ASSETS / "models"
SYNTH_DIR = ASSETS / "synth"
BOARDS_DIR = ASSETS / "boards"
CONFIGS_DIR = ROOT / "configs"

DEFAULT_BODY = BODY_DIR / "default_body.npz"
DISPLAY_MESH = BODY_DIR / "display_mesh.npz"
DEFAULT_WEIGHTS = MODELS_DIR / "heatformer_s.pt"
CMU_POSES = SYNTH_DIR / "cmu_poses.npz"
