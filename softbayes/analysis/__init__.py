"""What is done with fits: predictions, diagnostics, scores, plots, model comparison."""
