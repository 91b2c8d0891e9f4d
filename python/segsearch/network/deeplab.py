"""DeepLabV3+ with a MobileNetV2 backbone (ADE20K, 151 classes) in pure torch.

This is a port of the TFLite graph published as
``sayakpaul/lite-model/deeplabv3-mobilenetv2-ade20k/1/default/1`` (converted from the DeepLab
model-zoo checkpoint ``deeplabv3_mnv2_ade20k_train_2018_12_03``). The architecture below was read
off that graph, operator by operator (see ``tflite_import.py``, which maps its tensors onto this
module by graph position):

* backbone: MobileNetV2 (depth multiplier 1), output stride 8. The two stride-2 stages that would
  bring it to stride 16/32 run at stride 1 and every later depthwise conv is dilated (rate 2 from
  ``expanded_conv_7``, rate 4 from ``expanded_conv_14``); in TFLite those are
  SPACE_TO_BATCH_ND / DEPTHWISE_CONV_2D(VALID) / BATCH_TO_SPACE_ND triples followed by a MUL/ADD
  pair (the unfolded batch norm), which is exactly a dilated conv with ``padding = rate`` plus a
  per-channel affine; the importer folds that affine into the conv weights and bias.
  No final 1280-channel conv.
* ASPP: image pooling (global average, 1x1 conv 320->256 + ReLU, broadcast back) concatenated
  *before* a 1x1 conv branch (320->256 + ReLU), then a 1x1 projection 512->256 + ReLU.
* decoder: the low-level feature is the ReLU6 output of ``expanded_conv_2``'s depthwise conv
  (144 channels, stride 4) -> 1x1 conv to 48 + ReLU; the ASPP output is bilinearly upsampled to
  its size (``align_corners=True``), concatenated [ASPP, low-level], then two separable convs
  (depthwise 3x3 + ReLU, pointwise to 256 + ReLU), then 1x1 logits to 151 classes, upsampled
  bilinearly (``align_corners=True``) to the input size.

Convolutions use TensorFlow "SAME" padding: for stride 2 the extra padded row/column goes to the
bottom/right (for the native 513x513 input the padding happens to be symmetric).

The TFLite file stores most 1x1 convolution weights as int8 and runs them as *hybrid* kernels: the
float activations are quantized to int8 on the fly before the integer matmul (asymmetric; with the
interpreter's default XNNPACK delegate, one scale per pixel). By default the port runs those convs in
plain float32 on the dequantized weights: over 40 real photos (CamVid + COCO-MINI, 513x513) its argmax
labels agree with the TFLite interpreter on 99.3% of pixels, at about 1.1x the interpreter's CPU time.
``hybrid_quant=True`` reproduces the on-the-fly rounding (fake quantization) for 99.5% agreement, at
about 1.5x the interpreter's time. (TFLite's non-delegated builtin hybrid kernels round differently
again: they agree with XNNPACK on only 88-96% of pixels.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 151
"""Outputs of the network: index 0 'others' plus the 150 SceneParse150 (ADE20K) classes."""

NATIVE_SIZE = 513
"""Input size (square) of the published TFLite graph."""


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of the graph, in graph order.

    ``name`` is the module path of its ``nn.Conv2d``; ``act`` is 'relu6', 'relu' or None;
    ``depthwise`` marks 3x3 depthwise convs; ``hybrid`` marks convs whose weights are int8 in the
    TFLite file and whose input TFLite quantizes on the fly.
    """

    name: str
    cin: int
    cout: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    act: str | None = None
    depthwise: bool = False
    hybrid: bool = False


# MobileNetV2 inverted residual blocks: (expansion, out channels, stride, dilation), output stride 8.
_BLOCKS = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 24, 1, 1),
    (6, 32, 2, 1),
    (6, 32, 1, 1),
    (6, 32, 1, 1),
    (6, 64, 1, 1),
    (6, 64, 1, 2),
    (6, 64, 1, 2),
    (6, 64, 1, 2),
    (6, 96, 1, 2),
    (6, 96, 1, 2),
    (6, 96, 1, 2),
    (6, 160, 1, 2),
    (6, 160, 1, 4),
    (6, 160, 1, 4),
    (6, 320, 1, 4),
]


def same_pads(size: tuple[int, int], kernel: int, stride: int, dilation: int = 1) -> list[int]:
    """TensorFlow "SAME" padding of an (H, W) input as ``F.pad`` takes it: [left, right, top, bottom]."""
    pads = []
    for n in (size[1], size[0]):  # F.pad order: last dim first
        out = -(-n // stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int, dilation: int = 1) -> torch.Tensor:
    """Zero-pad NCHW ``x`` like TensorFlow's "SAME" padding (extra row/column at the bottom/right)."""
    pads = same_pads(x.shape[-2:], kernel, stride, dilation)
    if any(pads):
        x = F.pad(x, pads)
    return x


def fake_quant_asymmetric_int8(x: torch.Tensor) -> torch.Tensor:
    """Round NCHW ``x`` to the int8 grid of TFLite's default CPU (XNNPACK) hybrid 1x1 convs.

    XNNPACK's dynamically quantized ("qd8") convolutions quantize each row of the NHWC input
    matrix, i.e. each pixel's channel vector, with its own asymmetric scale: the range
    [min(0, x.min), max(0, x.max)] maps to [-128, 127] with a nudged integer zero point (the same
    rule as TFLite's ``AsymmetricQuantizeFloats``). Returns the dequantized values, so the
    following float conv computes what the integer kernel computes, up to float rounding.
    """
    rmin = x.amin(1, keepdim=True).clamp_(max=0.0)  # (faster than aminmax over channels-last)
    rmax = x.amax(1, keepdim=True).clamp_(min=0.0)
    span = rmax - rmin
    scale = torch.where(span > 0, span / 255.0, torch.ones_like(span))
    err_min = 128.0 - rmin / scale  # |qmin| + |rmin / scale|
    err_max = 127.0 + rmax / scale  # |qmax| + |rmax / scale|
    zp = torch.where(err_min < err_max, -128.0 - rmin / scale, 127.0 - rmax / scale)
    zp = torch.round(zp).clamp(-128, 127)
    # q - zp with q = clamp(round(x / scale) + zp, -128, 127), computed in place
    q = torch.round(x / scale).clamp_(-128.0 - zp, 127.0 - zp)
    return q.mul_(scale)


_ACTIVATIONS = {None: ("none", []), "relu": ("relu", []), "relu6": ("hardtanh", [0.0, 6.0])}
_FUSED_OK: bool | None = None


def fused_cpu_available() -> bool:
    """Whether oneDNN's fused convolution (conv + bias + activation in one pass, weights packed once) works in
    this torch build: checked once per process on a small conv against ``F.conv2d``. Off with
    ``SEGSEARCH_FUSED_CONV=0``."""
    global _FUSED_OK
    if os.environ.get("SEGSEARCH_FUSED_CONV", "1") == "0":
        return False
    if _FUSED_OK is None:
        _FUSED_OK = False
        try:
            ops = torch.ops.mkldnn
            if (
                torch.backends.mkldnn.is_available()
                and hasattr(ops, "_convolution_pointwise")
                and hasattr(ops, "_reorder_convolution_weight")
            ):
                gen = torch.Generator().manual_seed(0)
                x = torch.randn(1, 8, 9, 9, generator=gen).contiguous(memory_format=torch.channels_last)
                w, b = torch.randn(8, 8, 3, 3, generator=gen), torch.randn(8, generator=gen)
                with torch.inference_mode():
                    packed = _pack(w, b, [1, 1], [1, 1], [2, 2], 1, list(x.shape))
                    got = torch.ops.mkldnn._convolution_pointwise(
                        x, packed, b, [1, 1], [1, 1], [2, 2], 1, "hardtanh", [0.0, 6.0], ""
                    )
                    want = F.relu6(F.conv2d(x, w, b, padding=1, dilation=2))
                _FUSED_OK = bool(torch.allclose(got, want, rtol=1e-4, atol=1e-4))
        except Exception:  # noqa: BLE001 -- any failure of the private op means: use the plain path
            _FUSED_OK = False
    return _FUSED_OK


def _pack(weight, bias, padding, stride, dilation, groups, shape):
    """The weights in oneDNN's own layout for a conv on inputs of ``shape`` (torch's private op, checked to exist and
    to give F.conv2d's result by :func:`fused_cpu_available`)."""
    reorder = getattr(torch.ops.mkldnn, "_reorder_convolution_weight")  # noqa: B009 -- a private op, named as such
    return reorder(weight, padding, stride, dilation, groups, shape)


def _version(t: torch.Tensor) -> int:
    """torch's counter of in-place changes of ``t`` (private; read to repack weights changed in place)."""
    return getattr(t, "_version")  # noqa: B009 -- a private attribute, named as such


class TFConv(nn.Module):
    """A conv of the graph: TF-SAME padding, optional activation, optional hybrid input rounding.

    On a CPU in inference (no autograd), the conv, its bias and its activation run as one oneDNN call with the
    weights packed once into oneDNN's own layout (:func:`fused_cpu_available`), and a symmetric SAME padding is
    the conv's own padding instead of a padded copy of the input: the same sums as ``F.conv2d``, 3-4x less time
    for the network on 2 cores (the separate padding, activation and per-call weight reordering passes were more
    than half of it). The packed weights are made again whenever the weights change.
    """

    def __init__(self, spec: ConvSpec):
        super().__init__()
        self.spec = spec
        groups = spec.cin if spec.depthwise else 1
        self.conv = nn.Conv2d(
            spec.cin, spec.cout, spec.kernel, stride=spec.stride, dilation=spec.dilation, groups=groups, bias=True
        )
        self.hybrid_quant = True
        self._packed = None  # (key of the weights it was made from, packed weight, bias)

    def _packed_weight(self, x: torch.Tensor):
        w, b = self.conv.weight, self.conv.bias
        key = (w.data_ptr(), _version(w), b.data_ptr(), _version(b))
        if self._packed is None or self._packed[0] != key:
            s = self.spec
            pad = [(s.kernel - 1) * s.dilation // 2] * 2
            packed = _pack(w.detach(), b, pad, [s.stride] * 2, [s.dilation] * 2, self.conv.groups, list(x.shape))
            self._packed = (key, packed, b.detach())
        return self._packed[1], self._packed[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        if s.hybrid and self.hybrid_quant:
            x = fake_quant_asymmetric_int8(x)
        fused = (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.conv.weight.dtype == torch.float32
            and not torch.is_grad_enabled()
            and fused_cpu_available()
        )
        pads = same_pads(x.shape[-2:], s.kernel, s.stride, s.dilation) if s.kernel > 1 else [0, 0, 0, 0]
        if fused:
            symmetric = pads[0] == pads[1] == pads[2] == pads[3] == (s.kernel - 1) * s.dilation // 2
            if not symmetric:
                x = F.pad(x, pads)
            pad = [pads[0]] * 2 if symmetric else [0, 0]
            weight, bias = self._packed_weight(x)
            attr, scalars = _ACTIVATIONS[s.act]
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, pad, [s.stride] * 2, [s.dilation] * 2, self.conv.groups, attr, scalars, ""
            )
        if any(pads):
            x = F.pad(x, pads)
        x = self.conv(x)
        if s.act == "relu6":
            x = F.relu6(x)
        elif s.act == "relu":
            x = F.relu(x)
        return x


def conv_specs() -> list[ConvSpec]:
    """All convolutions of the network in TFLite graph order (the importer relies on this order)."""
    specs = [ConvSpec("stem", 3, 32, 3, stride=2, act="relu6")]
    cin = 32
    for i, (t, c, s, d) in enumerate(_BLOCKS):
        hidden = cin * t
        p = f"blocks.{i}"
        if t != 1:
            specs.append(ConvSpec(f"{p}.expand", cin, hidden, 1, act="relu6", hybrid=True))
        specs.append(ConvSpec(f"{p}.depthwise", hidden, hidden, 3, stride=s, dilation=d, act="relu6", depthwise=True))
        specs.append(ConvSpec(f"{p}.project", hidden, c, 1, hybrid=i > 0))
        cin = c
    specs += [
        ConvSpec("aspp_pool", 320, 256, 1, act="relu", hybrid=True),
        ConvSpec("aspp_conv", 320, 256, 1, act="relu", hybrid=True),
        ConvSpec("aspp_project", 512, 256, 1, act="relu", hybrid=True),
        ConvSpec("low_level", 144, 48, 1, act="relu", hybrid=True),
        ConvSpec("decoder_dw0", 304, 304, 3, act="relu", depthwise=True),
        ConvSpec("decoder_pw0", 304, 256, 1, act="relu", hybrid=True),
        ConvSpec("decoder_dw1", 256, 256, 3, act="relu", depthwise=True),
        ConvSpec("decoder_pw1", 256, 256, 1, act="relu", hybrid=True),
        ConvSpec("logits", 256, NUM_CLASSES, 1, hybrid=True),
    ]
    return specs


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand + ReLU6] -> 3x3 depthwise + ReLU6 -> 1x1 linear projection."""

    def __init__(self, specs: dict[str, ConvSpec], prefix: str):
        super().__init__()
        if f"{prefix}.expand" in specs:
            self.expand = TFConv(specs[f"{prefix}.expand"])
        self.depthwise = TFConv(specs[f"{prefix}.depthwise"])
        self.project = TFConv(specs[f"{prefix}.project"])
        dw, pr = self.depthwise.spec, self.project.spec
        cin = self.expand.spec.cin if hasattr(self, "expand") else dw.cin
        self.residual = dw.stride == 1 and cin == pr.cout

    def forward(self, x: torch.Tensor, keep_depthwise: bool = False):
        """Run the block; with ``keep_depthwise`` also return the depthwise output (decoder tap)."""
        h = self.expand(x) if hasattr(self, "expand") else x
        dw = self.depthwise(h)
        y = self.project(dw)
        if self.residual:
            y = y + x
        return (y, dw) if keep_depthwise else y


class DeepLabV3MobileNetV2(nn.Module):
    """The ADE20K DeepLab network: float NCHW input in [-1, 1] -> logits (N, 151, H, W).

    Any input size works (the published graph is fixed at 513x513; at that size this module
    reproduces it). Load weights with :func:`segsearch.network.tflite_import.load_state_dict` or
    ``safetensors.torch.load_file``.
    """

    LOW_LEVEL_BLOCK = 2  # the decoder taps the depthwise output of expanded_conv_2

    def __init__(self, hybrid_quant: bool = False):
        super().__init__()
        specs = {s.name: s for s in conv_specs()}
        self.stem = TFConv(specs["stem"])
        self.blocks = nn.ModuleList(InvertedResidual(specs, f"blocks.{i}") for i in range(len(_BLOCKS)))
        for name in (
            "aspp_pool",
            "aspp_conv",
            "aspp_project",
            "low_level",
            "decoder_dw0",
            "decoder_pw0",
            "decoder_dw1",
            "decoder_pw1",
            "logits",
        ):
            setattr(self, name, TFConv(specs[name]))
        self.set_hybrid_quant(hybrid_quant)

    def set_hybrid_quant(self, enabled: bool) -> None:
        """Turn TFLite's on-the-fly int8 rounding of hybrid conv inputs on or off."""
        for m in self.modules():
            if isinstance(m, TFConv):
                m.hybrid_quant = enabled

    def forward(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        """Logits (N, 151, H, W) for float NCHW images ``x`` scaled to [-1, 1] (``rgb / 127.5 - 1``). With
        ``upsample=False``, the logits before the graph's last step, its bilinear upsampling (``align_corners=True``)
        to the input size: (N, 151, h, w) at a quarter of the input size (129 x 129 for 513 x 513)."""
        size = x.shape[-2:]
        h = self.stem(x)
        low = None
        for i, block in enumerate(self.blocks):
            if i == self.LOW_LEVEL_BLOCK:
                h, low = block(h, keep_depthwise=True)
            else:
                h = block(h)
        # ASPP: image pooling branch first, then the 1x1 branch
        pooled = self.aspp_pool(h.mean(dim=(2, 3), keepdim=True))
        pooled = pooled.expand(-1, -1, h.shape[2], h.shape[3])
        h = self.aspp_project(torch.cat([pooled, self.aspp_conv(h)], dim=1))
        # decoder
        h = F.interpolate(h, size=low.shape[-2:], mode="bilinear", align_corners=True)
        h = torch.cat([h, self.low_level(low)], dim=1)
        h = self.decoder_pw0(self.decoder_dw0(h))
        h = self.decoder_pw1(self.decoder_dw1(h))
        logits = self.logits(h)
        if not upsample:
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
