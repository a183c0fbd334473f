"""The input hash: the one fingerprint of a sample's inputs that stores keep and reruns compare.

    sha256( record's canonical JSON (sorted keys, no whitespace)
            + for each input file, in order: "<name>:<size>:" + its bytes )

The files are the producer's (``Producer.input_files``): the numbered images of a clip's
folder, its video file, or a precomputed flow image. It is computed before anything is
decoded, so a rerun decides per sample cheaply. A record without a source hashes
``<no source>``; a source that cannot be listed or read hashes as unreadable (the sample's
extraction then fails and is recorded): computing it never raises.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from schemas.sample_record import SampleRecord

if TYPE_CHECKING:
    from stag_features.ingest.producers import Producer

_READ_BLOCK = 1 << 20


def _hash_file(digest: "hashlib._Hash", path: Path) -> None:
    digest.update(f"{path.name}:{path.stat().st_size}:".encode())
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)


def input_hash(record: SampleRecord, producer: "Producer") -> str:
    """sha256 of the record and the bytes of the producer's input files for it (module docstring)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(record.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode())
    try:
        files = producer.input_files(record)
        if files is None:
            digest.update(b"<no source>")
        else:
            for path in files:
                _hash_file(digest, path)
    except (OSError, ValueError) as exc:
        digest.update(f"<unreadable: {type(exc).__name__}>".encode())
    return digest.hexdigest()


def input_hashes(records: Sequence[SampleRecord], producer: "Producer") -> Iterator[str]:
    """``input_hash`` of each record, in order, computed by one thread per core (hashlib and file
    reads release the GIL). Stopping the iteration early cancels the hashes not yet started."""
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        yield from pool.map(lambda record: input_hash(record, producer), records)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
