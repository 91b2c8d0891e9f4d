"""Photos -> per-class softmax maps with the ADE20K DeepLabV3-MobileNetV2 network.

The network always runs at its native 513x513 input (the size the published TFLite graph is fixed
at): each photo is resized to 513x513 with bilinear filtering, *ignoring its aspect ratio*
(non-square photos are stretched, never cropped or padded), scaled to [-1, 1] as ``rgb / 127.5 - 1``,
and segmented; the 151 softmax maps (513x513) are then area-averaged to ``size x size`` with
adaptive average pooling (bins of 8 or 9 pixels for ``size=64``; 8*64 = 512 is within one pixel of 513).
Averaging probabilities keeps every pixel's class distribution summing to 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .classes import ADE20K_CLASSES
from .deeplab import NATIVE_SIZE, DeepLabV3MobileNetV2
from .memory import keep_freed_memory
from .orientation import open_image, upright
from .palette import make_palette
from .weights import NETWORK, load_weights

__all__ = ["ADE20K_CLASSES", "Segmenter", "make_palette"]

#: How the default network's maps are computed, for caches of maps (bench/maps_cache.py): 1 = the network to
#: 513 x 513 logits, softmax, area pooling, in torch; 2 = fused oneDNN convs on a CPU, the last upsampling done with
#: the softmax and the pooling in the C++ core (the same maps up to float rounding: tested to 2e-5).
MAPS_PIPELINE = 2


def _to_pil(image) -> Image.Image:
    """One photo as an RGB PIL image (path, PIL image, HxWx3 uint8 array, or torch tensor)."""
    if isinstance(image, (str, os.PathLike)):
        with open_image(image) as im:
            return upright(im).convert("RGB")  # honour the camera's orientation tag
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.dim() == 3 and t.shape[0] == 3 and t.shape[-1] != 3:
            t = t.permute(1, 2, 0)  # CHW -> HWC
        if t.is_floating_point():  # floats are taken as RGB in [0, 1]
            t = (t.clamp(0, 1) * 255).round().to(torch.uint8)
        image = t.numpy()
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(f"arrays must be HxWx3 uint8, got shape {image.shape} dtype {image.dtype}")
        return Image.fromarray(np.ascontiguousarray(image), "RGB")
    raise TypeError(f"unsupported image type {type(image).__name__}")


def _as_list(images) -> list:
    """A single photo or a batch of photos as a list."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return list(images) if images.ndim == 4 else [images]
    return list(images)


def _square_pixels(photo, size: int) -> np.ndarray:
    """A photo stretched to size x size (bilinear, aspect ratio ignored): uint8 (size, size, 3)."""
    return np.asarray(_to_pil(photo).resize((size, size), Image.BILINEAR))


def _softmax_pool(logits: torch.Tensor, size: int) -> torch.Tensor:
    """Softmax over the classes of logits (B, C, S, S), area-averaged to (B, C, size, size), float32.

    The softmax runs in place over the classes as the last, contiguous axis (channels-last memory, which the
    default network's output already has): on a CPU about 4x faster than ``torch.softmax(logits, dim=1)`` and
    with no second (B, C, S, S) tensor (159 MB per photo at S = 513, C = 151); the values agree to 1e-7.
    """
    x = logits.float().contiguous(memory_format=torch.channels_last)
    if x.data_ptr() == logits.data_ptr() and x.requires_grad:  # never write into a tensor autograd tracks
        x = x.clone(memory_format=torch.channels_last)
    nhwc = x.permute(0, 2, 3, 1)
    nhwc.sub_(nhwc.amax(dim=-1, keepdim=True)).exp_()
    nhwc.div_(nhwc.sum(dim=-1, keepdim=True))
    return F.adaptive_avg_pool2d(x, size)


def _upsample_softmax_pool(logits: torch.Tensor, out_hw: tuple[int, int], size: int) -> torch.Tensor:
    """What ``_softmax_pool(F.interpolate(logits, out_hw, mode="bilinear", align_corners=True), size)`` computes,
    float32 on the CPU, in one pass of the C++ core (:func:`segsearch._core.upsample_softmax_pool`) that never stores
    the upsampled logits (151 x 513 x 513 floats, 159 MB a photo at the native size): each upsampled row is made,
    its softmax taken over the classes and its columns summed into the pooling bins while it is in the cache. Equal
    to the direct computation up to float rounding (tested to 1e-6)."""
    from .. import _core

    src = logits.detach().float().cpu().permute(0, 2, 3, 1).contiguous()  # (B, h, w, C): no copy if channels-last
    out = _core.upsample_softmax_pool(src.numpy(), int(out_hw[0]), int(out_hw[1]), int(size), torch.get_num_threads())
    return torch.from_numpy(out)


class _PhotoFiles(torch.utils.data.Dataset):
    """Image files decoded and resized to the network's square input, in DataLoader workers."""

    def __init__(self, paths: list, size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, _square_pixels(self.paths[i], self.size), None
        except Exception as e:  # unreadable or corrupt file: reported, never fatal
            return i, None, f"{type(e).__name__}: {e}"


def _collate(items):
    ok = [(i, p) for i, p, err in items if err is None]
    failed = [(i, err) for i, _, err in items if err is not None]
    pixels = torch.from_numpy(np.stack([p for _, p in ok])) if ok else None
    return [i for i, _ in ok], pixels, failed


class Segmenter:
    """Semantic segmentation of photos into per-class probability maps.

    :meth:`default` is the DeepLabV3-MobileNetV2 network for the 151 ADE20K classes (index 0 = 'others');
    :meth:`from_module` and :meth:`from_torchvision` wrap other networks. Call :meth:`predict` to get maps.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        classes: Sequence[str] = ADE20K_CLASSES,
        device: str | torch.device | None = None,
        *,
        input_size: int = NATIVE_SIZE,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str | None = None,
        weights_sha256: str | None = None,
    ):
        """``model`` maps (B, 3, input_size, input_size) float input to logits (B, len(classes), h, w), or to
        a dict whose ``"out"`` entry is that (torchvision's convention). Input is ``rgb / 127.5 - 1`` when
        ``mean``/``std`` are None (the default network), else ``(rgb / 255 - mean) / std``. ``name`` and
        ``weights_sha256`` identify the network in the indexes it builds (see :mod:`segsearch.network.weights`)."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if input_size < 1:
            raise ValueError(f"input_size must be >= 1, got {input_size}")
        self.device = torch.device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # the network's large tensors reuse freed memory (see network.memory)
        # channels-last is markedly faster for depthwise-heavy networks on CPU (oneDNN)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.classes = [str(c) for c in classes]
        if not self.classes:
            raise ValueError("classes must name at least one class")
        self.palette = make_palette(len(self.classes))
        self.input_size = int(input_size)
        self.name = str(name or type(model).__name__)
        self.weights_sha256 = weights_sha256
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self._mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1).to(self.device)
        self._std = None if std is None else torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1).to(self.device)

    @classmethod
    def default(
        cls,
        device: str | torch.device | None = None,
        weights: str | os.PathLike | None = None,
        *,
        hybrid_quant: bool = False,
        weights_sha256: str | None = None,
    ) -> Segmenter:
        """The DeepLabV3-MobileNetV2-ADE20K segmenter.

        ``weights``: a ``.tflite`` or imported ``.safetensors`` file; None uses ``$SEGSEARCH_WEIGHTS``, else
        the network bundled with segsearch (see :mod:`segsearch.network.weights`). ``weights_sha256``: without an
        explicit file, look for the weights with this identity (what an index recorded) in the bundle and the
        user cache. ``device``: default CUDA if available, else CPU. ``hybrid_quant=True`` mimics TFLite's int8
        rounding of activations for the closest match to the TFLite interpreter (99.5% vs 99.3% of pixels),
        about 1.4x slower on CPU.
        """
        model = DeepLabV3MobileNetV2(hybrid_quant=hybrid_quant)
        state, sha = load_weights(weights, sha256=weights_sha256)
        model.load_state_dict(state)
        return cls(model, ADE20K_CLASSES, device, name=NETWORK, weights_sha256=sha)

    @classmethod
    def from_module(
        cls,
        model: torch.nn.Module,
        classes: Sequence[str],
        *,
        device=None,
        input_size: int = 512,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        name: str | None = None,
    ) -> Segmenter:
        """Any ``nn.Module`` returning logits (B, len(classes), h, w) (or ``{"out": logits}``) plus its class
        names. Photos are resized to ``input_size`` squared and normalized with ``mean``/``std`` (ImageNet's
        by default) on RGB in [0, 1]."""
        return cls(model, classes, device, input_size=input_size, mean=mean, std=std, name=name or type(model).__name__)

    @classmethod
    def from_torchvision(
        cls, model: torch.nn.Module, classes: Sequence[str] | None = None, *, device=None, input_size: int = 520
    ) -> Segmenter:
        """A torchvision segmentation model (``deeplabv3_*``, ``fcn_*``, ``lraspp_*``; they return
        ``{"out": logits}`` at input size). ``classes`` default to the model's weights' categories when it
        was built with pretrained weights (``model.segsearch_categories`` may also be set by the caller).
        Needs torchvision installed only to build the model."""
        if classes is None:
            classes = getattr(model, "segsearch_categories", None)
        if classes is None:
            raise ValueError("pass classes=[...] (one name per output channel of the model)")
        return cls.from_module(
            model, classes, device=device, input_size=input_size, name=f"torchvision:{type(model).__name__}"
        )

    def preprocess(self, photos: Sequence) -> torch.Tensor:
        """Network input (B, 3, S, S) on the device (S = :attr:`input_size`): photos stretched to S x S, then
        ``rgb / 127.5 - 1`` (default network) or ``(rgb / 255 - mean) / std``."""
        pixels = torch.from_numpy(np.stack([_square_pixels(p, self.input_size) for p in photos]))
        return self._normalize(pixels.to(self.device))

    def _normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (B, S, S, 3) on the device -> the network's float input (B, 3, S, S), channels-last."""
        x = pixels.permute(0, 3, 1, 2).float()
        x = x / 127.5 - 1.0 if self._mean is None else (x / 255.0 - self._mean) / self._std
        return x.contiguous(memory_format=torch.channels_last)

    def _forward(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        """The network's logits; ``upsample=False``: the default network's before its last upsampling."""
        out = self.model(x) if upsample else self.model(x, upsample=False)
        if isinstance(out, dict):
            out = out["out"]
        if out.ndim != 4 or out.shape[1] != len(self.classes):
            raise ValueError(
                f"the network returned shape {tuple(out.shape)}; expected (B, {len(self.classes)}, h, w) "
                "logits, one channel per class name"
            )
        return out

    def logits(self, images, batch_size: int = 4) -> torch.Tensor:
        """Raw network logits (B, C, h, w) on the segmenter's device."""
        photos = _as_list(images)
        out = []
        with torch.inference_mode():
            for i in range(0, len(photos), batch_size):
                out.append(self._forward(self.preprocess(photos[i : i + batch_size])))
        return torch.cat(out)

    def _maps(self, x: torch.Tensor, size: int, autocast: bool) -> torch.Tensor:
        """Softmax maps (B, C, size, size) float32 on the CPU for a preprocessed batch. The default network on a
        CPU stops before its last step (the logits' bilinear upsampling to the input size), which
        :func:`_upsample_softmax_pool` does with the softmax and the pooling in one pass: the same maps."""
        if self.device.type == "cpu" and isinstance(self.model, DeepLabV3MobileNetV2):
            return _upsample_softmax_pool(self._forward(x, upsample=False), x.shape[-2:], size)
        use_amp = bool(autocast) and self.device.type == "cuda"
        dtype = torch.bfloat16 if autocast == "bfloat16" else torch.float16
        with torch.autocast(device_type="cuda", dtype=dtype, enabled=use_amp):
            logits = self._forward(x)
        return _softmax_pool(logits, size).cpu()

    def iter_predict(
        self,
        paths: Sequence,
        size: int = 64,
        batch_size: int = 16,
        workers: int = 2,
        autocast: bool = False,
        dtype=np.float32,
    ):
        """Segment image files in batches, decoding them in ``workers`` background processes (a torch
        DataLoader). Yields ``(indices, probs, failed)`` per batch: the positions in ``paths`` that were
        segmented, their maps (len(indices), C, size, size), and ``(position, error)`` for the
        files that could not be read (they are skipped, never abort the run). ``autocast``: on CUDA, float16
        (True or ``"float16"``) or ``"bfloat16"`` autocast; ignored on a CPU. ``dtype``: the maps' dtype,
        float32 or float16 (rounded to nearest as numpy's ``astype`` does, bit for bit, but converted by torch:
        numpy is ~80x slower on the many tiny probabilities of softmax maps, which are float16 subnormals)."""
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float16):
            raise ValueError(f"dtype must be float32 or float16, got {dtype}")
        out_dtype = torch.float16 if dtype == np.float16 else torch.float32
        loader = torch.utils.data.DataLoader(
            _PhotoFiles(list(paths), self.input_size),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )
        with torch.inference_mode():
            for idx, pixels, failed in loader:
                if not idx:
                    yield np.zeros(0, np.int64), np.zeros((0, len(self.classes), size, size), dtype), failed
                    continue
                probs = self._maps(self._normalize(pixels.to(self.device, non_blocking=True)), size, autocast)
                yield np.asarray(idx, np.int64), probs.to(out_dtype).numpy(), failed

    def predict(self, images, size: int = 64, batch_size: int = 4, autocast: bool = False) -> np.ndarray:
        """Softmax maps float32 (B, C, size, size) for one photo or a batch of photos.

        Accepts file paths, PIL images, HxWx3 uint8 numpy arrays, and torch tensors (uint8 HxWx3 or
        3xHxW, or float 3xHxW in [0, 1]); a 4-D array/tensor is a batch. Each photo is stretched to
        input_size squared (aspect ratio ignored), segmented, and its probabilities area-averaged to
        ``size x size``; each pixel's probabilities sum to 1. ``autocast``: float16 on CUDA.
        """
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        photos = _as_list(images)
        out = []
        with torch.inference_mode():
            for i in range(0, len(photos), batch_size):
                out.append(self._maps(self.preprocess(photos[i : i + batch_size]), size, autocast))
        if not out:
            return np.zeros((0, len(self.classes), size, size), np.float32)
        return torch.cat(out).numpy()

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """RGB uint8 picture (H, W, 3) of a class-index map (H, W), coloured with :attr:`palette`."""
        return self.palette[np.asarray(labels)]
