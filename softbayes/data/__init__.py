"""Data layer: soft-label validation, duplication into weighted rows, built-in data sets."""
