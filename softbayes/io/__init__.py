"""Fit files: the ``softbayes_*`` attributes of a fit, training data, reading and writing."""
