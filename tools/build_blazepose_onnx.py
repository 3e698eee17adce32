"""Rebuild ``assets/models/blazepose/pose_landmark_full_landmarks.onnx`` from the mediapipe wheel.

BlazePose full's landmark network ships in the mediapipe wheel as TFLite
(``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``, Apache-2.0). This converts it to
ONNX with tf2onnx and keeps only what the app reads: the 39 landmarks (``Identity``), the pose
flag (``Identity_1``) and the landmarks' heatmaps (``Identity_3``, with which MediaPipe refines
them); the segmentation head is cut off (it took half the time on a CPU).
It then checks the result against TensorFlow Lite's own answer on random inputs.

The conversion needs TensorFlow, which the app does not: run it in a throwaway environment.

    python3.11 -m venv /tmp/convert
    /tmp/convert/bin/pip install "numpy<2" tensorflow-cpu==2.15.1 tf2onnx==1.17.0 onnx==1.17.0 onnxruntime==1.20.1
    /tmp/convert/bin/python tools/build_blazepose_onnx.py \
        --tflite .venv/lib/python3.11/site-packages/mediapipe/modules/pose_landmark/pose_landmark_full.tflite

The file committed was built this way from mediapipe 0.10.21's wheel (see the folder's NOTICE).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "assets" / "models" / "blazepose" / "pose_landmark_full_landmarks.onnx"
KEPT = ["Identity", "Identity_1", "Identity_3"]  # landmarks [1, 195], pose flag [1, 1], heatmaps [1, 64, 64, 39]


def convert(tflite: Path, out: Path) -> None:
    import onnx
    import tf2onnx
    from onnx.utils import Extractor

    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.onnx"
        tf2onnx.convert.from_tflite(str(tflite), opset=17, output_path=str(full))
        model = onnx.load(str(full))
        inputs = [i.name for i in model.graph.input]
        cut = Extractor(model).extract_model(inputs, KEPT)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(cut, str(out))


def check(tflite: Path, out: Path, trials: int = 5) -> float:
    """Largest difference between the ONNX outputs and TensorFlow Lite's (landmarks: input px)."""
    import onnxruntime as ort
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    wanted = {o["name"]: o["index"] for o in interpreter.get_output_details()}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng, worst = np.random.default_rng(0), 0.0
    for _ in range(trials):
        x = rng.random((1, 256, 256, 3), dtype=np.float32)
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        ours = session.run(KEPT, {session.get_inputs()[0].name: x})
        for name, value in zip(KEPT, ours, strict=True):
            worst = max(worst, float(np.abs(value - interpreter.get_tensor(wanted[name])).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tflite", type=Path, required=True, help="pose_landmark_full.tflite from the mediapipe wheel")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    convert(args.tflite, args.out)
    worst = check(args.tflite, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} (sha256 {digest}); largest difference from TensorFlow Lite {worst:.4f}")


if __name__ == "__main__":
    main()
