"""Mixture specs and the sampler that writes Parquet training mixtures; mixing strategies and the agent."""
