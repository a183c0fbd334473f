"""Command-line entry points: ``stag``, ``stag-ingest``, ``stag-fit``. They sit above
everything they call (flows, stag_model, stag_features); nothing imports them."""
