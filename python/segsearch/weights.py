"""Find the DeepLab weights: explicit path -> ``SEGSEARCH_WEIGHTS`` -> user cache dir -> clear error.

A path may name the published ``.tflite`` file (it is imported once into the cache as safetensors,
and the cached file is reused afterwards) or an already-imported ``.safetensors`` file. Weights are
only ever read with safetensors; nothing is unpickled.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import SegsearchError

ENV_VAR = "SEGSEARCH_WEIGHTS"
TFLITE_NAME = "deeplabv3-mobilenetv2-ade20k.tflite"
SAFETENSORS_NAME = "deeplabv3-mobilenetv2-ade20k.safetensors"
PUBLISHED_AT = (
    "TF Hub model 'sayakpaul/lite-model/deeplabv3-mobilenetv2-ade20k/1/default/1' (a TFLite conversion "
    "of the DeepLab model-zoo checkpoint 'deeplabv3_mnv2_ade20k_train_2018_12_03')"
)


class WeightsNotFoundError(SegsearchError, FileNotFoundError):
    """The segmentation network's weights are not available locally."""


def cache_dir() -> Path:
    """The per-user cache directory segsearch keeps imported weights in."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("segsearch"))


def _not_found(detail: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"{detail}. segsearch needs the DeepLabV3-MobileNetV2-ADE20K weights: download the TFLite file "
        f"published as {PUBLISHED_AT}, then either save it as {cache_dir() / TFLITE_NAME}, set "
        f"{ENV_VAR}=/path/to/model.tflite, or pass weights='/path/to/model.tflite'. An already imported "
        f"'.safetensors' file (see segsearch.tflite_import.import_tflite) works in the same places.")


def _from_tflite(path: Path) -> Path:
    """The cached safetensors import of a .tflite file, importing it first if needed."""
    from .tflite_import import import_tflite, sha256_file

    digest = sha256_file(path)
    target = cache_dir() / f"deeplabv3-mobilenetv2-ade20k-{digest[:16]}.safetensors"
    if not target.exists():
        import_tflite(path, target)
    return target


def resolve_weights(weights: str | os.PathLike | None = None) -> Path:
    """Path of a safetensors weight file, from ``weights``, then ``$SEGSEARCH_WEIGHTS``, then the cache.

    ``.tflite`` paths are imported into the cache on first use. Raises
    :class:`WeightsNotFoundError` (saying what to download and where to put it) if nothing is found.
    """
    if weights is None and os.environ.get(ENV_VAR):
        weights = os.environ[ENV_VAR]
        origin = f"${ENV_VAR}"
    else:
        origin = "weights argument"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise _not_found(f"{origin} points to {str(path)!r}, which is not a file")
        return _from_tflite(path) if path.suffix.lower() == ".tflite" else path
    cache = cache_dir()
    if (cache / SAFETENSORS_NAME).is_file():
        return cache / SAFETENSORS_NAME
    if (cache / TFLITE_NAME).is_file():
        return _from_tflite(cache / TFLITE_NAME)
    raise _not_found(f"no weights given, {ENV_VAR} is not set, and {cache} holds neither "
                     f"{TFLITE_NAME} nor {SAFETENSORS_NAME}")


def load_weights(weights: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The network's state dict, found with :func:`resolve_weights` and read with safetensors."""
    from safetensors.torch import load_file

    return load_file(str(resolve_weights(weights)))
