"""scispaCy preprocessing: sentences, tokens and abbreviations as exact character offsets.

Layers, bottom up: `pipeline` (building the spaCy pipeline, its fingerprint), `sentence_segmentation`
and `abbreviation_matchers` (its components), `passages` (passages as plain values, cutting long
ones), `token_offsets` and `chunks` (a chunk of documents through the pipeline, offsets out and back
onto Documents), `worker` and `pool` (worker processes), `documents` (`preprocess_documents`, the
public entry point) and `shard` (one dataset shard, the step behind `biomed preprocess`).

The names below import their module on first use (`corpora.lazy_exports` says why).
"""

from corpora.lazy_exports import lazy_exports

_EXPORTS = {
    "build_pipeline": "pipeline",
    "pipeline_fingerprint": "pipeline",
    "preprocess_documents": "documents",
    "PreprocessPool": "pool",
    "preprocess_shard": "shard",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
