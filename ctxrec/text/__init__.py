"""Text into vectors: the sentence encoders and the on-disk cache of item embeddings."""
