"""SMPL-layout body model files (``.npz`` or SMPL ``.pkl``): read, check, write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import AppError
from engine.body.safe_pickle import load_pickle_arrays

NUM_JOINTS = 24
SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])
# For each SMPL-24 joint, its left-right counterpart (pelvis, hips, spine1, knees, spine2, ankles,
# spine3, feet, neck, collars, head, shoulders, elbows, wrists, hands; left before right).
SMPL_LEFT_RIGHT = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22)
SMPL_POSE_LEFT_RIGHT = tuple(j - 1 for j in SMPL_LEFT_RIGHT[1:])  # the same for the 23 body-pose joints (no pelvis)
FORMAT_VERSION = 1


class BodyModelError(AppError):
    """A body model file is missing, unreadable or has a wrong field."""


@dataclass(frozen=True)
class BodyModelData:
    """Arrays of an SMPL-format model (float64 / int64 numpy).

    v_template ``[V, 3]`` (metres, Y up), f ``[F, 3]``, weights ``[V, 24]``,
    J_regressor ``[24, V]`` (dense), parents ``[24]`` (-1 for the root), shapedirs ``[V, 3, B]``,
    posedirs ``[V, 3, 207]``, coco17_regressor ``[17, V]`` or None.
    """

    v_template: np.ndarray
    f: np.ndarray
    weights: np.ndarray
    J_regressor: np.ndarray
    parents: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    coco17_regressor: np.ndarray | None = None

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def kintree_table(self) -> np.ndarray:
        """SMPL's ``[2, 24]`` table: parents (root as 2**32 - 1) over joint ids."""
        parents = np.where(self.parents < 0, 2**32 - 1, self.parents).astype(np.int64)
        return np.stack([parents, np.arange(NUM_JOINTS)])


def load_body_file(path: str | Path) -> BodyModelData:
    """Load an SMPL-layout ``.npz`` or SMPL ``.pkl`` (restricted unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise BodyModelError(f"body model file {path}: not found")
    if path.suffix == ".pkl":
        raw = load_pickle_arrays(path)
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as exc:
            raise BodyModelError(f"body model file {path}: not a readable .npz ({exc})") from exc
    else:
        raise BodyModelError(f"body model file {path}: unknown type {path.suffix!r} (expected .npz or .pkl)")
    return _check(path, raw)


def save_body_npz(path: str | Path, model: BodyModelData) -> None:
    """Write ``model`` in SMPL's array names (plus ``coco17_regressor``) to ``path``."""
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "v_template": model.v_template.astype(np.float32),
        "f": model.f.astype(np.int32),
        "weights": model.weights.astype(np.float32),
        "J_regressor": model.J_regressor.astype(np.float32),
        "kintree_table": model.kintree_table,
        "shapedirs": model.shapedirs.astype(np.float32),
        "posedirs": model.posedirs.astype(np.float32),
    }
    if model.coco17_regressor is not None:
        arrays["coco17_regressor"] = model.coco17_regressor.astype(np.float32)
    np.savez_compressed(path, **arrays)


def _check(path: Path, raw: dict[str, object]) -> BodyModelData:
    required = ("v_template", "f", "weights", "J_regressor", "kintree_table", "shapedirs")
    missing = [k for k in required if k not in raw]
    if missing:
        raise BodyModelError(f"body model file {path}: missing field(s) {', '.join(missing)}")
    v = _dense(path, "v_template", raw["v_template"], np.float64)
    V = v.shape[0]
    arrays = {
        "v_template": v,
        "f": _dense(path, "f", raw["f"], np.int64),
        "weights": _dense(path, "weights", raw["weights"], np.float64),
        "J_regressor": _dense(path, "J_regressor", raw["J_regressor"], np.float64),
        "shapedirs": _dense(path, "shapedirs", raw["shapedirs"], np.float64),
    }
    posedirs = raw.get("posedirs")
    arrays["posedirs"] = np.zeros((V, 3, 207)) if posedirs is None else _dense(path, "posedirs", posedirs, np.float64)
    coco = raw.get("coco17_regressor")
    coco_arr = None if coco is None else _dense(path, "coco17_regressor", coco, np.float64)
    expected = {
        "v_template": (V, 3), "weights": (V, NUM_JOINTS), "J_regressor": (NUM_JOINTS, V), "posedirs": (V, 3, 207),
    }  # fmt: skip
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise BodyModelError(f"body model file {path}: field {name} has shape {arrays[name].shape}, expected {shape}")
    if arrays["f"].ndim != 2 or arrays["f"].shape[1] != 3 or arrays["f"].min() < 0 or arrays["f"].max() >= V:
        raise BodyModelError(f"body model file {path}: field f must be [F, 3] vertex indices below {V}")
    if arrays["shapedirs"].ndim != 3 or arrays["shapedirs"].shape[:2] != (V, 3):
        raise BodyModelError(
            f"body model file {path}: field shapedirs has shape {arrays['shapedirs'].shape}, expected ({V}, 3, B)"
        )
    if coco_arr is not None and coco_arr.shape != (17, V):
        raise BodyModelError(f"body model file {path}: field coco17_regressor has shape {coco_arr.shape}, expected (17, {V})")
    kintree = _dense(path, "kintree_table", raw["kintree_table"], np.int64)
    if kintree.shape != (2, NUM_JOINTS):
        raise BodyModelError(f"body model file {path}: field kintree_table has shape {kintree.shape}, expected (2, 24)")
    parents = np.where(kintree[0] >= NUM_JOINTS, -1, kintree[0])
    parents = parents[np.argsort(kintree[1])]
    if parents[0] != -1 or np.any(parents[1:] >= np.arange(1, NUM_JOINTS)) or np.any(parents[1:] < 0):
        raise BodyModelError(f"body model file {path}: field kintree_table is not a tree rooted at joint 0 in parent-first order")
    return BodyModelData(parents=parents, coco17_regressor=coco_arr, **arrays)


def _dense(path: Path, name: str, value: object, dtype: type) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy.sparse (SMPL's J_regressor)
        value = value.toarray()
    try:
        arr: np.ndarray = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise BodyModelError(f"body model file {path}: field {name} is not a numeric array") from exc
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise BodyModelError(f"body model file {path}: field {name} has non-finite values")
    return arr
