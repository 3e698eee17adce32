"""SMPL-format body models: safe loading, our own linear blend skinning (PyTorch)."""

from engine.body.model import BodyModel, BodyOutput
from engine.body.model_file import BodyModelData, load_body_file, save_body_npz

__all__ = ["BodyModel", "BodyModelData", "BodyOutput", "load_body_file", "save_body_npz"]
