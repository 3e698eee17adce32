"""The inference backend interface shared by every runtime.

A backend runs the whole HeatFormer-S (all iterations) on one batch of frame-sets. Inputs and
outputs are numpy arrays with the ONNX export's names (engine.heatformer.export):

- uncalibrated inputs: ``obs_xy`` ``[B, V, 17, 2]``, ``obs_conf`` ``[B, V, 17]``;
- calibrated inputs add ``K_crop`` ``[B, V, 3, 3]``, ``root_cam`` ``[B, V, 3]``, ``R`` ``[B, V, 3, 3]``;
- outputs: ``orient`` ``[B, V, 6]``, ``pose`` ``[B, V, 23, 6]``, ``betas`` ``[B, V, 10]``, ``cam``
  ``[B, V, 3]``, ``keypoints2d`` ``[B, V, 17, 2]``, ``joints`` ``[B, V, 24, 3]``, ``view_logit``
  ``[B, V, 1]`` (each view's weight in the last iteration, before the softmax over the views).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from core.errors import AppError
from engine.heatformer.export import OUTPUTS

UNCALIBRATED_INPUTS = ("obs_xy", "obs_conf")
CALIBRATED_INPUTS = ("obs_xy", "obs_conf", "K_crop", "root_cam", "R")
MIN_VIEWS, MAX_VIEWS = 1, 8


class BackendError(AppError):
    """A backend is not installed, has no device, or failed to load."""


@dataclass(frozen=True)
class Capabilities:
    device: str  # "cpu" or "cuda"
    precision: str  # "fp32" or "fp16"
    dynamic_views: bool  # any number of views in MIN_VIEWS..MAX_VIEWS without a rebuild


class Backend(Protocol):
    name: str
    calibrated: bool
    capabilities: Capabilities

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def input_names(calibrated: bool) -> tuple[str, ...]:
    return CALIBRATED_INPUTS if calibrated else UNCALIBRATED_INPUTS


def output_names() -> tuple[str, ...]:
    return tuple(OUTPUTS)


def check_feed(feed: dict[str, np.ndarray], calibrated: bool) -> dict[str, np.ndarray]:
    """float32, C-contiguous, all names present, views within the supported range."""
    missing = [n for n in input_names(calibrated) if n not in feed]
    if missing:
        raise BackendError(f"inference input(s) missing: {', '.join(missing)}")
    views = feed["obs_xy"].shape[1]
    if not MIN_VIEWS <= views <= MAX_VIEWS:
        raise BackendError(f"{views} views: the model runs {MIN_VIEWS} to {MAX_VIEWS} views at once")
    return {n: np.ascontiguousarray(feed[n], dtype=np.float32) for n in input_names(calibrated)}


# The exported graph's version: a change in how HeatFormer computes (not in its weights) makes
# graphs and engines cached by an earlier version stale. 2: heatmap tails cut (no subnormal floats).
# 3: the kinematic tree posed a depth at a time (the same numbers from fewer nodes; 4 views 7.2-7.4 against 7.3-8.0 ms).
GRAPH_VERSION = 3


def model_hash(weights: Path, body: Path | None = None) -> str:
    """Identifies the model: the graph version, the weights file's content, and the body model's
    when it is not the bundled one (an exported graph holds the body's joints: another body needs
    its own)."""
    from engine.body.model import DEFAULT_BODY

    digest = hashlib.sha256(f"graph {GRAPH_VERSION}".encode())
    files = [weights] if body is None or Path(body).resolve() == DEFAULT_BODY.resolve() else [weights, body]
    for path in files:
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Where exported graphs and built engines are kept ($ROOM_CAPTURE_CACHE, else the user cache)."""
    base = os.environ.get("ROOM_CAPTURE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "room-capture"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
