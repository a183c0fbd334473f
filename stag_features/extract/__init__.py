"""One clip's pixels to its features: frames, face and landmarks, alignment, ROIs, motion
curve and frame selection, TV-L1 flow and strain, ROI features, AU cue and ROI graph, and
``sample_pipeline`` chaining them for one sample. Knows nothing of stores or orchestration."""
