"""Fitting a built PyMC model: samplers, approximations, calibration, log-likelihood."""
