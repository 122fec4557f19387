"""Inference: the annotation engine (`engine`) over Documents, what NER and RE share (`runtime`),
entity and relation prediction (`entities`, `relations`) and one dataset shard (`annotate_shard`).

The names below import their module (and torch) on first use (`corpora.lazy_exports` says why).
"""

from corpora.lazy_exports import lazy_exports

_EXPORTS = {"AnnotationEngine": "engine", "annotate_documents": "engine", "annotate_shard": "annotate_shard"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
