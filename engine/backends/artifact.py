"""The model artifact every non-PyTorch backend starts from: the ONNX export of the whole
model, all its iterations (3; or fewer where asked: the refinement's start), dynamic batch and
views, cached by model hash, with its metadata inside (input and output names, view range,
model hash, iterations)."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

from engine.backends.base import MAX_VIEWS, MIN_VIEWS, BackendError, cache_dir, input_names, output_names
from engine.heatformer.export import export_onnx
from engine.heatformer.model import HeatFormer

log = logging.getLogger(__name__)


def onnx_artifact(model: HeatFormer, model_id: str, calibrated: bool, folder: Path | None = None,
                  iterations: int | None = None) -> Path:  # fmt: skip
    """The cached ONNX graph for ``model`` after ``iterations`` (default: its config's; exported on first use)."""
    import onnx

    folder = folder or cache_dir()
    count = model.cfg.iterations if iterations is None else iterations
    fewer = "" if count == model.cfg.iterations else f"_{count}it"
    path = folder / f"heatformer_{model_id}_{'calibrated' if calibrated else 'uncalibrated'}{fewer}.onnx"
    if path.is_file():
        return path
    log.warning("exporting HeatFormer to ONNX (%s, once per model): %s", "calibrated" if calibrated else "uncalibrated", path)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(model, tmp, calibrated, iterations=count)
        graph = onnx.load(str(tmp))
        meta = {
            "model_hash": model_id, "calibrated": json.dumps(calibrated), "views": f"{MIN_VIEWS}-{MAX_VIEWS}",
            "inputs": ",".join(input_names(calibrated)), "outputs": ",".join(output_names()),
            "iterations": str(count),
        }  # fmt: skip
        for key, value in meta.items():
            graph.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
        onnx.save(graph, str(tmp))
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise BackendError(f"cannot export HeatFormer to ONNX ({exc})") from exc
    return path


def artifact_metadata(path: Path) -> dict[str, str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in graph.metadata_props}
