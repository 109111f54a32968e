"""Triton kernels (NVFP4 quantise, Hadamard, ...) each beside its pure-PyTorch reference."""
