"""Where the app's files are: the repository root and the data under ``assets/``.

Every module that needs a bundled file asks here, so that moving a folder is a one-line change.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
DEMO_DIR = ASSETS / "demo"
PEOPLE_DEMO_DIR = ASSETS / "demo_people"  # the demo with a composited second person (multi-person tests)
STATIC_DEMO_DIR = ASSETS / "demo_static"  # the demo capture's static trial (where BlazePose's keypoint offsets are measured)
BODY_DIR = ASSETS / "body"
MODELS_DIR = ASSETS / "models"
SYNTH_DIR = ASSETS / "synth"
BOARDS_DIR = ASSETS / "boards"
CONFIGS_DIR = ROOT / "configs"

DEFAULT_BODY = BODY_DIR / "default_body.npz"
DISPLAY_MESH = BODY_DIR / "display_mesh.npz"
DEFAULT_WEIGHTS = MODELS_DIR / "heatformer_s.pt"
CMU_POSES = SYNTH_DIR / "cmu_poses.npz"


def user_cache_dir() -> Path:
    """Where the app keeps files it builds on first use ($ROOM_CAPTURE_CACHE, else
    ``$XDG_CACHE_HOME/room-capture``, else ``~/.cache/room-capture``). Not created here."""
    base = os.environ.get("ROOM_CAPTURE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "room-capture"
    )
    return Path(base)


def user_data_dir() -> Path:
    """Where the app keeps what it writes for the user outside sessions, such as the events of
    live runs ($ROOM_CAPTURE_DATA, else ``$XDG_DATA_HOME/room-capture``, else
    ``~/.local/share/room-capture``). Not created here."""
    base = os.environ.get("ROOM_CAPTURE_DATA") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share"), "room-capture"
    )
    return Path(base)
