"""ctxrec: context-aware recommendations from language models, with the reasons laid open.

The names below are the public API; everything else is reached through its subpackage
(``ctxrec.data``, ``ctxrec.text``, ``ctxrec.inspect``, ``ctxrec.rank``, ``ctxrec.evaluation``,
``ctxrec.sequence``, ``ctxrec.llm``, ``ctxrec.experiments``; the README's "How it is built" says
what each holds). The generative LLM is not imported here, so ``import ctxrec`` stays quick.
"""

from .data.catalog import Catalog, CatalogError, Problem, builtin_catalog, read_catalog_csv
from .data.context import Context, HistoryEntry
from .evaluation.protocol import FULL_BOTH_WAYS, EvalResult, Protocol, evaluate, evaluate_protocols
from .evaluation.split import Split, leave_last_out
from .rank.explain import why
from .rank.query import Query, Ranker
from .rank.ranker import RecommenderRanker
from .rank.recommender import Ranking, Recommender, RecommenderConfig
from .rank.weights import COMPONENTS, DEFAULT_WEIGHTS, Weights, adaptive_weights
from .sequence.config import SequenceConfig, TrainConfig
from .text.embed_cache import EmbeddingCache, item_embeddings
from .text.encoders import DEFAULT_ENCODER, ModelLoadError, TextEncoder, load_encoder, pick_device

__all__ = [
    "COMPONENTS",
    "DEFAULT_ENCODER",
    "DEFAULT_WEIGHTS",
    "FULL_BOTH_WAYS",
    "Catalog",
    "CatalogError",
    "Context",
    "EmbeddingCache",
    "EvalResult",
    "HistoryEntry",
    "ModelLoadError",
    "Problem",
    "Protocol",
    "Query",
    "Ranker",
    "Ranking",
    "Recommender",
    "RecommenderConfig",
    "RecommenderRanker",
    "SequenceConfig",
    "Split",
    "TextEncoder",
    "TrainConfig",
    "Weights",
    "adaptive_weights",
    "builtin_catalog",
    "evaluate",
    "evaluate_protocols",
    "item_embeddings",
    "leave_last_out",
    "load_encoder",
    "pick_device",
    "read_catalog_csv",
    "why",
]
