"""Task models on a Megatron-BERT encoder: NER (token classification), RE (sequence
classification), QA (span extraction), from a pretrained model or from scratch.

Rule for new weights: every head (and a pooler the checkpoint lacks) is initialised with
normal(0, 0.02) and zero bias, whatever `initializer_range` the checkpoint's config states. The
public EMBO BioMegatron conversions say 0.2, ten times Megatron-LM's 0.02, and heads initialised
from that train badly. The built model's config is set to 0.02 too, so later initialisations
(e.g. resized embeddings) follow the same rule.

Tested in `tests/biomodels/models/test_registry.py`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomodels.models.checkpoint_conversion import read_conversion_record
from biomodels.models.encoder import ATTENTION_BACKENDS, TASK_CLASSES
from biomodels.models.presets import MEGATRON_LAYER_NORM_EPS, pad_vocab_size
from biomodels.models.registry import ensure_huggingface
from biomodels.models.tokenization import load_tokenizer
from corpora.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

HEAD_INIT_STD = 0.02
TASKS = ("ner", "re", "qa")
_HEAD_PREFIXES = {"ner": ("classifier.",), "re": ("classifier.", "bert.pooler."), "qa": ("qa_outputs.",)}


def _task_class(task: str):
    """Our encoder's class for `task` (biomodels.models.encoder); same weights as transformers'."""
    if task not in TASK_CLASSES:
        raise ConfigError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    return TASK_CLASSES[task]


def init_new_module(module: Any, std: float = HEAD_INIT_STD) -> None:
    """normal(0, std) weights and zero biases for every Linear in `module` (LayerNorms to 1/0)."""
    import torch

    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, torch.nn.Linear):
                sub.weight.normal_(0.0, std)
                if sub.bias is not None:
                    sub.bias.zero_()
            elif isinstance(sub, torch.nn.LayerNorm):
                sub.weight.fill_(1.0)
                sub.bias.zero_()


def _reinit_missing(model: Any, missing: set[str]) -> list[str]:
    """Re-initialise every module that has a freshly created (missing) weight; return their names."""
    modules = sorted({key.rsplit(".", 1)[0] for key in missing})
    named = dict(model.named_modules())
    for name in modules:
        if name not in named:
            raise ModelError(f"missing weight {name} has no module in {type(model).__name__}")
        init_new_module(named[name])
    return modules


@dataclass
class ModelInfo:
    """What was built and from what: the model card of a training run starts here."""

    task: str
    source: str
    model_dir: str | None
    lower_case: bool
    num_labels: int
    new_modules: list[str] = field(default_factory=list)
    checkpoint_initializer_range: float | None = None
    warnings: list[str] = field(default_factory=list)
    conversion: dict[str, Any] | None = None


def _label_kwargs(num_labels: int, id2label: dict[int, str] | None) -> dict[str, Any]:
    if id2label is None:
        return {"num_labels": num_labels}
    labels = {int(k): str(v) for k, v in id2label.items()}
    if sorted(labels) != list(range(num_labels)):
        raise ConfigError(f"id2label must name ids 0..{num_labels - 1}, got {sorted(labels)}")
    return {"num_labels": num_labels, "id2label": labels, "label2id": {v: k for k, v in labels.items()}}


def build_model(
    task: str,
    source: str | Path,
    num_labels: int,
    *,
    scratch_config: Any = None,
    id2label: dict[int, str] | None = None,
    vocab: str | Path | None = None,
    lower_case: bool | None = None,
    checkpoint_version: float | None = None,
    conversion: dict[str, Any] | None = None,
    attention: str = "sdpa",
):
    """(model, tokenizer, info) for `task` in ner|re|qa, on our encoder (`biomodels.models.encoder`).

    `source` is a preset name or a path resolvable by `biomodels.models.registry.resolve_model`
    (checkpoints are converted once), or "scratch" with `scratch_config`
    (`biomodels.models.presets.scratch_config(...)`) and `vocab` (a vocab.txt or a folder holding one),
    plus `lower_case` when the vocabulary folder does not record it. `conversion` holds the options
    for a raw checkpoint (`preset`, `config`, `gelu`, `trust_checkpoint`; see
    `biomodels.models.registry.ensure_huggingface`). `attention` is "sdpa" (fused kernels) or "eager".
    """
    if attention not in ATTENTION_BACKENDS:
        raise ConfigError(f"attention must be one of {', '.join(ATTENTION_BACKENDS)}, got {attention!r}")
    cls = _task_class(task)
    if num_labels < 1 and task != "qa":
        raise ConfigError(f"num_labels must be at least 1, got {num_labels}")
    if task == "qa":
        num_labels = 2  # start and end logits
    labels = _label_kwargs(num_labels, id2label if task != "qa" else None)
    labels["biomed_attention"] = attention
    if str(source) == "scratch":
        return _build_scratch(cls, task, num_labels, labels, scratch_config, vocab, lower_case)
    return _build_pretrained(
        cls, task, source, num_labels, labels, vocab, lower_case, checkpoint_version, dict(conversion or {})
    )


def _build_scratch(
    cls: Any,
    task: str,
    num_labels: int,
    labels: dict[str, Any],
    scratch_config: Any,
    vocab: str | Path | None,
    lower_case: bool | None,
):
    if scratch_config is None:
        raise ConfigError("a scratch model needs scratch_config (biomodels.models.presets.scratch_config(...))")
    if vocab is None:
        raise ConfigError("a scratch model needs a vocabulary (vocab=...; train one with `biomed vocab`)")
    tokenizer = load_tokenizer(vocab, lower_case, scratch_config.max_position_embeddings)
    if len(tokenizer) > scratch_config.vocab_size:
        raise ConfigError(
            f"vocabulary has {len(tokenizer)} tokens but scratch_config.vocab_size is {scratch_config.vocab_size}"
        )
    config = copy.deepcopy(scratch_config)
    config.num_labels = num_labels
    config.biomed_attention = labels["biomed_attention"]
    if "id2label" in labels:
        config.id2label, config.label2id = labels["id2label"], labels["label2id"]
    config.initializer_range = HEAD_INIT_STD
    model = cls(config)
    info = ModelInfo(task, "scratch", None, bool(getattr(tokenizer, "do_lower_case", lower_case)), num_labels)
    info.new_modules = ["(all weights: model built from scratch)"]
    return model, tokenizer, info


def _build_pretrained(
    cls: Any,
    task: str,
    source: str | Path,
    num_labels: int,
    labels: dict[str, Any],
    vocab: str | Path | None,
    lower_case: bool | None,
    checkpoint_version: float | None,
    conversion: dict[str, Any],
):
    import torch

    model_dir, _ = ensure_huggingface(
        source, vocab=vocab, checkpoint_version=checkpoint_version, lower_case=lower_case, **conversion
    )
    attention = labels.pop("biomed_attention")
    config = cls.config_class.from_pretrained(str(model_dir), **labels)
    config.biomed_attention = attention  # not a transformers key: from_pretrained would drop it
    tokenizer = load_tokenizer(model_dir, lower_case, config.max_position_embeddings)  # casing fails fast
    if len(tokenizer) > config.vocab_size:
        raise ModelError(
            f"{model_dir}: vocab.txt has {len(tokenizer)} tokens but the model only {config.vocab_size} embedding rows"
        )
    original_range = getattr(config, "initializer_range", None)
    config.initializer_range = HEAD_INIT_STD
    warnings: list[str] = []
    if config.layer_norm_eps < 1e-6:
        warnings.append(
            f"{model_dir}: layer_norm_eps is {config.layer_norm_eps:g}; Megatron-LM trained with "
            f"{MEGATRON_LAYER_NORM_EPS:g} (kept as the config says)"
        )
    model, loading = cls.from_pretrained(str(model_dir), config=config, dtype=torch.float32, output_loading_info=True)
    missing = set(loading.get("missing_keys") or ())
    not_heads = sorted(k for k in missing if not k.startswith(_HEAD_PREFIXES[task]))
    if not_heads:
        raise ModelError(f"{model_dir}: encoder weights missing from the checkpoint: {', '.join(not_heads[:8])}")
    new_modules = _reinit_missing(model, missing)
    for name in new_modules:
        log.info("newly initialised %s with normal(0, %s), zero bias", name, HEAD_INIT_STD)
    for w in warnings:
        log.warning(w)
    info = ModelInfo(
        task=task,
        source=str(source),
        model_dir=str(model_dir),
        lower_case=bool(getattr(tokenizer, "do_lower_case", lower_case)),
        num_labels=num_labels,
        new_modules=new_modules,
        checkpoint_initializer_range=original_range,
        warnings=warnings,
        conversion=read_conversion_record(model_dir),
    )
    return model, tokenizer, info


def add_marker_tokens(model: Any, tokenizer: Any, tokens: list[str] | tuple[str, ...]) -> list[int]:
    """Add entity-marker tokens (e.g. "[E1]", "[/E1]") as unsplittable tokens; return their ids.

    Megatron pads the embedding table (30522 -> 30592 rows), so new ids usually fit in rows that
    pretraining never used; the table grows (to the next multiple of 128) only when they do not.
    The rows of new tokens get normal(0, 0.02), the same rule as new heads.
    """
    import torch
    from tokenizers import AddedToken

    before = len(tokenizer)
    fresh = [t for t in tokens if t not in tokenizer.get_vocab()]
    if fresh:
        tokenizer.add_tokens(
            [AddedToken(t, single_word=False, normalized=False, special=True) for t in fresh], special_tokens=True
        )
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(pad_vocab_size(len(tokenizer)))
    new_ids = list(range(before, len(tokenizer)))
    if new_ids:
        with torch.no_grad():
            emb = model.get_input_embeddings().weight
            emb[new_ids] = torch.randn(len(new_ids), emb.shape[1], dtype=emb.dtype, device=emb.device) * HEAD_INIT_STD
        log.info("added marker tokens %s as ids %s", fresh, new_ids)
    return list(ids)


__all__ = ["HEAD_INIT_STD", "ModelInfo", "TASKS", "add_marker_tokens", "build_model", "init_new_module"]
