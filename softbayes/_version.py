"""The version of softbayes, recorded in every fit file and report it writes."""

__version__ = "0.1.0"
