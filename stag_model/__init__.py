"""stag package."""
