"""Data layer: soft-label validation, duplication into weighted rows, row aggregation, data sets."""
