"""Scorers and filters: language ID, heuristic rules, KenLM perplexity, toxicity and quality, and the model
registry that trains and loads their models. Each filter is a registered stage that adds score columns."""
