#!/usr/bin/env python3
"""Run an ONNX model with Python's onnxruntime on a raw float32 input.

Used by the services' parity tests to compare Rust `ort` outputs with the
reference runtime on the same tensor. Needs `pip install onnxruntime==1.31.1 numpy`.

Usage: ort_reference.py MODEL INPUT.bin SHAPE(comma-separated) OUT_DIR
Writes OUT_DIR/<i>.bin (float32 little-endian) per output, in the model's
output order, and prints one JSON line with the names and shapes.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main() -> int:
    model, input_path, shape, out_dir = sys.argv[1:5]
    shape = [int(d) for d in shape.split(",")]
    x = np.fromfile(input_path, dtype="<f4").reshape(shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    out = Path(out_dir)
    info = []
    for i, (meta, y) in enumerate(zip(session.get_outputs(), outputs)):
        np.asarray(y, dtype="<f4").tofile(out / f"{i}.bin")
        info.append({"name": meta.name, "shape": list(y.shape)})
    print(json.dumps({"onnxruntime": ort.__version__, "outputs": info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
