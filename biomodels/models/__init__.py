"""Megatron-BERT models and their files: presets, where models live, checkpoint conversion,
tokenizers, vocabularies and trained-model directories.

`presets` (the named Megatron/BioMegatron architectures), `registry` (where models live and how a
name or path becomes a HuggingFace MegatronBert folder), `megatron_checkpoint` (reading Megatron-LM
and NeMo files) and `checkpoint_conversion` (into HuggingFace folders, QKV reordered by checkpoint
version), `task_models` (the encoder with NER, RE and QA heads), `tokenization`, `vocab_training`
and `model_dir` (the trained-model directory).

The names below import their module (and torch) on first use (`corpora.lazy_exports` says why).
"""

from corpora.lazy_exports import lazy_exports

_EXPORTS = {
    "PRESETS": "presets",
    "convert_checkpoint": "checkpoint_conversion",
    "get_preset": "presets",
    "list_models": "registry",
    "load_model_dir": "model_dir",
    "resolve_model": "registry",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
