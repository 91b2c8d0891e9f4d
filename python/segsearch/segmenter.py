"""Photos -> per-class softmax maps with the ADE20K DeepLabV3-MobileNetV2 network.

The network always runs at its native 513x513 input (the size the published TFLite graph is fixed
at): each photo is resized to 513x513 with bilinear filtering, *ignoring its aspect ratio*
(non-square photos are stretched, never cropped or padded), scaled to [-1, 1] as ``rgb / 127.5 - 1``,
and segmented; the 151 softmax maps (513x513) are then area-averaged to ``size x size`` with
adaptive average pooling (bins of 8 or 9 pixels for ``size=64``; 8*64 = 512 is within one pixel of 513).
Averaging probabilities keeps every pixel's class distribution summing to 1.
"""
from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .deeplab import NATIVE_SIZE, NUM_CLASSES, DeepLabV3MobileNetV2
from .weights import load_weights

__all__ = ["ADE20K_CLASSES", "Segmenter", "make_palette"]

# index 0 'others', then the 150 SceneParse150 (ADE20K) classes in the standard order
# (first name of each class; equals the model's labels.txt, checked by the tests).
ADE20K_CLASSES = (
    'others', 'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane',
    'grass', 'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant',
    'curtain', 'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror',
    'rug', 'field', 'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub',
    'railing', 'cushion', 'base', 'box', 'column', 'signboard', 'chest', 'counter', 'sand', 'sink',
    'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case',
    'pool', 'pillow', 'screen', 'stairway', 'river', 'bridge', 'bookcase', 'blind', 'coffee',
    'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm', 'kitchen',
    'computer', 'swivel', 'boat', 'bar', 'arcade', 'hovel', 'bus', 'towel', 'light', 'truck',
    'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television', 'airplane', 'dirt',
    'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster',
    'stage', 'van', 'ship', 'fountain', 'conveyer', 'canopy', 'washer', 'plaything', 'swimming',
    'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball',
    'food', 'step', 'tank', 'trade', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher',
    'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic', 'tray', 'ashcan', 'fan',
    'pier', 'crt', 'plate', 'monitor', 'bulletin', 'shower', 'radiator', 'glass', 'clock', 'flag',
)


def make_palette(n: int = NUM_CLASSES) -> np.ndarray:
    """A fixed, distinct RGB colour per class, uint8 (n, 3); class 0 ('others') is black.

    Hues follow the golden-ratio sequence; saturation and value cycle through three levels so that
    neighbouring hues also differ in brightness.
    """
    colors = [(0, 0, 0)]
    for i in range(1, n):
        h = (i * 0.618033988749895) % 1.0
        s = (1.0, 0.65, 0.85)[i % 3]
        v = (0.95, 0.75, 0.55)[(i // 3) % 3]
        colors.append(tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v)))
    return np.asarray(colors, dtype=np.uint8)


def _to_pil(image) -> Image.Image:
    """One photo as an RGB PIL image (path, PIL image, HxWx3 uint8 array, or torch tensor)."""
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            return ImageOps.exif_transpose(im).convert("RGB")  # honour the camera's orientation tag
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


class Segmenter:
    """Semantic segmentation into the 151 ADE20K classes (index 0 = 'others').

    Build it with :meth:`default`; call :meth:`predict` to get per-class probability maps.
    """

    input_size = NATIVE_SIZE

    def __init__(self, model: DeepLabV3MobileNetV2, device: str | torch.device | None = None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        # channels-last is markedly faster for this depthwise-heavy network on CPU (oneDNN)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.classes = list(ADE20K_CLASSES)
        self.palette = make_palette(len(self.classes))

    @classmethod
    def default(cls, device: str | torch.device | None = None,
                weights: str | os.PathLike | None = None) -> "Segmenter":
        """The DeepLabV3-MobileNetV2-ADE20K segmenter.

        ``weights``: a ``.tflite`` or imported ``.safetensors`` file; None looks in
        ``$SEGSEARCH_WEIGHTS`` and then the user cache (see :mod:`segsearch.weights`, which raises
        ``WeightsNotFoundError`` explaining where to get them). ``device``: default CUDA if
        available, else CPU.
        """
        model = DeepLabV3MobileNetV2()
        model.load_state_dict(load_weights(weights))
        return cls(model, device)

    def preprocess(self, photos: Sequence) -> torch.Tensor:
        """Network input (B, 3, 513, 513) on the device: photos stretched to 513x513, ``rgb / 127.5 - 1``."""
        arrays = [np.asarray(_to_pil(p).resize((self.input_size, self.input_size), Image.BILINEAR))
                  for p in photos]
        x = torch.from_numpy(np.stack(arrays)).to(self.device).permute(0, 3, 1, 2).float()
        return (x / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)

    def logits(self, images, batch_size: int = 4) -> torch.Tensor:
        """Raw network logits (B, 151, 513, 513) on the segmenter's device."""
        photos = _as_list(images)
        out = []
        with torch.inference_mode():
            for i in range(0, len(photos), batch_size):
                out.append(self.model(self.preprocess(photos[i:i + batch_size])))
        return torch.cat(out)

    def predict(self, images, size: int = 64, batch_size: int = 4) -> np.ndarray:
        """Softmax maps float32 (B, 151, size, size) for one photo or a batch of photos.

        Accepts file paths, PIL images, HxWx3 uint8 numpy arrays, and torch tensors (uint8 HxWx3 or
        3xHxW, or float 3xHxW in [0, 1]); a 4-D array/tensor is a batch. Each photo is stretched to
        513x513 (aspect ratio ignored), segmented, and its probabilities area-averaged to
        ``size x size``; each pixel's probabilities sum to 1.
        """
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        photos = _as_list(images)
        out = []
        with torch.inference_mode():
            for i in range(0, len(photos), batch_size):
                logits = self.model(self.preprocess(photos[i:i + batch_size]))
                probs = F.adaptive_avg_pool2d(torch.softmax(logits, dim=1), size)
                out.append(probs.float().cpu())
        if not out:
            return np.zeros((0, len(self.classes), size, size), np.float32)
        return torch.cat(out).numpy()

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """RGB uint8 picture (H, W, 3) of a class-index map (H, W), coloured with :attr:`palette`."""
        return self.palette[np.asarray(labels)]
