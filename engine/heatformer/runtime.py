"""Load trained HeatFormer-S weights and run them on detections (the app's and the evaluator's
entry point)."""

from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from core.errors import AppError
from core.paths import DEFAULT_WEIGHTS
from engine.body import BodyModel
from engine.body.model_file import BodyModelError
from engine.heatformer.model import HeatFormer, HeatFormerConfig

FORMAT_VERSION = 1
# Upper bounds of each size in a checkpoint's model_config: beyond them the file is not ours (and
# building the model would take all the memory).
CONFIG_LIMITS = {"map_size": 256, "patch": 64, "width": 2048, "heads": 64, "layers": 32, "iterations": 32, "num_betas": 300}


class ModelFileError(AppError):
    """A weights file is missing or does not match the model."""


def bad(path: Path, message: str) -> ModelFileError:
    return ModelFileError(f"model weights {path}: {message}")


@dataclass(frozen=True)
class Checkpoint:
    """What a weights file holds: the model's configuration and its tensors."""

    path: Path
    config: HeatFormerConfig
    state: dict[str, torch.Tensor]


def read_weights(path: Path | None = None) -> Checkpoint:
    """Read and check a weights file (default: the bundled one) without building the model: a
    dict with ``model`` (name -> tensor) and ``model_config``, as ``training.train`` writes it."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise bad(path, f"not found (train with: python -m training.train ... --export {path})")
    if path.stat().st_size == 0:
        raise bad(path, "cannot load: the file is empty")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, ValueError, zipfile.BadZipFile, KeyError, TypeError) as exc:
        if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
            raise bad(path, "cannot load: refused, it holds objects other than tensors (loading them could run code)") from exc
        reason = "is truncated" if isinstance(exc, EOFError) else f"is truncated or not a weights file ({type(exc).__name__})"
        raise bad(path, f"cannot load: the file {reason}") from exc
    if not isinstance(ckpt, dict):
        raise ModelFileError(
            f"model weights {path}: holds a value of type {type(ckpt).__name__}, expected a dict with model and model_config"
        )
    missing = [k for k in ("model", "model_config") if k not in ckpt]
    if missing:
        keys = ", ".join(sorted(str(k) for k in ckpt)[:5]) or "none"
        raise bad(path, f"missing key(s) {', '.join(missing)} (found: {keys})")
    version = ckpt.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise bad(path, f"format_version {version!r} is not one this app reads (1 to {FORMAT_VERSION})")
    return Checkpoint(path, _config(path, ckpt["model_config"]), _state(path, ckpt["model"]))


def _config(path: Path, raw: object) -> HeatFormerConfig:
    if not isinstance(raw, dict):
        raise bad(path, f"model_config is a {type(raw).__name__}, expected a dict")
    defaults = HeatFormerConfig()
    values: dict[str, Any] = {}  # each checked against its field's default type below
    for f in fields(HeatFormerConfig):
        if f.name not in raw:
            continue
        value, default = raw[f.name], getattr(defaults, f.name)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= CONFIG_LIMITS.get(f.name, 10**6)
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if not ok:
            raise bad(path, f"model_config.{f.name} = {value!r} is not a valid value (default {default!r})")
        values[f.name] = value
    cfg = HeatFormerConfig(**values)
    if cfg.map_size % cfg.patch or cfg.width % cfg.heads:
        raise bad(path, "model_config: map_size must be a multiple of patch and width of heads")
    return cfg


def _state(path: Path, raw: object) -> dict[str, torch.Tensor]:
    if not isinstance(raw, dict) or not raw:
        raise bad(path, f"model is a {type(raw).__name__}, expected a dict of tensors")
    for name, value in raw.items():
        if not isinstance(value, torch.Tensor):
            raise bad(path, f"model.{name} is a {type(value).__name__}, expected a tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise bad(path, f"model.{name} has non-finite values (NaN or infinity)")
    return raw


def check_body_for_heatformer(body: BodyModel, cfg: HeatFormerConfig | None = None) -> None:
    """HeatFormer compares COCO-17 keypoints and predicts ``num_betas`` shape coefficients: the
    body model must provide both."""
    cfg = cfg or HeatFormerConfig()
    name = f"body model file {body.source}" if body.source is not None else "the body model"
    if not body.has_keypoints:
        raise BodyModelError(f"{name}: missing field coco17_regressor (HeatFormer needs the COCO-17 keypoints)")
    if body.num_betas < cfg.num_betas:
        raise BodyModelError(f"{name}: field shapedirs has {body.num_betas} shape directions; HeatFormer needs {cfg.num_betas}")


def load_heatformer(path: Path | Checkpoint | None = None, body: BodyModel | None = None) -> HeatFormer:
    """The trained model (eval mode) from ``path`` (default: the bundled weights; or a checkpoint
    already read with :func:`read_weights`)."""
    ckpt = path if isinstance(path, Checkpoint) else read_weights(path)
    body = body or BodyModel.from_file()
    check_body_for_heatformer(body, ckpt.config)
    try:
        model = HeatFormer(body, ckpt.config)
    except (RuntimeError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise bad(ckpt.path, f"model_config does not make a model ({exc})") from exc
    expected = {k: v.shape for k, v in model.state_dict().items() if not k.startswith("body.")}
    missing = [k for k in expected if k not in ckpt.state]
    unexpected = [k for k in ckpt.state if k not in expected and not k.startswith("body.")]
    if missing or unexpected:
        raise bad(ckpt.path, f"do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for key, shape in expected.items():
        if ckpt.state[key].shape != shape:
            raise bad(ckpt.path, f"model.{key} has shape {tuple(ckpt.state[key].shape)}, the model expects {tuple(shape)}")
    model.load_state_dict({k: v for k, v in ckpt.state.items() if k in expected}, strict=False)
    return model.eval()
