"""ctxrec: context-aware recommendations from language models, with the reasons laid open."""

from .catalog import Catalog, CatalogError, Problem, builtin_catalog, read_catalog_csv
from .context import Context, HistoryEntry
from .embed_cache import EmbeddingCache, item_embeddings
from .encoders import DEFAULT_ENCODER, ModelLoadError, TextEncoder, load_encoder, pick_device
from .explain import why
from .recommender import Ranking, Recommender, RecommenderConfig
from .weights import COMPONENTS, DEFAULT_WEIGHTS, Weights, adaptive_weights

__all__ = [
    "COMPONENTS",
    "DEFAULT_ENCODER",
    "DEFAULT_WEIGHTS",
    "Catalog",
    "CatalogError",
    "Context",
    "EmbeddingCache",
    "HistoryEntry",
    "ModelLoadError",
    "Problem",
    "Ranking",
    "Recommender",
    "RecommenderConfig",
    "TextEncoder",
    "Weights",
    "adaptive_weights",
    "builtin_catalog",
    "item_embeddings",
    "load_encoder",
    "pick_device",
    "read_catalog_csv",
    "why",
]
