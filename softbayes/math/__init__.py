"""The math of softbayes' likelihoods, written once for NumPy arrays and PyTensor tensors."""
