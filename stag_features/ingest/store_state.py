"""What a store holds for each sample, as an ingest decides on it.

    states = decision_states(entry, producer, records, write=True)

Two things set the recorded slot states (``stag_features.store.writer.slot_states``) apart from
what a run may trust:

- a committed sample whose chunk files are missing or differ from what was written (the digests
  recorded before its commit flag, ``stag_features.store.integrity``) is not computed: a writing
  run uncommits it first (``writer.quarantine_damaged``: failure stage ``integrity``, retried), so
  that it recomputes it, in a new slot if even its id was lost; a read-only one sees it as work;
- a store whose input hashes an earlier version computed (from paths and sheet rows: attribute
  ``input_identity`` absent) has them migrated first: a sample whose recorded hash is one of its
  record's legacy hashes gets its content hash (``stag_features.ingest.input_hash``) without being
  recomputed. Read-only callers (``write=False``) get None for such a store: the flow migrates it.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from schemas.catalog import DatasetEntry
from schemas.sample_record import SampleRecord
from schemas.store_spec import INPUT_IDENTITY, SCHEMA_VERSION
from stag_features.ingest.input_hash import input_hash, legacy_input_hashes
from stag_features.ingest.producers import Producer
from stag_features.store.identity import recorded_attrs
from stag_features.store.integrity import damage
from stag_features.store.migrate import INTEGRITY_STAGE
from stag_features.store.writer import SlotState, quarantine_damaged, replace_input_hashes, slot_states


def current(attrs: dict | None) -> bool:
    """Whether a store's recorded attributes are those this version writes (spec and input identity)."""
    attrs = attrs or {}
    return attrs.get("schema_version") == SCHEMA_VERSION and attrs.get("input_identity") == INPUT_IDENTITY


def _migrate_hashes(entry: DatasetEntry, producer: Producer, records: Sequence[SampleRecord],
                    states: dict[str, SlotState]) -> int:
    by_id = {record.sample_id: record for record in records}
    replaced = {}
    for sid, state in states.items():
        record = by_id.get(sid)
        if record is not None and state.input_hash and state.input_hash in legacy_input_hashes(record, producer):
            replaced[state.slot] = input_hash(record, producer)
    replace_input_hashes(entry.store, replaced)
    return len(replaced)


def decision_states(entry: DatasetEntry, producer: Producer, records: Sequence[SampleRecord],
                    write: bool) -> dict[str, SlotState] | None:
    """The slot states an ingest decides on (see the module docstring); None when ``write`` is off
    and the store must be migrated first."""
    attrs = recorded_attrs(entry.store, producer.config.store.lock_timeout_s)
    if not current(attrs):
        if not write:
            return None
        _migrate_hashes(entry, producer, records, slot_states(entry.store))
    if write:
        quarantine_damaged(entry.store)
        return slot_states(entry.store)
    states = slot_states(entry.store)
    problems = damage(entry.store, deep=True)
    problems.update({s.slot: "committed flag set beside a recorded failure" for s in states.values()
                     if s.committed and s.failure_stage})
    return {sid: dataclasses.replace(state, committed=False, failure_stage=INTEGRITY_STAGE,
                                     failure_reason=problems[state.slot]) if state.slot in problems else state
            for sid, state in states.items()}


def damaged_samples(states: dict[str, SlotState]) -> list[str]:
    """Sample ids whose committed data was found damaged (to be recomputed)."""
    return sorted(sid for sid, state in states.items() if state.failure_stage == INTEGRITY_STAGE)
