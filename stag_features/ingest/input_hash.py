"""The input hash: the one fingerprint of a sample's inputs that stores keep and reruns compare.

It depends on content only (the store's ``input_identity``, ``schemas.store_spec.INPUT_IDENTITY``):

    sha256( what the record means, as canonical JSON (sorted keys, no whitespace): the dataset,
            subject, clip, onset / apex / offset and their positions, fps, AU codes, emotion and
            class labels; not where its frames lie, not its sheet row
            + for each input file the producer uses, in order: its byte count (8 bytes) + its bytes )

The files are the producer's (``Producer.input_files``): the frames onset..offset of a clip's folder,
its video file, or a precomputed flow image. Moving the data, renaming its folders or reordering the
sheet changes nothing; editing a frame the sample uses or an annotation changes that sample's hash
only. It is computed before anything is decoded; a record without a source hashes ``<no source>``, a
source that cannot be listed or read hashes as unreadable (the sample's extraction then fails and is
recorded): computing it never raises.

``legacy_input_hashes`` are the hashes stores recorded before (over the whole record, its paths and
sheet row included, and every file of its source): an ingest finding one in a store recognises the
sample as unchanged and replaces it with the content hash, so that stores are migrated, not rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from schemas.sample_record import SampleRecord
from stag_features.extract.frame_sources import numbered_images

if TYPE_CHECKING:
    from stag_features.ingest.producers import Producer

_READ_BLOCK = 1 << 20
# SampleRecord fields that say where a sample's data lies or which sheet row it came from
LOCATION_FIELDS = frozenset({"source", "sheet_row"})


def record_meaning(record: SampleRecord) -> str:
    """The record without its location fields, as canonical JSON."""
    meaning = record.model_dump(mode="json", exclude=set(LOCATION_FIELDS))
    return json.dumps(meaning, sort_keys=True, separators=(",", ":"))


def _hash_bytes(digest: "hashlib._Hash", path: Path, header: bytes) -> None:
    digest.update(header)
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)


def input_hash(record: SampleRecord, producer: "Producer") -> str:
    """sha256 of what the record means and the bytes of the producer's input files for it."""
    digest = hashlib.sha256(record_meaning(record).encode())
    try:
        files = producer.input_files(record)
        if files is None:
            digest.update(b"<no source>")
        else:
            for path in files:
                _hash_bytes(digest, path, path.stat().st_size.to_bytes(8, "little"))
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


def legacy_input_hashes(record: SampleRecord, producer: "Producer") -> set[str]:
    """The hashes earlier versions recorded for this record at its current location: over the whole
    record JSON (paths and sheet row included) and '<name>:<size>:' + bytes of every file of its
    frame source (or of the producer's input file, for a record without frames), and the first
    flow-image import's (the record JSON with default separators, then the image's bytes)."""
    whole = record.model_dump(mode="json")
    found = set()
    try:
        source = record.source
        if source is None:
            files = producer.input_files(record) or []
        elif source.kind == "video":
            files = [Path(source.path)]
        else:
            files = [image for _number, image in numbered_images(Path(source.path))]
        digest = hashlib.sha256(json.dumps(whole, sort_keys=True, separators=(",", ":")).encode())
        for path in files:
            _hash_bytes(digest, path, f"{path.name}:{path.stat().st_size}:".encode())
        found.add(digest.hexdigest())
        if source is None and len(files) == 1:
            image = hashlib.sha256(json.dumps(whole, sort_keys=True).encode())
            image.update(files[0].read_bytes())
            found.add(image.hexdigest())
    except (OSError, ValueError):
        pass
    return found
