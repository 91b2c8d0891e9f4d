"""Keep freed memory in the process for the network's large tensors (glibc only).

A forward pass on a CPU allocates and frees tens of tensors of 10-100 MB per batch. glibc's malloc serves each
allocation above its mmap threshold with a fresh mapping and gives it back on free, so the next batch's tensors
are page-faulted and zeroed again by the kernel: on the 2-core development VM that was about half of the network's
time. :func:`keep_freed_memory` raises the mmap threshold and the trim threshold (``mallopt``), so freed blocks
stay in the heap and are reused. The cost: the process keeps its peak memory until it exits (about 1 GB for a
batch of 8 photos at 513 x 513). Set ``SEGSEARCH_KEEP_FREED_MEMORY=0`` to leave malloc as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc once per process (see the module docstring); True if it is tuned."""
    global _done
    if _done:
        return True
    if os.environ.get("SEGSEARCH_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        # below 1 GiB from the heap (the network's tensors are 10-200 MB); the heap's top kept up to 2 GiB
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    except OSError:
        return False
    _done = ok
    return ok
