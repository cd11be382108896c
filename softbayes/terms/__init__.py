"""Model terms: formulas and their sandbox, designs, priors, and the likelihood families."""
