"""Load trained HeatFormer-S weights and run them on detections (the app's and the evaluator's
entry point)."""

from __future__ import annotations

import pickle
from dataclasses import fields
from pathlib import Path

import torch

from core.errors import AppError
from engine.body import BodyModel
from engine.heatformer.model import HeatFormer, HeatFormerConfig

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "models" / "heatformer_s.pt"


class ModelFileError(AppError):
    """A weights file is missing or does not match the model."""


def load_heatformer(path: Path | None = None, body: BodyModel | None = None) -> HeatFormer:
    """The trained model (eval mode) from ``path`` (default: the bundled weights)."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise ModelFileError(f"model weights {path}: not found (train with: python -m engine.train ... --export {path})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        reason = "is empty or truncated" if isinstance(exc, EOFError) else f"is not a weights file ({type(exc).__name__})"
        raise ModelFileError(f"model weights {path}: cannot load: the file {reason}") from exc
    try:
        known = {f.name for f in fields(HeatFormerConfig)}
        cfg = HeatFormerConfig(**{k: v for k, v in ckpt["model_config"].items() if k in known})
        model = HeatFormer(body or BodyModel.from_file(), cfg)
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    except (KeyError, RuntimeError, TypeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ModelFileError(f"model weights {path}: cannot load ({exc})") from exc
    missing = [k for k in missing if not k.startswith("body.")]
    if missing or unexpected:
        raise ModelFileError(f"model weights {path}: do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval()
