"""Bad input on the engine's files: body models (``--body-model``, ``engine.body``), HeatFormer
weights (``--model``), keypoints exchange files (``engine.evaluate --keypoints``) and output paths.
Each case exits 2 with one ``error:`` line naming the file and the field, before any model runs."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from engine.body.model import DEFAULT_BODY
from engine.heatformer.runtime import DEFAULT_WEIGHTS
from tests.badinput import Case, check_case, parametrize, run_entry

MAIN = ["--headless", "--frames", "1", "--out", "{tmp}/o.npz", "--detector", "fake", "--backend", "torch"]
BODY = [*MAIN, "--body-model", "{tmp}/bad.npz"]
WEIGHTS = [*MAIN, "--model", "{tmp}/bad.pt"]
EVAL = ["--keypoints", "{tmp}/kp.npz", "--out", "{tmp}/o.npz"]
Make = Callable[[Path], None]


# --- body models -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def default_body() -> dict[str, np.ndarray]:
    with np.load(DEFAULT_BODY) as npz:
        return {k: npz[k] for k in npz.files}


def body(name: str = "bad.npz", **change: object) -> Make:
    """The bundled body with arrays replaced (a callable gets the old array) or removed (None)."""

    def make(tmp: Path) -> None:
        arrays = dict(default_body())
        for key, value in change.items():
            if value is None:
                arrays.pop(key, None)
            else:
                arrays[key] = value(arrays[key]) if callable(value) else value
        np.savez(tmp / name, **arrays)

    return make


def small_body(V: int) -> Make:
    """A body cut to its first ``V`` vertices, every array consistent with the others."""
    src = default_body()

    def make(tmp: Path) -> None:
        np.savez(tmp / "bad.npz", **{**src, "v_template": src["v_template"][:V], "weights": src["weights"][:V],
                                     "J_regressor": src["J_regressor"][:, :V], "shapedirs": src["shapedirs"][:V],
                                     "posedirs": src["posedirs"][:V], "coco17_regressor": src["coco17_regressor"][:, :V],
                                     "f": np.array([[0, 1, 2]]) if V >= 3 else np.zeros((0, 3), np.int64)})  # fmt: skip

    return make


def body_without_keypoints(V: int = 30) -> Make:
    """A consistent body of ``V`` vertices (not SMPL's topology) without a coco17_regressor."""
    src = default_body()
    idx = np.linspace(0, len(src["v_template"]) - 1, V).astype(int)

    def make(tmp: Path) -> None:
        J = src["J_regressor"][:, idx] + 1e-3
        arrays = {**src, "J_regressor": J / J.sum(1)[:, None], "f": np.array([[0, 1, 2]])}
        for key in ("v_template", "weights", "shapedirs", "posedirs"):
            arrays[key] = src[key][idx]
        arrays.pop("coco17_regressor")
        np.savez(tmp / "bad.npz", **arrays)

    return make


def truncated(source: Path, name: str) -> Make:
    def make(tmp: Path) -> None:
        data = source.read_bytes()
        (tmp / name).write_bytes(data[: len(data) // 2])

    return make


def with_nan(array: np.ndarray) -> np.ndarray:
    out = array.astype(np.float64).copy()
    out.flat[len(out.flat) // 2] = np.nan
    return out


def kintree_cycle(kintree: np.ndarray) -> np.ndarray:
    out = kintree.copy()
    out[0, 1] = 5  # joint 1's parent after it: not parent-first
    return out


# --- SMPL pickles ------------------------------------------------------------------------------


class Evil:
    """Unpickling this runs a shell command (the restricted unpickler must refuse it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickle_file(name: str, value: Callable[[Path], object], cut: bool = False) -> Make:
    def make(tmp: Path) -> None:
        data = pickle.dumps(value(tmp), protocol=2)
        (tmp / name).write_bytes(data[: len(data) // 2] if cut else data)

    return make


def smpl_dict(tmp: Path) -> dict[str, object]:
    return {k: v for k, v in default_body().items() if k != "format_version"}


# --- weights -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def default_checkpoint() -> dict[str, object]:
    return torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)


def weights(value: Callable[[dict[str, object]], object]) -> Make:
    """``bad.pt`` holding ``value(bundled checkpoint)`` (saved with torch.save)."""

    def make(tmp: Path) -> None:
        torch.save(value(dict(default_checkpoint())), tmp / "bad.pt")

    return make


def with_tensor(ckpt: dict[str, object], name: str, tensor: torch.Tensor) -> dict[str, object]:
    state = dict(ckpt["model"])
    state[name] = tensor
    return {**ckpt, "model": state}


def with_config(ckpt: dict[str, object], **change: object) -> dict[str, object]:
    return {**ckpt, "model_config": {**ckpt["model_config"], **change}}


# --- keypoints exchange files ------------------------------------------------------------------


def good_keypoints(T: int = 2, V: int = 2) -> dict[str, np.ndarray]:
    """A calibrated, well-formed exchange file: T frames of V views."""
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(100, 500, (T, V, 17, 2)), np.full((T, V, 17, 1), 0.9)], axis=-1)
    K = np.tile(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), (V, 1, 1))
    return {"keypoints": kp.astype(np.float32), "K": K, "R": np.tile(np.eye(3), (V, 1, 1)), "t": np.tile([0.0, 0, 3], (V, 1)),
            "image_size": np.tile([640, 480], (V, 1)), "camera_names": np.array([f"cam{i}" for i in range(V)]),
            "timestamps": np.arange(T) / 30.0}  # fmt: skip


def keypoints(T: int = 2, V: int = 2, **change: object) -> Make:
    """``kp.npz``: the good file with arrays replaced (a callable edits a copy) or removed (None)."""

    def make(tmp: Path) -> None:
        arrays = good_keypoints(T, V)
        for key, value in change.items():
            if value is None:
                arrays.pop(key)
            elif callable(value):
                arrays[key] = arrays[key].copy()
                result = value(arrays[key])
                arrays[key] = arrays[key] if result is None else result
            else:
                arrays[key] = value
        np.savez(tmp / "kp.npz", **arrays)

    return make


def setter(index: tuple[object, ...], value: float) -> Callable[[np.ndarray], None]:
    def edit(array: np.ndarray) -> None:
        array[index] = value

    return edit


def good_keypoints_file(tmp: Path) -> None:
    np.savez(tmp / "kp.npz", **good_keypoints())


def kp_case(name: str, expect: list[str], **change: object) -> Case:
    """engine.evaluate on ``kp.npz`` (the good file changed as in :func:`keypoints`); the error line
    names the file and ``expect``."""
    return Case(f"kp-{name}", "engine.evaluate", EVAL, expect=["kp.npz", *expect], make=keypoints(**change))


# fmt: off
CASES = [
    # body model files given to main (--body-model): found before any processing
    Case("body-empty", "main", BODY, expect=["bad.npz", "empty"], files={"bad.npz": b""}),
    Case("body-truncated", "main", BODY, expect=["bad.npz", "truncated"], make=truncated(DEFAULT_BODY, "bad.npz")),
    Case("body-not-a-zip", "main", BODY, expect=["bad.npz", "not a zip"], files={"bad.npz": "v 0 0 0\nf 1 2 3\n"}),
    Case("body-random-bytes", "main", BODY, expect=["bad.npz", "not a readable .npz"], files={"bad.npz": bytes(range(256)) * 8}),
    Case("body-missing-weights", "main", BODY, expect=["bad.npz", "missing", "weights"], make=body(weights=None)),
    Case("body-10-vertices", "main", BODY, expect=["bad.npz", "v_template", "10 vertices"], make=small_body(10)),
    Case("body-0-vertices", "main", BODY, expect=["bad.npz", "v_template", "0 vertices"], make=small_body(0)),
    Case("body-weights-shape", "main", BODY, expect=["bad.npz", "weights", "shape"], make=body(weights=lambda w: w[:, :23])),
    Case("body-regressor-shape", "main", BODY, expect=["bad.npz", "J_regressor", "shape"],
         make=body(J_regressor=lambda j: j[:, :-1])),  # fmt: skip
    Case("body-posedirs-shape", "main", BODY, expect=["bad.npz", "posedirs"], make=body(posedirs=lambda p: p[:, :, :10])),
    Case("body-coco-shape", "main", BODY, expect=["bad.npz", "coco17_regressor"], make=body(coco17_regressor=lambda c: c[:16])),
    Case("body-nan-template", "main", BODY, expect=["bad.npz", "v_template", "non-finite"], make=body(v_template=with_nan)),
    Case("body-nan-shapedirs", "main", BODY, expect=["bad.npz", "shapedirs", "non-finite"], make=body(shapedirs=with_nan)),
    Case("body-nan-weights", "main", BODY, expect=["bad.npz", "weights", "non-finite"], make=body(weights=with_nan)),
    Case("body-millimetres", "main", BODY, expect=["bad.npz", "v_template", "metres"], make=body(v_template=lambda v: v * 1000)),
    Case("body-weights-not-normalised", "main", BODY, expect=["bad.npz", "weights", "sum"], make=body(weights=lambda w: 2 * w)),
    Case("body-face-index-too-large", "main", BODY, expect=["bad.npz", "field f"], make=body(f=lambda f: f + 10)),
    Case("body-no-faces", "main", BODY, expect=["bad.npz", "field f"], make=body(f=np.zeros((0, 3), np.int32))),
    Case("body-text-template", "main", BODY, expect=["bad.npz", "v_template"], make=body(v_template=np.array(["a", "b"]))),
    Case("body-kintree-not-a-tree", "main", BODY, expect=["bad.npz", "kintree_table"], make=body(kintree_table=kintree_cycle)),
    Case("body-no-coco-regressor", "main", BODY, expect=["bad.npz", "coco17_regressor"], make=body_without_keypoints()),
    Case("body-too-few-betas", "main", BODY, expect=["bad.npz", "shapedirs"], make=body(shapedirs=lambda s: s[:, :, :5])),
    Case("body-bad-with-no-body", "main", [*BODY, "--no-body"], expect=["bad.npz", "truncated"],
         make=truncated(DEFAULT_BODY, "bad.npz")),  # fmt: skip
    Case("body-unknown-type", "main", [*MAIN, "--body-model", "{tmp}/body.obj"], expect=["body.obj", "unknown type"],
         files={"body.obj": "v 0 0 0\n"}),  # fmt: skip
    # SMPL pickles (read without running code)
    Case("pkl-truncated", "main", [*MAIN, "--body-model", "{tmp}/bad.pkl"], expect=["bad.pkl", "pickle"],
         make=pickle_file("bad.pkl", smpl_dict, cut=True)),  # fmt: skip
    Case("pkl-empty", "engine.body", ["convert", "{tmp}/bad.pkl", "{tmp}/out.npz"], expect=["bad.pkl", "truncated"],
         files={"bad.pkl": b""}),  # fmt: skip
    Case("pkl-random-bytes", "engine.body", ["convert", "{tmp}/bad.pkl", "{tmp}/out.npz"], expect=["bad.pkl", "pickle"],
         files={"bad.pkl": b"\x80\x02" + bytes(range(3, 256)) * 4}),  # fmt: skip
    Case("pkl-runs-a-command", "engine.body", ["convert", "{tmp}/bad.pkl", "{tmp}/out.npz"], expect=["bad.pkl", "refused"],
         make=pickle_file("bad.pkl", lambda tmp: {"v_template": Evil(tmp / "pwned")})),  # fmt: skip
    Case("pkl-calls-eval", "main", [*MAIN, "--body-model", "{tmp}/bad.pkl"], expect=["bad.pkl", "refused", "eval"],
         make=pickle_file("bad.pkl", lambda tmp: {"x": eval})),  # fmt: skip
    Case("pkl-a-list", "engine.body", ["convert", "{tmp}/bad.pkl", "{tmp}/out.npz"], expect=["bad.pkl", "dict"],
         make=pickle_file("bad.pkl", lambda tmp: [1, 2, 3])),  # fmt: skip
    Case("pkl-missing-arrays", "engine.body", ["convert", "{tmp}/bad.pkl", "{tmp}/out.npz"], expect=["bad.pkl", "v_template"],
         make=pickle_file("bad.pkl", lambda tmp: {"f": np.zeros((1, 3))})),  # fmt: skip
    # engine.body convert; the body picture (python -m tools.body.picture)
    Case("convert-truncated-npz", "engine.body", ["convert", "{tmp}/bad.npz", "{tmp}/out.npz"], expect=["bad.npz", "truncated"],
         make=truncated(DEFAULT_BODY, "bad.npz")),  # fmt: skip
    Case("convert-out-folder-missing", "engine.body", ["convert", "{tmp}/bad.pkl", "{tmp}/nodir/out.npz"],
         expect=["nodir", "does not exist"], make=pickle_file("bad.pkl", smpl_dict)),  # fmt: skip
    Case("convert-out-not-npz", "engine.body", ["convert", "{tmp}/bad.pkl", "{tmp}/out.txt"], expect=["out.txt", ".npz"],
         make=pickle_file("bad.pkl", smpl_dict)),  # fmt: skip
    Case("render-bad-model", "tools.body.picture", ["--model", "{tmp}/bad.npz", "--out", "{tmp}/b.png"],
         expect=["bad.npz", "v_template"], make=small_body(5)),  # fmt: skip
    Case("render-out-not-a-picture", "tools.body.picture", ["--out", "{tmp}/b.txt"], expect=["b.txt", ".png"]),
    Case("render-out-is-a-folder", "tools.body.picture", ["--out", "{tmp}/pics"], expect=["pics", "folder"],
         files={"pics/keep.txt": "x"}),  # fmt: skip
    Case("render-out-under-a-file", "tools.body.picture", ["--out", "{tmp}/notes.txt/b.png"], expect=["notes.txt", "folder"],
         files={"notes.txt": "x"}),  # fmt: skip
    # HeatFormer weights (--model, --weights)
    Case("weights-an-int", "main", WEIGHTS, expect=["bad.pt", "int"], make=weights(lambda c: 5)),
    Case("weights-a-bare-tensor", "main", WEIGHTS, expect=["bad.pt", "tensor"], make=weights(lambda c: torch.zeros(3, 3))),
    Case("weights-a-list", "main", WEIGHTS, expect=["bad.pt", "list"], make=weights(lambda c: [1, 2])),
    Case("weights-wrong-keys", "main", WEIGHTS, expect=["bad.pt", "model_config"], make=weights(lambda c: {"state": c["model"]})),
    Case("weights-state-only", "main", WEIGHTS, expect=["bad.pt", "missing key(s) model"],
         make=weights(lambda c: dict(c["model"]))),  # fmt: skip
    Case("weights-wrong-shape", "main", WEIGHTS, expect=["bad.pt", "encoder.embed.weight", "shape"],
         make=weights(lambda c: with_tensor(c, "encoder.embed.weight", torch.zeros(4, 4)))),  # fmt: skip
    Case("weights-missing-tensor", "main", WEIGHTS, expect=["bad.pt", "missing"],
         make=weights(lambda c: {**c, "model": {k: v for k, v in c["model"].items() if k != "query.bias"}})),  # fmt: skip
    Case("weights-nan-tensor", "main", WEIGHTS, expect=["bad.pt", "query.bias", "non-finite"],
         make=weights(lambda c: with_tensor(c, "query.bias", torch.full((128,), float("nan"))))),  # fmt: skip
    Case("weights-config-a-list", "main", WEIGHTS, expect=["bad.pt", "model_config"],
         make=weights(lambda c: {**c, "model_config": [1, 2]})),  # fmt: skip
    Case("weights-config-text", "main", WEIGHTS, expect=["bad.pt", "model_config.width"],
         make=weights(lambda c: with_config(c, width="wide"))),  # fmt: skip
    Case("weights-config-huge", "main", WEIGHTS, expect=["bad.pt", "model_config.layers"],
         make=weights(lambda c: with_config(c, layers=10**6))),  # fmt: skip
    Case("weights-config-heads", "main", WEIGHTS, expect=["bad.pt", "heads"], make=weights(lambda c: with_config(c, heads=3))),
    Case("weights-runs-a-command", "main", WEIGHTS, expect=["bad.pt", "refused"],
         make=weights(lambda c: {**c, "meta": Evil(Path("/nonexistent/pwned"))})),  # fmt: skip
    Case("weights-random-bytes", "main", WEIGHTS, expect=["bad.pt", "cannot load"], files={"bad.pt": bytes(range(256)) * 8}),
    Case("weights-empty", "main", WEIGHTS, expect=["bad.pt", "empty"], files={"bad.pt": b""}),
    Case("weights-truncated", "main", WEIGHTS, expect=["bad.pt", "truncated"], make=truncated(DEFAULT_WEIGHTS, "bad.pt")),
    Case("weights-evaluate-int", "engine.evaluate", [*EVAL, "--weights", "{tmp}/bad.pt"], expect=["bad.pt", "int"],
         make=lambda tmp: (good_keypoints_file(tmp), weights(lambda c: 7)(tmp))),  # fmt: skip
    # keypoints exchange files (engine.evaluate --keypoints)
    kp_case("zero-views", ["keypoints", "0 view"], V=0),
    kp_case("zero-frames", ["keypoints", "0 frame"], keypoints=np.zeros((0, 2, 17, 3), np.float32), timestamps=None),
    kp_case("nan", ["keypoints", "non-finite"], keypoints=setter((1, 0, 5, 0), np.nan)),
    kp_case("1e30", ["keypoints", "beyond"], keypoints=setter((0, 1, 3, 1), 1e30)),
    kp_case("infinite-confidence", ["confidence"], keypoints=setter((0, 0, 0, 2), np.inf)),
    Case("kp-confidence-percent", "engine.evaluate", EVAL, expect=["kp.npz", "confidence", "[0, 1]"],
         make=keypoints(keypoints=setter((..., 2), 90.0))),  # fmt: skip
    kp_case("confidence-negative", ["confidence"], keypoints=setter((1, 1, 1, 2), -0.5)),
    kp_case("zero-K", ["field K", "view 0"], K=setter((0,), 0.0)),
    kp_case("singular-K", ["field K", "view 1", "focal"], K=setter((1, 1, 1), 0.0)),
    kp_case("K-1e-30-focal", ["field K", "focal"], K=setter((0, 0, 0), 1e-30)),
    kp_case("K-nan", ["field K", "non-finite"], K=setter((0, 0, 2), np.nan)),
    kp_case("R-1e308", ["field R", "rotation"], R=setter((0,), 1e308)),
    kp_case("R-scaled", ["field R", "view 1"], R=lambda r: r * [[[1]], [[2]]]),
    kp_case("R-mirror", ["field R", "det"], R=setter((0, 2, 2), -1.0)),
    kp_case("t-nan", ["field t", "non-finite"], t=setter((1, 0), np.nan)),
    kp_case("t-1e30", ["field t"], t=setter((1, 0), 1e30)),
    kp_case("dist-1e9", ["field dist"], dist=np.full((2, 5), 1e9)),
    kp_case("18-joints", ["keypoints", "shape"], keypoints=np.zeros((2, 2, 18, 3), np.float32)),
    kp_case("no-view-axis", ["keypoints", "shape"], keypoints=np.zeros((2, 17, 3), np.float32)),
    kp_case("text", ["field keypoints", "expected numbers"], keypoints=np.full((2, 2, 17, 3), "x")),
    kp_case("missing-keypoints", ["missing", "keypoints"], keypoints=None),
    kp_case("K-without-R-t", ["K", "R", "t"], R=None, t=None),
    kp_case("views-mismatch", ["field K", "shape"], K=np.tile(np.eye(3), (3, 1, 1))),
    kp_case("timestamps-mismatch", ["timestamps", "shape"], timestamps=np.arange(5.0)),
    kp_case("timestamps-nan", ["timestamps"], timestamps=setter((0,), np.nan)),
    kp_case("image-size-zero", ["image_size"], image_size=setter((0,), 0)),
    kp_case("camera-names-repeated", ["camera_names"], camera_names=np.array(["a", "a"])),
    kp_case("nine-views", ["9 views"], V=9),
    kp_case("format-version-3", ["format_version"], format_version=np.array(3)),
    Case("kp-empty-file", "engine.evaluate", EVAL, expect=["kp.npz", "empty"], files={"kp.npz": b""}),
    Case("kp-truncated", "engine.evaluate", EVAL, expect=["kp.npz", "truncated"],
         make=lambda tmp: (good_keypoints_file(tmp), truncated(tmp / "kp.npz", "kp.npz")(tmp))),  # fmt: skip
    Case("kp-not-a-zip", "engine.evaluate", EVAL, expect=["kp.npz", "not a zip"], files={"kp.npz": "frame,x,y\n1,2,3\n"}),
    Case("kp-missing-file", "engine.evaluate", EVAL, expect=["kp.npz", "not found"]),
    # output paths, checked before the work
    Case("eval-out-folder-missing", "engine.evaluate", ["--keypoints", "{tmp}/kp.npz", "--out", "{tmp}/nodir/o.npz"],
         expect=["--out", "nodir", "does not exist"], make=good_keypoints_file),  # fmt: skip
    Case("eval-out-not-npz", "engine.evaluate", ["--keypoints", "{tmp}/kp.npz", "--out", "{tmp}/o.csv"], expect=["--out", ".npz"],
         make=good_keypoints_file),  # fmt: skip
    Case("eval-json-under-a-file", "engine.evaluate", [*EVAL, "--json", "{tmp}/notes.txt/r.json"], expect=["--json", "notes.txt"],
         make=good_keypoints_file, files={"notes.txt": "x"}),  # fmt: skip
    Case("eval-benchmark-json-is-folder", "training.evaluate", ["--quick", "--json", "{tmp}/out"], expect=["--json", "folder"],
         files={"out/keep.txt": "x"}),  # fmt: skip
    Case("eval-samples-zero", "training.evaluate", ["--quick", "--samples", "0"], expect=["--samples"]),
]
# fmt: on


@parametrize(CASES)
def test_bad_input(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path)


def test_malicious_pickle_runs_nothing(tmp_path: Path) -> None:
    """The refused pickle's command never ran (the error line alone would not show it)."""
    pickle_file("bad.pkl", lambda tmp: {"v_template": Evil(tmp / "pwned")})(tmp_path)
    outcome = run_entry("engine.body", ["convert", str(tmp_path / "bad.pkl"), str(tmp_path / "out.npz")])
    assert outcome.code == 2 and "refused" in outcome.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out.npz").exists()


def test_a_good_keypoints_file_still_loads(tmp_path: Path) -> None:
    """The table's base file is valid: each case fails for its one change, not for the base."""
    from core.formats import load_keypoints_npz

    good_keypoints_file(tmp_path)
    data = load_keypoints_npz(tmp_path / "kp.npz")
    assert data.calibrated and data.keypoints.shape == (2, 2, 17, 3) and data.camera_names == ["cam0", "cam1"]
    body(name="ok.npz")(tmp_path)
    from engine.body import load_body_file

    assert load_body_file(tmp_path / "ok.npz").num_vertices == 6890


def test_missing_coordinates_with_zero_confidence_read_as_zero(tmp_path: Path) -> None:
    """NaN coordinates are how some tools mark a missing point: with confidence 0 they are accepted
    (and read as 0); a confidence a rounding error above 1 is clipped."""
    from core.formats import load_keypoints_npz

    arrays = good_keypoints()
    arrays["keypoints"][0, 1, 4] = [np.nan, np.nan, 0.0]
    arrays["keypoints"][1, 0, 2, 2] = 1.0004
    np.savez(tmp_path / "kp.npz", **arrays)
    data = load_keypoints_npz(tmp_path / "kp.npz")
    assert np.array_equal(data.keypoints[0, 1, 4], [0.0, 0.0, 0.0]) and data.keypoints[1, 0, 2, 2] == 1.0
