"""SMPL-layout body model files (``.npz`` or SMPL ``.pkl``): read, check, write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import AppError
from core.npzfile import read_npz
from engine.body.safe_pickle import load_pickle_arrays

NUM_JOINTS = 24
SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])
# For each SMPL-24 joint, its left-right counterpart (pelvis, hips, spine1, knees, spine2, ankles,
# spine3, feet, neck, collars, head, shoulders, elbows, wrists, hands; left before right).
SMPL_LEFT_RIGHT = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22)
SMPL_POSE_LEFT_RIGHT = tuple(j - 1 for j in SMPL_LEFT_RIGHT[1:])  # the same for the 23 body-pose joints (no pelvis)
FORMAT_VERSION = 1
MIN_VERTICES = NUM_JOINTS  # a mesh with fewer vertices than joints cannot be a body
MAX_EXTENT_M = 10.0  # template coordinates beyond this are not metres (millimetres, or garbage)
SUM_TOLERANCE = 0.05  # rows of weights and regressors are averages: they sum to 1
SMPL_VERTICES = 6890
# SMPL's surface vertices of the nose, eyes and ears (smplx's vertex_ids), and the SMPL joints at
# COCO-17's shoulders .. ankles: how the default body's coco17_regressor is built, and how one is
# made for a user's SMPL file (which has none).
SMPL_FACE_VERTICES = (332, 2800, 6260, 583, 4071)  # nose, left eye, right eye, left ear, right ear
COCO_FROM_SMPL_JOINTS = (16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)


class BodyModelError(AppError):
    """A body model file is missing, unreadable or has a wrong field."""


def bad(path: Path, message: str) -> BodyModelError:
    return BodyModelError(f"body model file {path}: {message}")


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
        raise bad(path, "not found")
    if path.suffix == ".pkl":
        raw = load_pickle_arrays(path)
    elif path.suffix == ".npz":
        raw = dict(read_npz(path, "body model file", BodyModelError))
    else:
        raise bad(path, f"unknown type {path.suffix!r} (expected .npz or .pkl)")
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
    """Every array's type, shape and values against the others, so that a bad file fails on
    loading, naming the field, never later during processing."""
    required = ("v_template", "f", "weights", "J_regressor", "kintree_table", "shapedirs")
    missing = [k for k in required if k not in raw]
    if missing:
        raise bad(path, f"missing field(s) {', '.join(missing)}")
    v = _dense(path, "v_template", raw["v_template"], np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise bad(path, f"field v_template has shape {v.shape}, expected (V, 3)")
    V = v.shape[0]
    if V < MIN_VERTICES:
        raise bad(path, f"field v_template has {V} vertices; a body model needs at least {MIN_VERTICES}")
    if np.abs(v).max() > MAX_EXTENT_M:
        raise bad(path, f"field v_template reaches {np.abs(v).max():.3g}; body models are in metres "
                             f"(at most {MAX_EXTENT_M:g})")  # fmt: skip
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
    if coco_arr is None and V == SMPL_VERTICES and arrays["J_regressor"].shape == (NUM_JOINTS, V):
        coco_arr = smpl_coco17_regressor(arrays["J_regressor"])  # an SMPL file: its keypoints are known
    expected = {
        "weights": (V, NUM_JOINTS), "J_regressor": (NUM_JOINTS, V), "posedirs": (V, 3, 207),
    }  # fmt: skip
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise bad(path, f"field {name} has shape {arrays[name].shape}, expected {shape}")
    _check_faces(path, arrays["f"], V)
    shapedirs = arrays["shapedirs"]
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (V, 3) or shapedirs.shape[2] < 1:
        raise bad(path, f"field shapedirs has shape {shapedirs.shape}, expected ({V}, 3, B) with B >= 1")
    if coco_arr is not None and coco_arr.shape != (17, V):
        raise bad(path, f"field coco17_regressor has shape {coco_arr.shape}, expected (17, {V})")
    for name, rows in (("weights", arrays["weights"]), ("J_regressor", arrays["J_regressor"]), ("coco17_regressor", coco_arr)):
        _check_rows_sum_to_one(path, name, rows)
    return BodyModelData(parents=_parents(path, raw["kintree_table"]), coco17_regressor=coco_arr, **arrays)


def smpl_coco17_regressor(J_regressor: np.ndarray) -> np.ndarray:
    """``[17, 6890]`` for a body in SMPL's topology: nose, eyes and ears on their surface vertices,
    the twelve body keypoints at the model's own joint centres."""
    out = np.zeros((17, SMPL_VERTICES))
    out[np.arange(5), SMPL_FACE_VERTICES] = 1.0
    out[5:] = J_regressor[list(COCO_FROM_SMPL_JOINTS)]
    return out


def _check_faces(path: Path, f: np.ndarray, V: int) -> None:
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise bad(path, f"field f has shape {f.shape}, expected (F, 3) with F >= 1")
    if f.min() < 0 or f.max() >= V:
        raise bad(path, f"field f has vertex indices from {f.min()} to {f.max()}, expected 0 to {V - 1}")


def _check_rows_sum_to_one(path: Path, name: str, rows: np.ndarray | None) -> None:
    """Skinning weights (per vertex) and regressors (per joint) are weighted averages."""
    if rows is None:
        return
    sums = rows.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
    if len(off):
        what = "vertex" if name == "weights" else "row"
        raise bad(path, f"field {name}: {what} {off[0]} sums to {sums[off[0]]:.3g} ({len(off)} {what}(s) do not sum to 1)")


def _parents(path: Path, kintree_raw: object) -> np.ndarray:
    kintree = _dense(path, "kintree_table", kintree_raw, np.int64)
    if kintree.shape != (2, NUM_JOINTS):
        raise bad(path, f"field kintree_table has shape {kintree.shape}, expected (2, 24)")
    if sorted(kintree[1].tolist()) != list(range(NUM_JOINTS)):
        raise bad(path, "field kintree_table's second row must list the joints 0 to 23")
    parents = np.where(kintree[0] >= NUM_JOINTS, -1, kintree[0])
    parents = parents[np.argsort(kintree[1])]
    if parents[0] != -1 or np.any(parents[1:] >= np.arange(1, NUM_JOINTS)) or np.any(parents[1:] < 0):
        raise bad(path, "field kintree_table is not a tree rooted at joint 0 in parent-first order")
    return parents


def _dense(path: Path, name: str, value: object, dtype: type) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy.sparse (SMPL's J_regressor)
        value = value.toarray()
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists
        raise bad(path, f"field {name} is not a numeric array") from exc
    if raw.dtype.kind not in "biuf":  # strings, objects, complex: not model data
        raise bad(path, f"field {name} holds {raw.dtype} values, expected numbers")
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw)):
        raise bad(path, f"field {name} has non-finite values (NaN or infinity)")
    arr: np.ndarray = raw.astype(dtype)
    if dtype is np.int64 and raw.dtype.kind == "f" and not np.array_equal(arr, raw):
        raise bad(path, f"field {name} holds fractional values, expected whole numbers")
    return arr
