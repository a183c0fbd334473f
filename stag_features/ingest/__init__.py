"""What an ingest computes and how one sample is produced and committed: planning (skip
decisions, batches), the producers of samples (the video pipeline, precomputed flow images),
one sample's steps with failure recording, and the run summary. No Prefect: ``flows`` wires it."""
