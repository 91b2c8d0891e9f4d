"""The index file format: a versioned header and raw arrays, saved atomically, loaded with mmap.

Layout (little-endian):
    8 bytes   magic b"SEGSRCH\\0"
    4 bytes   format version (uint32)
    4 bytes   header length H (uint32)
    4 bytes   CRC-32 of the header
    H bytes   header: UTF-8 JSON (metadata, and per array: dtype, shape, offset, nbytes, crc32)
    arrays    each at a 64-byte-aligned offset

No pickle: arrays are raw bytes described by the JSON header.

A load opens the file once and takes the header and every array from that one open file (one read-only
mapping, or reads at offsets of one descriptor), so a save that renames a new version onto the path during a
load cannot mix the two versions. With ``verify=True`` (the default) every array is checked against its CRC-32
before it is returned, memory-mapped or not (zlib.crc32 runs at several GB/s, in chunks), and
:func:`check_index` checks every header field's type and range and what an index's arrays must satisfy
together; anything malformed raises :class:`IndexFormatError` naming what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap as _mmap
import os
import stat
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError

MAGIC = b"SEGSRCH\0"
#: 2: the ranking (header field 'ranking', array 'class_prior'); files of version 1 load with the 'l2' ranking.
#: 3: the compact codebook: uint8 values (v means v / 255) with uint16 row-run sums; files of versions 1 and 2
#: hold float32 ones, which load as they are.
#: 4: exact maps as block maps (arrays 'exact_ptr', 'exact_index', 'exact_blocks'; was the dense 'exact_maps' with
#: 'exact_norms', converted when loaded) and the header field 'rerank' (0 when absent: no re-ranking).
#: 5: each photo's class shares (array 'class_shares', optional: see segsearch.engine.class_shares); files before it
#: load without them.
FORMAT_VERSION = 5
_PREFIX = struct.Struct("<8sIII")
_ALIGN = 64
_DTYPES = {"float32", "uint8", "uint16", "uint32", "int64"}


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
        entries[name] = {
            "dtype": a.dtype.name,
            "shape": list(a.shape),
            "rel": offset,
            "nbytes": int(a.nbytes),
            "crc32": _crc(np.ascontiguousarray(a)),
        }
        offset += -(-int(a.nbytes) // _ALIGN) * _ALIGN
    head = dict(header, arrays=entries)
    blob = json.dumps(head, sort_keys=True).encode()
    data_start = -(-(_PREFIX.size + len(blob)) // _ALIGN) * _ALIGN
    with atomic_write(path) as f:
        f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(blob), zlib.crc32(blob)))
        f.write(blob)
        f.write(b"\0" * (data_start - f.tell()))
        for a in arrays.values():
            a = np.ascontiguousarray(a)
            step = 1 << 26
            flat = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
            for s in range(0, flat.size, step):
                f.write(flat[s : s + step].tobytes())
            f.write(b"\0" * (-int(a.nbytes) % _ALIGN))


@contextlib.contextmanager
def atomic_path(path):
    """Make a file all or nothing: yields the path of an empty temporary file beside ``path`` (named
    ``NAME.XXXX.tmp``) for the block to fill (e.g. as a database), renamed onto ``path`` with normal permissions
    when the block ends, or removed if it raises (``path`` is then left as it was). An OSError from the block
    (a full disk, an I/O error) names ``path``. A temp file left by a killed process is removed by the next
    ``segsearch index`` run."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved file gets normal permissions
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    try:  # make the rename durable (best effort: some file systems cannot sync a folder)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


@contextlib.contextmanager
def atomic_write(path):
    """Write a file all or nothing (:func:`atomic_path`): yields a binary file for the temporary file, which is
    flushed and fsynced before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def load(path, *, mmap: bool = True, verify=True) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`save`: (header without its array table, {name: read-only array}).

    The file is opened once; the header and every array come from that open file (``mmap=True``: views of one
    read-only mapping; else copies read from the descriptor), whatever renames happen meanwhile. ``verify``:
    check every array against its CRC-32 before returning it (a collection of names: those arrays only). Raises
    IndexFormatError for anything that is not a complete, intact segsearch file of a known version (header fields
    of the wrong type or range included)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no index file at {path}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{path} is a directory; give the index file inside it")
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a device never end
        raise IndexFormatError(f"{path} is not a segsearch index file (not a regular file)")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"no index file at {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory; give the index file inside it") from None
    with f:
        st = os.fstat(f.fileno())  # the file now open: what a rename put at the path before the open
        if not stat.S_ISREG(st.st_mode):
            raise IndexFormatError(f"{path} is not a segsearch index file (not a regular file)")
        return _read(path, _OpenFile(f, st.st_size, mmap), verify)


class _OpenFile:
    """The bytes of one open file: a read-only mapping of it, or reads at offsets of its descriptor."""

    def __init__(self, f, size: int, use_mmap: bool):
        self.f, self.size = f, size
        self.map = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ) if use_mmap and size else None

    def bytes(self, off: int, n: int) -> bytes:
        if self.map is not None:
            return self.map[off : off + n]
        self.f.seek(off)
        return self.f.read(n)

    def array(self, off: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        count = math.prod(shape)
        if count == 0:
            a = np.zeros(shape, dtype)
        elif self.map is not None:  # a view of the mapping (kept alive by the array), read-only
            a = np.frombuffer(self.map, dtype, count, off).reshape(shape)
        else:
            a = np.empty(shape, dtype)
            buf = memoryview(a.reshape(-1).view(np.uint8))
            self.f.seek(off)
            done = 0
            while done < len(buf):
                got = self.f.readinto(buf[done : done + (1 << 26)])
                if not got:
                    raise EOFError
                done += got
        a.flags.writeable = False
        return a


def is_int(v) -> bool:
    return type(v) is int  # JSON integers; not bool, not float


def _read(path: Path, src: _OpenFile, verify) -> tuple[dict, dict[str, np.ndarray]]:
    def damaged(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{path} is damaged: {msg}")

    size = src.size
    prefix = src.bytes(0, _PREFIX.size) if size >= _PREFIX.size else b""
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
    blob = src.bytes(_PREFIX.size, hlen)
    if len(blob) != hlen:
        raise IndexFormatError(f"{path} is truncated (the header is incomplete)")
    if zlib.crc32(blob) != hcrc:
        raise damaged("its header checksum does not match")
    try:
        header = json.loads(blob)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise damaged(f"unreadable header ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise damaged(f"the header is a JSON {type(header).__name__}, not an object")
    entries = header.pop("arrays", None)
    if not isinstance(entries, dict):
        raise damaged("the header has no 'arrays' table")
    data_start = -(-(_PREFIX.size + hlen) // _ALIGN) * _ALIGN
    layout = []
    for name, e in entries.items():
        what = f"array '{name[:100]}'"
        if not isinstance(e, dict):
            raise damaged(f"{what}: its header entry is not an object")
        dt, shape, rel, nbytes, crc = (e.get(k) for k in ("dtype", "shape", "rel", "nbytes", "crc32"))
        if not isinstance(dt, str) or dt not in _DTYPES:
            raise damaged(f"{what} has dtype {dt!r}; expected one of {sorted(_DTYPES)}")
        if not isinstance(shape, list) or len(shape) > 8 or not all(is_int(d) and d >= 0 for d in shape):
            raise damaged(f"{what} has shape {shape!r}; expected a list of at most 8 integers >= 0")
        if not is_int(rel) or rel < 0 or rel % _ALIGN:
            raise damaged(f"{what} has offset {rel!r}; expected an integer >= 0, a multiple of {_ALIGN}")
        dtype = np.dtype(dt)
        if not is_int(nbytes) or nbytes != math.prod(shape) * dtype.itemsize:
            raise damaged(f"{what}: shape {shape} and size {nbytes!r} bytes disagree")
        if not is_int(crc) or not 0 <= crc < 1 << 32:
            raise damaged(f"{what} has checksum {crc!r}; expected a CRC-32 (an integer in 0..2**32-1)")
        if data_start + rel + nbytes > size:
            raise IndexFormatError(f"{path} is truncated: {what} ends past the end of the file")
        layout.append((rel, rel + nbytes, name, dtype, tuple(shape), crc))
    layout.sort(key=lambda t: (t[0], t[1]))
    for a, b in zip(layout, layout[1:]):
        if b[0] < a[1]:
            raise damaged(f"arrays '{a[2][:100]}' and '{b[2][:100]}' overlap")
    arrays = {}
    for rel, end, name, dtype, shape, crc in layout:
        try:
            a = src.array(data_start + rel, dtype, shape)
        except EOFError:
            raise IndexFormatError(f"{path} is truncated: array '{name[:100]}' ends past the end of the file") from None
        checked = verify is True or (verify not in (False, None) and name in verify)
        if checked and end > rel and _crc(a) != crc:
            raise damaged(f"array '{name[:100]}' fails its checksum")
        arrays[name] = a
    return header, arrays
