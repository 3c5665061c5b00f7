"""Keeping a long run's memory returned to the OS (glibc; elsewhere these do nothing).

A run allocates and frees a great many objects and buffers: rows, request bodies of 6 MB, blob
chunks. glibc keeps freed memory for reuse and gives back only what lies at the top of its heap,
so without help a process that has read a million rows stays at its high-water mark.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

_M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter number
_LARGE_BUFFER_BYTES = 256 * 1024


def _glibc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _glibc()


def return_large_buffers_to_the_os() -> None:
    """Allocate buffers over 256 KiB with mmap, always, so freeing them gives the memory back.

    glibc otherwise raises its mmap threshold each time such a buffer is freed, after which 6 MB
    request bodies come from the heap and stay with the process.
    """
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _LARGE_BUFFER_BYTES)


def release_free_memory() -> None:
    """Give the OS back the free pages anywhere in the heap (``malloc_trim``), not only at its
    top: a few milliseconds, called between files and after the read."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
