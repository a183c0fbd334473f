"""stag_model.allocator: glibc keeps freed blocks for the next step once asked to."""
from __future__ import annotations

import ctypes
import sys

import pytest

from stag_model.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_glibc_takes_the_thresholds():
    assert keep_freed_memory() is True
    libc = ctypes.CDLL("libc.so.6")
    assert libc.mallopt(-3, 1 << 20) == 1  # the call itself is what keep_freed_memory relies on
    assert keep_freed_memory() is True  # and it can be made again
