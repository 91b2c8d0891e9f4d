"""Find the DeepLab weights: explicit path -> ``SEGSEARCH_WEIGHTS`` -> the network bundled with the package.

The published TFLite file ships inside the package (``segsearch/models/``, Apache-2.0, see the NOTICE there).
A ``.tflite`` file -- the bundled one or one the user names -- is imported once into the user cache as
safetensors; afterwards the import is found by the sha256 of its source file, which the importer records in
the safetensors metadata, whatever the cached file is called. An already-imported ``.safetensors`` file can be
named directly. Weights are only ever read with safetensors; nothing is unpickled.

Every set of weights has an identity, the sha256 of the file it came from (:func:`weights_sha256`); an index
records it, and photo queries look for the same weights (:func:`resolve_weights` with ``sha256=``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import WeightsNotFoundError
from .tflite_import import EXPECTED_TFLITE_SHA256, sha256_file

ENV_VAR = "SEGSEARCH_WEIGHTS"
#: The default network's name, recorded in the indexes it builds.
NETWORK = "deeplabv3-mnv2-ade20k"
#: The published TFLite file, shipped inside the package.
BUNDLED = Path(__file__).resolve().parent.parent / "models" / "deeplabv3-mnv2-ade20k.tflite"
#: sha256 of :data:`BUNDLED` (checked before the file is imported).
BUNDLED_SHA256 = EXPECTED_TFLITE_SHA256
_CACHE_PREFIX = "deeplabv3-mobilenetv2-ade20k-"


def cache_dir() -> Path:
    """The per-user cache directory segsearch keeps imported weights in."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("segsearch"))


def _source_sha256(path: Path) -> str | None:
    """The sha256 of the file a cached safetensors import was made from (its metadata), or None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("source_sha256")
    except Exception:  # noqa: BLE001 -- an unreadable or foreign file in the cache is not a match
        return None


def weights_sha256(path: str | os.PathLike) -> str:
    """The identity of a weights file: the sha256 of the ``.tflite`` it was imported from (recorded in an
    imported ``.safetensors`` file's metadata), else the sha256 of the file itself."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        source = _source_sha256(path)
        if source:
            return source
    return sha256_file(path)


def _cached(sha256: str) -> Path | None:
    """An import in the cache whose source file had this sha256: the usual name first, then any
    ``.safetensors`` file there whose metadata says so."""
    cache = cache_dir()
    usual = cache / f"{_CACHE_PREFIX}{sha256[:16]}.safetensors"
    if usual.is_file() and _source_sha256(usual) == sha256:
        return usual
    if cache.is_dir():
        for p in sorted(cache.glob("*.safetensors")):
            if p != usual and _source_sha256(p) == sha256:
                return p
    return None


def _from_tflite(path: Path, sha256: str | None = None) -> Path:
    """The cached safetensors import of a .tflite file, importing it first if needed. ``sha256``: the file's
    known digest (checked before importing). If the cache cannot be written (read-only home, full disk), the
    .tflite path itself is returned: :func:`load_weights` then imports it in memory."""
    from .tflite_import import import_tflite

    found = None if sha256 is None else _cached(sha256)
    if found is not None:
        return found
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise _not_found(
            f"{path} is damaged (its sha256 is {digest[:12]}..., not {sha256[:12]}...); reinstall segsearch"
        )
    found = _cached(digest)
    if found is not None:
        return found
    target = cache_dir() / f"{_CACHE_PREFIX}{digest[:16]}.safetensors"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        import_tflite(path, target)
    except OSError:
        return path
    return target


def _not_found(detail: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"{detail}; pass --weights FILE (Python: weights=FILE, or set {ENV_VAR}), "
        "a .tflite or .safetensors file of the network"
    )


def _bundled() -> Path:
    if not BUNDLED.is_file():
        raise _not_found(f"the network file that ships with segsearch is missing ({BUNDLED}): reinstall segsearch")
    return BUNDLED


def resolve_weights(weights: str | os.PathLike | None = None, *, sha256: str | None = None) -> Path:
    """Path of the weights to load: ``weights``, else ``$SEGSEARCH_WEIGHTS``, else the bundled network.

    ``.tflite`` files are imported into the user cache on first use (the import is found again by its source's
    sha256). ``sha256``: the identity of the weights wanted (what an index recorded, see
    :func:`weights_sha256`); without an explicit file it is looked up in the bundle and the cache.
    Raises :class:`WeightsNotFoundError` saying which option to use if nothing fits.
    """
    if weights is None and os.environ.get(ENV_VAR):
        weights, origin = os.environ[ENV_VAR], f"${ENV_VAR}"
    else:
        origin = "--weights"
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise _not_found(f"{origin} names {str(path)!r}, which is not a file")
        return _from_tflite(path) if path.suffix.lower() == ".tflite" else path
    if sha256 is None or sha256 == BUNDLED_SHA256:
        return _from_tflite(_bundled(), BUNDLED_SHA256)
    found = _cached(sha256)
    if found is None:
        raise _not_found(
            f"the weights with sha256 {sha256[:12]}... are neither the bundled network nor in the cache {cache_dir()}"
        )
    return found


def load_weights(
    weights: str | os.PathLike | None = None, *, sha256: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """The network's state dict and its identity (sha256), found with :func:`resolve_weights`."""
    path = resolve_weights(weights, sha256=sha256)
    if path.suffix.lower() == ".tflite":  # the cache could not be written: import in memory
        from .tflite_import import load_state_dict

        return load_state_dict(path), weights_sha256(path)
    from safetensors.torch import load_file

    return load_file(str(path)), weights_sha256(path)
