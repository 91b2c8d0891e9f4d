"""The index file format: a versioned header and raw arrays, saved atomically, loaded with mmap.

Layout (little-endian):
    8 bytes   magic b"SEGSRCH\\0"
    4 bytes   format version (uint32)
    4 bytes   header length H (uint32)
    4 bytes   CRC-32 of the header
    H bytes   header: UTF-8 JSON (metadata, and per array: dtype, shape, offset, nbytes, crc32)
    arrays    each at a 64-byte-aligned offset

No pickle: arrays are raw bytes described by the JSON header.
"""
from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .errors import IndexFormatError

MAGIC = b"SEGSRCH\0"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIII")
_ALIGN = 64
#: Arrays up to this size are checked against their CRC on every load; larger ones only when not mmapped.
VERIFY_ALWAYS_BYTES = 64 << 20
_DTYPES = {"float32", "uint8", "int64"}


def _crc(a: np.ndarray) -> int:
    crc = 0
    flat = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
    step = 1 << 24
    for s in range(0, flat.size, step):
        crc = zlib.crc32(flat[s : s + step], crc)
    return crc


def save(path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``header`` (JSON-able) and ``arrays`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file path such as {path / 'index.segsearch'}")
    if not path.parent.exists():
        raise ValueError(f"the folder {path.parent} does not exist; create it first")
    entries = {}
    offset = 0
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.name not in _DTYPES:
            raise TypeError(f"array {name} has unsupported dtype {a.dtype}")
        entries[name] = {"dtype": a.dtype.name, "shape": list(a.shape), "rel": offset, "nbytes": int(a.nbytes),
                         "crc32": _crc(np.ascontiguousarray(a))}
        offset += -(-int(a.nbytes) // _ALIGN) * _ALIGN
    head = dict(header, arrays=entries)
    blob = json.dumps(head, sort_keys=True).encode()
    data_start = -(-(_PREFIX.size + len(blob)) // _ALIGN) * _ALIGN
    with atomic_write(path) as f:
        f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(blob), zlib.crc32(blob)))
        f.write(blob)
        f.write(b"\0" * (data_start - f.tell()))
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            step = 1 << 26
            flat = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
            for s in range(0, flat.size, step):
                f.write(flat[s : s + step].tobytes())
            f.write(b"\0" * (-int(a.nbytes) % _ALIGN))


@contextlib.contextmanager
def atomic_write(path):
    """Write a file all or nothing: yields a binary file for a temporary file beside ``path``, which is
    flushed, fsynced and renamed onto ``path`` when the block ends, or removed if it raises (``path`` is then
    left as it was)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved file gets normal permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path, *, mmap: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`save`. Raises IndexFormatError for anything that is not a complete,
    intact segsearch index of a known version."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no index file at {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the index file inside it")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size or prefix[:8] != MAGIC:
            raise IndexFormatError(f"{path} is not a segsearch index file (bad magic bytes)")
        _, version, hlen, hcrc = _PREFIX.unpack(prefix)
        if version > FORMAT_VERSION:
            raise IndexFormatError(
                f"{path} uses index format version {version}, newer than this segsearch understands "
                f"({FORMAT_VERSION}); upgrade segsearch"
            )
        if version < 1:
            raise IndexFormatError(f"{path} has an invalid format version {version}")
        if _PREFIX.size + hlen > size:
            raise IndexFormatError(f"{path} is truncated (the header is incomplete)")
        blob = f.read(hlen)
    if zlib.crc32(blob) != hcrc:
        raise IndexFormatError(f"{path} is damaged: its header checksum does not match")
    try:
        header = json.loads(blob)
    except ValueError as e:
        raise IndexFormatError(f"{path} is damaged: unreadable header ({e})") from None
    data_start = -(-(_PREFIX.size + hlen) // _ALIGN) * _ALIGN
    arrays = {}
    try:
        entries = header.pop("arrays")
        for name, e in entries.items():
            dtype = np.dtype(e["dtype"])
            if e["dtype"] not in _DTYPES:
                raise ValueError(f"dtype {e['dtype']}")
            shape = tuple(int(s) for s in e["shape"])
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes != int(e["nbytes"]) or min(shape, default=0) < 0:
                raise ValueError(f"array {name}: shape and size disagree")
            off = data_start + int(e["rel"])
            if off + nbytes > size:
                raise IndexFormatError(f"{path} is truncated: array '{name}' ends past the end of the file")
            if nbytes == 0:
                a = np.zeros(shape, dtype)
            elif mmap:
                a = np.memmap(path, dtype=dtype, mode="r", offset=off, shape=shape)
            else:
                a = np.fromfile(path, dtype=dtype, count=int(np.prod(shape)), offset=off).reshape(shape)
                a.flags.writeable = False
            if (not mmap or nbytes <= VERIFY_ALWAYS_BYTES) and _crc(a) != int(e["crc32"]):
                raise IndexFormatError(f"{path} is damaged: array '{name}' fails its checksum")
            arrays[name] = a
    except IndexFormatError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise IndexFormatError(f"{path} is damaged: malformed header ({e})") from None
    return header, arrays
