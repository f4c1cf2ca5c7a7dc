"""Generative language models: loading a causal LM, the pointwise re-ranker and its ranker for
evaluation."""
