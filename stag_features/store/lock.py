"""The store's lock file: an fcntl lock on ``<store>.lock`` beside the store
folder (inside it, zarr would warn about an object that is not part of the
hierarchy every time the group is listed).

Writers hold it exclusively while they create, rebuild or resize the store and
shared while they open arrays, so no one reads array metadata halfway through
a resize. Sample data is written outside the lock: each writer owns its slots'
chunks. fcntl locks work between processes of one machine and on most local
file systems; they do not exist on object storage, so concurrent writers there
are not supported (a single writer process per store is).
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_SUFFIX = ".lock"
_POLL_S = 0.05


def lock_path(store: Path) -> Path:
    """The lock file of a store: ``stores/demo.zarr`` -> ``stores/demo.zarr.lock``."""
    return store.with_name(store.name + LOCK_SUFFIX)


@contextmanager
def store_lock(store: str | Path, exclusive: bool, timeout: float = 120.0) -> Iterator[None]:
    """Hold the store's lock (exclusive or shared) for the duration of the block.

    Raises TimeoutError naming the lock file if it cannot be taken within
    ``timeout`` seconds (another writer is stuck, or the file system has no
    locks).
    """
    store = Path(store)
    if not store.is_dir():
        raise FileNotFoundError(f"no feature store at {store}")
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        if exclusive:
            raise
        yield  # a read-only store (e.g. a shared copy): nobody can be writing it through this file system
        return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    kind = "exclusive" if exclusive else "shared"
                    raise TimeoutError(f"could not take the {kind} lock {path} within {timeout:.0f} s; "
                                       "is another ingest stuck on this store?") from exc
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
