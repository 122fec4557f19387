"""`pretrain`: masked-language-model pretraining of a Megatron-BERT on the text of datasets.

BioMegatron's recipe at any scale: an encoder trained on in-domain text with its own WordPiece
vocabulary (from scratch), or a general one trained further on it (domain-adaptive pretraining,
`model` a preset, checkpoint or model directory). Text comes from dataset folders (`biomed ingest`
or `biomed preprocess`; sentences used when present) or any raw files the readers know; a stable
slice of the documents (`held_out_percent`, by id) is kept out of training for the MLM loss and
accuracy reported every `eval_every` steps. The trainer is the fine-tuning one (AMP, fused AdamW,
accumulation, warmup/decay, clipping, exact resume, torchrun DDP); the best held-out loss is kept.

The output directory is a model directory like `biomed train` writes (task `mlm`): it loads with
`biomed train ner|re|qa --model DIR` and with transformers' `MegatronBertForMaskedLM`.

Tested in `tests/biomodels/training/test_pretrain.py`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from biomodels.data.loading import DataFiles, read_input_documents
from biomodels.data.mlm import (
    MaskingCollator,
    MaskingSpec,
    document_segments,
    fixed_masked_batches,
    mlm_metrics,
    pack_documents,
    split_held_out,
)
from biomodels.models.encoder import MaskedLM
from biomodels.models.model_dir import save_model_dir, write_json
from biomodels.models.presets import scratch_config
from biomodels.models.registry import ensure_huggingface
from biomodels.models.shipped import DEFAULT_NAME, shipped_model_dir
from biomodels.models.task_models import HEAD_INIT_STD, init_new_module
from biomodels.models.tokenization import load_tokenizer
from biomodels.models.vocab_training import train_wordpiece_vocab
from biomodels.training import distributed as D
from biomodels.training.config import TrainConfig, build_config
from biomodels.training.provenance import provenance
from biomodels.training.trainer import Trainer
from corpora.errors import ConfigError, InputError, ModelError
from corpora.formats.textio import sha256_file

log = logging.getLogger(__name__)

SCRATCH_LEARNING_RATE = 5e-4  # small encoders from random weights (BERT-small recipes: 5e-4 to 1e-3)
CONTINUED_LEARNING_RATE = 1e-4  # domain-adaptive pretraining of a pretrained encoder
HELD_OUT_FILE = "held_out_metrics.json"


@dataclass
class PretrainOutcome:
    out_dir: Path
    global_step: int
    best_step: int | None
    held_out: dict[str, float]
    tokens_per_s: float
    metrics_path: Path | None
    plot_path: Path | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "global_step": self.global_step,
            "best_step": self.best_step,
            "held_out": self.held_out,
            "tokens_per_s": self.tokens_per_s,
            "metrics_path": str(self.metrics_path) if self.metrics_path else None,
            "plot_path": str(self.plot_path) if self.plot_path else None,
        }


def _resolved_config(config: TrainConfig | Mapping[str, Any] | None, source: str) -> TrainConfig:
    cfg = config if isinstance(config, TrainConfig) else build_config(None, config or {})
    if cfg.learning_rate is None:
        cfg = TrainConfig(
            **{
                **cfg.as_dict(),
                "learning_rate": SCRATCH_LEARNING_RATE if source == "scratch" else CONTINUED_LEARNING_RATE,
            }
        )
    return cfg.resolved("mlm")


def _vocabulary(cfg: TrainConfig, out: Path, docs: list[Any], dist: D.DistInfo, resume: bool) -> tuple[Path, dict]:
    """--vocab, or a WordPiece vocabulary trained (rank 0) on the training documents' text."""
    if cfg.vocab:
        path = Path(cfg.vocab)
        vocab_file = path / "vocab.txt" if path.is_dir() else path
        if not vocab_file.is_file():
            raise ConfigError(f"config key 'vocab': {vocab_file} not found")
        return path, {"path": str(vocab_file), "sha256": sha256_file(vocab_file), "trained": False}
    folder = out / "vocab"
    vocab_file = folder / "vocab.txt"
    if dist.is_main and not (resume and vocab_file.is_file()):
        texts = (seg for doc in docs for seg in document_segments(doc))
        train_wordpiece_vocab(texts, cfg.vocab_size, bool(cfg.lower_case), folder)
        log.info("trained a WordPiece vocabulary of %d entries -> %s", len(vocab_file.read_text().splitlines()), folder)
    D.barrier(dist)
    return folder, {
        "path": str(vocab_file),
        "sha256": sha256_file(vocab_file),
        "trained": True,
        "requested_size": cfg.vocab_size,
        "trained_on": "the training documents (held-out slice excluded)",
    }


def build_mlm_model(source: str, cfg: TrainConfig, out: Path, docs: list[Any], dist: D.DistInfo, resume: bool):
    """(model, tokenizer, source record) for pretraining from scratch or from a pretrained encoder."""
    torch.manual_seed(cfg.seed)
    if source == "scratch":
        vocab, vocab_record = _vocabulary(cfg, out, docs, dist, resume)
        tokenizer = load_tokenizer(vocab, bool(cfg.lower_case), cfg.max_positions)
        config = scratch_config(
            cfg.layers, cfg.hidden, cfg.heads, len(tokenizer), ffn=cfg.ffn, max_positions=cfg.max_positions
        )
        config.biomed_attention = cfg.attention
        config.initializer_range = HEAD_INIT_STD
        model = MaskedLM(config)
        record = {
            "name": "scratch",
            "kind": "scratch",
            "vocab": vocab_record,
            "architecture": {
                "layers": cfg.layers,
                "hidden": cfg.hidden,
                "heads": cfg.heads,
                "ffn": cfg.ffn or 4 * cfg.hidden,
                "max_positions": cfg.max_positions,
                "vocab_size": config.vocab_size,
            },
        }
        return model, tokenizer, record
    model_dir, _ = ensure_huggingface(
        source,
        preset=cfg.preset,
        vocab=cfg.vocab,
        checkpoint_version=cfg.checkpoint_version,
        config=cfg.model_config,
        lower_case=cfg.lower_case,
        gelu=cfg.gelu,
        trust_checkpoint=cfg.trust_checkpoint,
    )
    config = MaskedLM.config_class.from_pretrained(str(model_dir))
    config.biomed_attention = cfg.attention
    config.initializer_range = HEAD_INIT_STD
    tokenizer = load_tokenizer(model_dir, cfg.lower_case, config.max_position_embeddings)
    model, loading = MaskedLM.from_pretrained(
        str(model_dir), config=config, dtype=torch.float32, output_loading_info=True
    )
    missing = set(loading.get("missing_keys") or ())
    encoder_missing = sorted(k for k in missing if not k.startswith("cls."))
    if encoder_missing:
        raise ModelError(f"{model_dir}: encoder weights missing: {', '.join(encoder_missing[:8])}")
    if missing:
        init_new_module(model.cls)
        with torch.no_grad():
            model.cls.predictions.bias.zero_()
        log.info("%s has no MLM head: a new one starts from normal(0, %s)", model_dir, HEAD_INIT_STD)
    record = {"name": source, "kind": "path" if Path(source).exists() else "preset", "resolved_dir": str(model_dir)}
    return model, tokenizer, record


def pretrain(
    inputs: Sequence[str | Path],
    out: str | Path,
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    model: str = "scratch",
    resume: bool = False,
    command: str | None = None,
) -> PretrainOutcome:
    """Pretrain a masked LM on the text of `inputs` (dataset folders or raw files) into `out`."""
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not inputs:
        raise ConfigError("pretraining needs at least one input (a dataset folder or corpus files)")
    if model == DEFAULT_NAME:  # continue pretraining the shipped encoder
        model = str(shipped_model_dir("encoder"))
    cfg = _resolved_config(config, str(model))
    out = Path(out)
    dist = D.init_distributed(None if cfg.device is None else torch.device(cfg.device).type)
    try:
        started = time.time()
        files = DataFiles()
        docs = read_input_documents(inputs, cfg.format, files)
        if not docs:
            raise InputError(", ".join(map(str, inputs)), "no documents to pretrain on")
        train_docs, held_docs = split_held_out(docs, cfg.held_out_percent)
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
        D.barrier(dist)
        net, tokenizer, source_record = build_mlm_model(str(model), cfg, out, train_docs, dist, resume)
        assert cfg.max_length is not None
        features = pack_documents(train_docs, tokenizer, cfg.max_length)
        held_features = pack_documents(held_docs, tokenizer, cfg.max_length)
        if not features:
            raise InputError(", ".join(map(str, inputs)), "the documents hold no text to pretrain on")
        spec = MaskingSpec.from_tokenizer(tokenizer, cfg.mask_probability)
        eval_fn = None
        if held_features:
            batches = fixed_masked_batches(held_features, spec, cfg.eval_batch_size, seed=cfg.seed)
            eval_fn = lambda m: mlm_metrics(m, batches)  # noqa: E731
        n_tokens = sum(len(f["input_ids"]) for f in features)
        log.info(
            "pretraining on %d documents (%d sequences, %d word pieces); %d documents held out (%d sequences)",
            len(train_docs),
            len(features),
            n_tokens,
            len(held_docs),
            len(held_features),
        )
        trainer = Trainer(
            net, features, MaskingCollator(spec), cfg, out, eval_fn=eval_fn, metric="mlm_loss", greater_is_better=False
        )
        result = trainer.train(resume=resume)
        held_out: dict[str, float] = {}
        if dist.is_main:
            if eval_fn is not None:
                net.eval()
                with torch.no_grad():
                    held_out = mlm_metrics(net, batches)
                write_json(out / HELD_OUT_FILE, held_out)
            meta = {
                "lower_case": bool(getattr(tokenizer, "do_lower_case", cfg.lower_case)),
                "source_model": source_record,
                **provenance(command),
                "training_data": {"files": files.files},
                "data_summary": {
                    "documents": len(train_docs),
                    "held_out_documents": len(held_docs),
                    "sequences": len(features),
                    "word_pieces": n_tokens,
                    "held_out_ids_sha256": _ids_digest(held_docs),
                },
                "config": cfg.as_dict(),
                "max_length": cfg.max_length,
                "attention": result.run_info.get("attention"),
                "precision": result.run_info.get("precision"),
                "optimizer": result.run_info.get("optimizer"),
                "compiled": result.run_info.get("compiled"),
                "world_size": result.run_info.get("world_size"),
                "device": result.run_info.get("device"),
                "result": {
                    "global_step": result.global_step,
                    "best_step": result.best_step,
                    "weights": "best held-out loss" if trainer.keep_best and result.best_dir else "last step",
                    "held_out": held_out,
                    "tokens_per_s": result.tokens_per_s,
                    "real_tokens": result.real_tokens,
                },
                "resumed": resume,
                "seconds": round(time.time() - started, 1),
            }
            save_model_dir(out, net, tokenizer, "mlm", None, meta)
            if result.best_dir is not None and trainer.keep_best:
                shutil.rmtree(result.best_dir, ignore_errors=True)
            log.info("wrote pretrained encoder %s (held-out %s)", out, held_out or "none")
        D.barrier(dist)
        return PretrainOutcome(
            out,
            result.global_step,
            result.best_step,
            held_out,
            result.tokens_per_s,
            result.metrics_path,
            result.plot_path,
        )
    finally:
        D.shutdown(dist)


def _ids_digest(docs: Sequence[Any]) -> str:
    import hashlib

    joined = "\n".join(sorted(d.document_id or d.id for d in docs))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


__all__ = ["PretrainOutcome", "build_mlm_model", "pretrain"]
