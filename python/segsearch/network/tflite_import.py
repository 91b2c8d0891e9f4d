"""Import the published DeepLabV3-MobileNetV2-ADE20K TFLite file into a torch state dict.

The flatbuffer is read with the pure-Python ``tflite`` parser package (no TensorFlow, no TFLite
runtime). The importer walks the operators in graph order, collects every CONV_2D and
DEPTHWISE_CONV_2D with its weights (int8 ones dequantized per output channel:
``(q - zero_point[c]) * scale[c]``), bias, stride and dilation (a SPACE_TO_BATCH_ND before a
depthwise conv gives its rate; the MUL/ADD after the matching BATCH_TO_SPACE_ND is folded into the
weights and bias), and matches them one by one against
:func:`segsearch.network.deeplab.conv_specs` with shape, stride, dilation and activation checks. Any
mismatch raises :class:`TFLiteImportError`.

The result is stored as safetensors (never pickle); :func:`import_tflite` returns its sha256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import TFLiteImportError
from .deeplab import ConvSpec, conv_specs

EXPECTED_TFLITE_SHA256 = "9476784566f88bf0bdc3169f0012fb7d08857b325811d8c1aaf5ada1c0d4e4f9"
"""sha256 of the published ``deeplabv3-mobilenetv2-ade20k`` TFLite file (informative: other
byte-identical-in-structure exports are accepted if every shape check passes)."""

FORMAT = "segsearch-deeplabv3-mnv2-ade20k-v1"

_TFL_ACT = {0: None, 1: "relu", 3: "relu6"}
_TFL_DTYPE = {0: np.float32, 2: np.int32, 9: np.int8}


@dataclass
class _Conv:
    op_index: int
    depthwise: bool
    weight: np.ndarray  # torch layout: (O, I/groups, kh, kw)
    bias: np.ndarray
    stride: int
    dilation: int
    act: str | None
    int8: bool


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Graph:
    """Thin reader over the first subgraph of a TFLite model."""

    def __init__(self, data: bytes):
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator

        self.tflite = tflite
        try:
            if len(data) < 8 or data[4:8] != b"TFL3":
                raise ValueError("no 'TFL3' file identifier")
            self.model = tflite.Model.GetRootAsModel(data, 0)
            self.g = self.model.Subgraphs(0) if self.model.SubgraphsLength() else None
            if self.g is None:
                raise ValueError("no subgraph")
        except Exception as e:  # noqa: BLE001 - any parser failure means "not a TFLite model"
            raise TFLiteImportError(f"not a readable TFLite flatbuffer: {e}") from None
        self.opnames = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
        self.producer = {}
        for k in range(self.g.OperatorsLength()):
            for t in self.g.Operators(k).OutputsAsNumpy():
                self.producer[int(t)] = k

    def op_name(self, k: int) -> str:
        code = self.model.OperatorCodes(self.g.Operators(k).OpcodeIndex())
        return self.opnames.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")

    def inputs(self, k: int) -> list[int]:
        return [int(i) for i in self.g.Operators(k).InputsAsNumpy()]

    def outputs(self, k: int) -> list[int]:
        return [int(i) for i in self.g.Operators(k).OutputsAsNumpy()]

    def shape(self, t: int) -> tuple[int, ...]:
        tensor = self.g.Tensors(t)
        return tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()

    def constant(self, t: int) -> tuple[np.ndarray, bool]:
        """Float value of a constant tensor (following a DEQUANTIZE), and whether it was int8."""
        if t in self.producer:
            k = self.producer[t]
            if self.op_name(k) != "DEQUANTIZE":
                raise TFLiteImportError(f"tensor {t} is produced by {self.op_name(k)}, expected a constant")
            return self.constant(self.inputs(k)[0])
        tensor = self.g.Tensors(t)
        buf = self.model.Buffers(tensor.Buffer())
        if buf.DataLength() == 0:
            raise TFLiteImportError(f"tensor {t} ({tensor.Name().decode()}) has no constant data")
        dtype = _TFL_DTYPE.get(tensor.Type())
        if dtype is None:
            raise TFLiteImportError(f"tensor {t}: unsupported type {tensor.Type()}")
        raw = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(self.shape(t))
        if dtype is not np.int8:
            return raw.astype(np.float32), False
        q = tensor.Quantization()
        if q is None or q.ScaleLength() == 0:
            raise TFLiteImportError(f"int8 tensor {t} has no quantization parameters")
        scale = q.ScaleAsNumpy().astype(np.float64)
        zp = q.ZeroPointAsNumpy().astype(np.float64) if q.ZeroPointLength() else np.zeros_like(scale)
        axis = q.QuantizedDimension() if scale.size > 1 else 0
        bshape = [1] * raw.ndim
        bshape[axis] = -1
        if scale.size not in (1, raw.shape[axis]):
            raise TFLiteImportError(f"int8 tensor {t}: {scale.size} scales for axis of {raw.shape[axis]}")
        value = (raw.astype(np.float64) - zp.reshape(bshape)) * scale.reshape(bshape)
        return value.astype(np.float32), True

    def options(self, k: int, cls):
        o = self.g.Operators(k).BuiltinOptions()
        opts = cls()
        opts.Init(o.Bytes, o.Pos)
        return opts

    def consumers(self, t: int) -> list[int]:
        return [k for k in range(self.g.OperatorsLength()) if t in self.inputs(k)]


def _collect_convs(graph: _Graph) -> list[_Conv]:
    """Every convolution of the graph, in operator order, with folded dilation batch norms."""
    tfl = graph.tflite
    convs = []
    for k in range(graph.g.OperatorsLength()):
        name = graph.op_name(k)
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        x, w_t, b_t = graph.inputs(k)[:3]
        w, int8 = graph.constant(w_t)
        b, _ = graph.constant(b_t) if b_t >= 0 else (np.zeros(w.shape[0]), False)
        depthwise = name == "DEPTHWISE_CONV_2D"
        opts = graph.options(k, tfl.DepthwiseConv2DOptions if depthwise else tfl.Conv2DOptions)
        if opts.StrideH() != opts.StrideW() or opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
            raise TFLiteImportError(f"op {k}: unexpected stride/dilation options")
        act = _TFL_ACT.get(opts.FusedActivationFunction(), "?")
        dilation = 1
        if depthwise:
            if opts.DepthMultiplier() != 1:
                raise TFLiteImportError(f"op {k}: depth multiplier {opts.DepthMultiplier()}")
            weight = w.transpose(3, 0, 1, 2)  # [1, kh, kw, C] -> [C, 1, kh, kw]
        else:
            weight = w.transpose(0, 3, 1, 2)  # [O, kh, kw, I] -> [O, I, kh, kw]
        prod = graph.producer.get(x)
        if prod is not None and graph.op_name(prod) == "SPACE_TO_BATCH_ND":
            # dilated conv: rate = block shape; then BATCH_TO_SPACE_ND, MUL (scale), ADD (shift + act)
            block, _ = graph.constant(graph.inputs(prod)[1])
            dilation = int(block[0])
            if opts.Padding() != 1 or act is not None:  # VALID, no activation inside the pair
                raise TFLiteImportError(f"op {k}: unexpected options for a dilated conv")
            t = graph.outputs(k)[0]
            chain = []
            for expected in ("BATCH_TO_SPACE_ND", "MUL", "ADD"):
                nxt = graph.consumers(t)
                if len(nxt) != 1 or graph.op_name(nxt[0]) != expected:
                    raise TFLiteImportError(f"op {k}: dilated conv not followed by {expected}")
                chain.append(nxt[0])
                t = graph.outputs(nxt[0])[0]
            scale, _ = graph.constant(graph.inputs(chain[1])[1])
            shift, _ = graph.constant(graph.inputs(chain[2])[1])
            weight = weight * scale.reshape(-1, 1, 1, 1)
            b = b * scale + shift
            act = _TFL_ACT.get(graph.options(chain[2], tfl.AddOptions).FusedActivationFunction(), "?")
        elif opts.Padding() != 0:
            raise TFLiteImportError(f"op {k}: expected SAME padding")
        convs.append(
            _Conv(
                k,
                depthwise,
                np.ascontiguousarray(weight, np.float32),
                np.asarray(b, np.float32),
                int(opts.StrideH()),
                dilation,
                act,
                int8,
            )
        )
    return convs


def _check(spec: ConvSpec, conv: _Conv) -> None:
    groups = spec.cin if spec.depthwise else 1
    want = (spec.cout, spec.cin // groups, spec.kernel, spec.kernel)
    got = (conv.weight.shape, conv.bias.shape, conv.stride, conv.dilation, conv.act, conv.depthwise, conv.int8)
    exp = (
        want,
        (spec.cout,),
        spec.stride,
        spec.dilation,
        spec.act,
        spec.depthwise,
        spec.hybrid or (spec.depthwise and conv.int8),
    )
    if got != exp:
        raise TFLiteImportError(
            f"TFLite op {conv.op_index} does not match layer {spec.name!r}: got (weight shape, bias shape, "
            f"stride, dilation, activation, depthwise, int8)={got}, expected {exp}. This is not the "
            f"DeepLabV3-MobileNetV2-ADE20K graph segsearch expects."
        )


def load_state_dict(tflite_path: str | Path) -> dict[str, torch.Tensor]:
    """Read ``tflite_path`` and return a state dict for :class:`segsearch.network.deeplab.DeepLabV3MobileNetV2`.

    Tensors are matched to layers by graph position and checked (shapes, strides, dilations,
    activations); raises :class:`TFLiteImportError` if the file is not the expected network.
    """
    data = Path(tflite_path).read_bytes()
    graph = _Graph(data)
    ins = [int(i) for i in graph.g.InputsAsNumpy()]
    outs = [int(i) for i in graph.g.OutputsAsNumpy()]
    if len(ins) != 1 or len(outs) != 1 or graph.shape(ins[0])[-1:] != (3,) or graph.shape(outs[0])[-1:] != (151,):
        raise TFLiteImportError(f"{tflite_path}: expected one NHWC RGB input and one 151-class output")
    convs = _collect_convs(graph)
    specs = conv_specs()
    if len(convs) != len(specs):
        raise TFLiteImportError(f"{tflite_path}: {len(convs)} convolutions, expected {len(specs)}")
    state = {}
    for spec, conv in zip(specs, convs):
        _check(spec, conv)
        state[f"{spec.name}.conv.weight"] = torch.from_numpy(conv.weight)
        state[f"{spec.name}.conv.bias"] = torch.from_numpy(conv.bias)
    return state


def import_tflite(tflite_path: str | Path, out_path: str | Path) -> str:
    """Convert ``tflite_path`` to a safetensors file at ``out_path``; return the output's sha256.

    The metadata records the format tag and the sha256 of the source file. The output is written
    to a temporary name and renamed, so a crash never leaves a half-written file behind. A
    ``<out_path>.sha256`` file next to it records the output's digest.
    """
    from safetensors.torch import save_file

    out_path = Path(out_path)
    state = load_state_dict(tflite_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "source_sha256": sha256_file(tflite_path)})
    tmp.replace(out_path)
    digest = sha256_file(out_path)
    out_path.with_name(out_path.name + ".sha256").write_text(f"{digest}  {out_path.name}\n")
    return digest
