"""Figures of stored and extracted features for people to look at (``stag inspect``)."""
