"""Keep freed memory for the next training step instead of handing it back to the OS.

glibc serves every allocation above its mmap threshold (128 KB, growing to at most 32 MB) with a
fresh mmap and returns it with munmap when freed, and trims the heap top above 128 KB: a training
step allocates and frees the same large activations every step, and each fresh page costs a fault
and zeroing. ``keep_freed_memory`` raises both thresholds (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD,
M_TOP_PAD through ``mallopt``) so that freed blocks are reused: a LOSO fold trains ~15% faster on
the CPU (BENCHMARKS.md section 9). It changes nothing but where memory comes from, and does
nothing where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters (malloc.h)
KEEP_BYTES = 256 * 2**20  # blocks up to this size come from (and return to) the heap


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, KEEP_BYTES), (M_TRIM_THRESHOLD, 2 * KEEP_BYTES), (M_TOP_PAD, KEEP_BYTES)))
