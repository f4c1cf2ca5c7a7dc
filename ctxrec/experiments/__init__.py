"""Experiments that run models against baselines under the evaluation protocols and save
the results: MovieLens-style logs and logs with context."""
