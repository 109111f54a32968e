"""Benchmarks run by `curate bench ...`: they print JSON figures and nothing in the product imports them."""
