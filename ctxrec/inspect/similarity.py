"""Similarity laid open: token-to-token cosines, a 2-D map of the embedding space, item pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.catalog import Catalog
from ..text.encoders import TextEncoder

__all__ = ["TokenSimilarity", "compare_items", "project_2d", "token_similarity"]


@dataclass
class TokenSimilarity:
    """Cosines between the contextual token embeddings of two texts.

    Attributes:
        query_tokens, item_tokens: tokens without special tokens.
        cosines: (Tq, Ti).
        pooled: cosine of the pooled sentence vectors.
    """

    query_tokens: list[str]
    item_tokens: list[str]
    cosines: np.ndarray
    pooled: float  # cosine of the two pooled sentence vectors, as the recommender scores them

    @property
    def best(self) -> np.ndarray:
        return self.cosines.argmax(axis=1)

    @property
    def maxsim(self) -> float:
        """Σ over query tokens of their best cosine (late interaction, as in ColBERT)."""
        return float(self.cosines.max(axis=1).sum())


@torch.inference_mode()
def _token_vectors(encoder: TextEncoder, text: str) -> tuple[list[str], np.ndarray]:
    features = encoder.model.preprocess([text])
    ids = features["input_ids"][0].tolist()
    features = {k: v.to(encoder.device) if isinstance(v, torch.Tensor) else v
                for k, v in features.items()}
    vectors = encoder.model[0](features)["token_embeddings"][0].float()
    vectors = torch.nn.functional.normalize(vectors, dim=-1).cpu().numpy()
    special = set(encoder.tokenizer.all_special_ids)
    keep = [i for i, token_id in enumerate(ids) if token_id not in special]
    return encoder.tokenizer.convert_ids_to_tokens([ids[i] for i in keep]), vectors[keep]


def token_similarity(encoder: TextEncoder, query: str, item_text: str) -> TokenSimilarity:
    """Contextual token embeddings of both texts (the encoder's last layer, before pooling) and
    their cosine matrix."""
    q_tokens, q_vectors = _token_vectors(encoder, query)
    i_tokens, i_vectors = _token_vectors(encoder, item_text)
    pooled = float(encoder.encode_one(query) @ encoder.encode_one(item_text))
    return TokenSimilarity(q_tokens, i_tokens, q_vectors @ i_vectors.T, pooled)


def project_2d(vectors: np.ndarray, extra: np.ndarray | None = None, method: str = "auto",
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Place items (and extra query vectors) on a plane.

    Args:
        vectors: (N, d) item vectors; the projection is fitted on these.
        extra: (E, d) vectors placed with the same projection (context, intent).
        method: ``pca``, ``umap`` (needs the ``umap-learn`` package) or ``auto`` (UMAP when
            installed and N ≥ 50, else PCA).

    Returns:
        item coordinates (N, 2), extra coordinates (E, 2), and the method used.
    """
    vectors = np.asarray(vectors, dtype=np.float32)  # a large catalog's are kept in float16
    extra = np.zeros((0, vectors.shape[1]), np.float32) if extra is None else extra
    if method in ("auto", "umap"):
        try:
            import umap
        except ImportError:
            if method == "umap":
                raise ValueError("UMAP needs the umap-learn package: pip install umap-learn")
        else:
            if len(vectors) >= 50:
                reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed)
                coords = reducer.fit_transform(vectors)
                return coords, reducer.transform(extra) if len(extra) else extra[:, :2], "UMAP"
    mean = vectors.mean(axis=0)
    _, _, components = np.linalg.svd(vectors - mean, full_matrices=False)
    basis = components[:2].T  # (d, 2)
    return (vectors - mean) @ basis, (extra - mean) @ basis, "PCA"


def compare_items(catalog: Catalog, vectors: np.ndarray, a: str, b: str
                  ) -> tuple[float, list[str], int]:
    """Cosine between two items, the tags they share, and b's rank among a's neighbours (1 = the
    closest item other than a itself)."""
    pa, pb = catalog.position(a), catalog.position(b)
    if pa is None or pb is None:
        raise KeyError(f"unknown item id: {a if pa is None else b}")
    tags_a = set(catalog.record(a).get("tags") or ())
    tags_b = set(catalog.record(b).get("tags") or ())
    cosines = np.asarray(vectors, dtype=np.float32) @ np.asarray(vectors[pa], dtype=np.float32)
    cosine = float(cosines[pb])
    rank = int((np.delete(cosines, pa) > cosine).sum()) + 1
    return cosine, sorted(tags_a & tags_b), rank
