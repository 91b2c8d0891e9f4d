"""One 513x513 inference of the default network: the torch port (plain float32, and with TFLite's int8
activation rounding) next to the TFLite interpreter, same photo, same thread count (2). Target: torch
<= 1.2x TFLite. Needs ../shared and the test extra (ai-edge-litert); skipped without them.

    pytest bench/test_bench_segmenter.py --benchmark-only -s
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segsearch.network.segmenter import Segmenter

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = SHARED / "models" / "deeplabv3-mnv2-ade20k" / "model.tflite"
PHOTO = SHARED / "data" / "camvid" / "val" / "images"
THREADS = 2
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="../shared model not available")


@pytest.fixture(scope="module")
def photo_input() -> np.ndarray:
    """The network input of one real photo: float32 (513, 513, 3), rgb / 127.5 - 1."""
    path = sorted(PHOTO.glob("*.jpg"))[0]
    rgb = np.asarray(Image.open(path).convert("RGB").resize((513, 513), Image.BILINEAR), np.float32)
    return rgb / 127.5 - 1.0


@pytest.mark.parametrize("hybrid_quant", [False, True], ids=["torch-float32", "torch-int8-rounding"])
def test_torch_inference(benchmark, photo_input, hybrid_quant):
    torch.set_num_threads(THREADS)
    seg = Segmenter.default(device="cpu", weights=MODEL, hybrid_quant=hybrid_quant)
    x = torch.from_numpy(photo_input).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            return seg.model(x)

    benchmark.group = f"513x513 inference, {THREADS} threads"
    benchmark.pedantic(run, rounds=15, warmup_rounds=2)


def test_tflite_inference(benchmark, photo_input):
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    interp = interpreter_mod.Interpreter(model_path=str(MODEL), num_threads=THREADS)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

    def run():
        interp.set_tensor(i, photo_input[None])
        interp.invoke()
        return interp.get_tensor(o)

    benchmark.group = f"513x513 inference, {THREADS} threads"
    benchmark.pedantic(run, rounds=15, warmup_rounds=2)
