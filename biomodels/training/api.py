"""`train` and `evaluate` for ner|re|qa: data in, model directory out, metrics back.

The glue between the pieces: `training_data` reads and preprocesses the inputs, `modeling` builds
the model (a preset, a path, or `scratch` with a vocabulary trained here when none is given),
`ner_data`/`re_data`/`qa_data` make features, `trainer.Trainer` trains (AMP, resume, DDP, metrics.json
and the PNG), `task_eval` scores on the dev set, and `model_dir` writes a directory that evaluation
and inference can load with nothing else (see `biomodels.models.model_dir` for the layout).

Under torchrun every rank reads the data and builds the same model; rank 0 alone trains a
vocabulary, evaluates and writes files, and the others wait for it at barriers.
"""

from __future__ import annotations

import logging
import platform
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from biomodels.data.batching import PaddingCollator
from biomodels.data.loading import (
    DataFiles,
    RelationData,
    filter_entity_types,
    load_documents,
    load_qa_examples,
    load_re_examples,
    re_label_list,
)
from biomodels.data.ner import build_label_map, ner_examples, tokenize_ner
from biomodels.data.qa import tokenize_qa
from biomodels.data.re_candidates import RELATION_TASKS
from biomodels.data.re_features import tokenize_re
from biomodels.data.re_marking import BIOELECTRA_MASKS, MARKER_STYLES, marker_tokens
from biomodels.models.model_dir import load_model_dir, save_model_dir, write_json
from biomodels.models.presets import scratch_config
from biomodels.models.shipped import DEFAULT_NAME, resolve_model_path, shipped_model_dir
from biomodels.models.task_models import add_marker_tokens, build_model
from biomodels.models.tokenization import load_tokenizer
from biomodels.models.vocab_training import train_wordpiece_vocab
from biomodels.training import distributed as D
from biomodels.training.config import TASKS, TrainConfig, build_config
from biomodels.training.evaluation import EvalSet, headline, make_eval_fn, predict, score
from biomodels.training.precision import resolve_precision
from biomodels.training.provenance import provenance
from biomodels.training.trainer import Trainer
from corpora.dataset.versioning import code_version
from corpora.errors import ConfigError
from corpora.formats.textio import sha256_file

log = logging.getLogger(__name__)

DEV_METRICS_FILE = "dev_metrics.json"
VOCAB_DIR = "vocab"


@dataclass
class TaskData:
    """Examples of one split plus what the model must know about them."""

    task: str
    train: list[Any]
    dev: list[Any] | None
    labels: list[str] | None
    relation: RelationData | None = None
    train_files: DataFiles = field(default_factory=DataFiles)
    dev_files: DataFiles = field(default_factory=DataFiles)


@dataclass
class TrainOutcome:
    out_dir: Path
    global_step: int
    best_step: int | None
    dev_metrics: dict[str, Any]
    headline: dict[str, float]
    metrics_path: Path | None
    plot_path: Path | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "global_step": self.global_step,
            "best_step": self.best_step,
            "headline": self.headline,
            "dev_metrics": self.dev_metrics,
            "metrics_path": str(self.metrics_path) if self.metrics_path else None,
            "plot_path": str(self.plot_path) if self.plot_path else None,
        }


# ------------------------------------------------------------------------------------------ data


def _ner_examples(
    inputs: Sequence[str | Path], cfg: TrainConfig, files: DataFiles, strict_types: bool = True
) -> list[Any]:

    docs = load_documents(inputs, cfg.format, tokens=True, spacy_model=cfg.spacy_model, files=files)
    if cfg.entity_types and not strict_types:  # evaluation: keep the trained types, whatever the data has
        wanted = set(cfg.entity_types)
        for d in docs:
            d.entities = [e for e in d.entities if e.type in wanted]
    else:
        docs = filter_entity_types(docs, cfg.entity_types)
    return ner_examples(docs, discontinuous=cfg.discontinuous)  # type: ignore[arg-type]


def load_task_data(
    task: str, cfg: TrainConfig, train: Sequence[str | Path], dev: Sequence[str | Path] | None
) -> TaskData:
    """Examples of the train (and dev) inputs for `task`, and the label list from the training data."""

    data = TaskData(task, [], None, None)
    if task == "ner":
        data.train = _ner_examples(train, cfg, data.train_files)
        data.labels = build_label_map(data.train)
        if data.labels == ["O"]:
            raise ConfigError(f"the NER training data ({', '.join(map(str, train))}) has no entities")
        data.dev = _ner_examples(dev, cfg, data.dev_files, strict_types=False) if dev else None
    elif task == "re":
        rel = load_re_examples(
            train, fmt=cfg.format, relation_task=cfg.relation_task, spacy_model=cfg.spacy_model, files=data.train_files
        )
        data.relation, data.train, data.labels = rel, rel.examples, re_label_list(rel)
        if dev:
            dev_rel = load_re_examples(
                dev, fmt=cfg.format, spacy_model=cfg.spacy_model, files=data.dev_files, task=rel.task
            )
            if dev_rel.kind != rel.kind:
                raise ConfigError(f"RE train data is {rel.kind} but dev data is {dev_rel.kind}; use the same kind")
            data.dev = dev_rel.examples
    elif task == "qa":
        data.train = load_qa_examples(train, data.train_files)
        data.dev = load_qa_examples(dev, data.dev_files) if dev else None
    else:
        raise ConfigError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    if not data.train:
        raise ConfigError(f"no {task} training examples in {', '.join(map(str, train))}")
    return data


def training_texts(data: TaskData) -> list[str]:
    """The text a scratch model's vocabulary is trained on: the training inputs themselves."""
    if data.task == "ner":
        return [" ".join(ex.words) for ex in data.train]
    if data.task == "re":
        return list(dict.fromkeys(getattr(ex, "sentence", None) or ex.text for ex in data.train))
    return list(dict.fromkeys([ex.context for ex in data.train] + [ex.question for ex in data.train]))


def make_features(
    task: str, examples: Sequence[Any], tokenizer: Any, label2id: Mapping[str, int] | None, cfg: TrainConfig, style: str
) -> list[dict[str, Any]]:

    assert cfg.max_length is not None and cfg.stride is not None
    if task == "ner":
        return tokenize_ner(examples, tokenizer, label2id, cfg.max_length, cfg.stride)
    if task == "re":
        return tokenize_re(
            examples, tokenizer, label2id, cfg.max_length, style if style in MARKER_STYLES else "entity_markers"
        )
    return tokenize_qa(examples, tokenizer, cfg.max_length, cfg.stride)


def eval_set(
    task: str,
    examples: Sequence[Any],
    features: list[dict[str, Any]],
    labels: list[str] | None,
    cfg: TrainConfig,
    negative: str,
) -> EvalSet:
    return EvalSet(task, list(examples), features, labels, negative, cfg.n_best, cfg.max_answer_length)


# ----------------------------------------------------------------------------------------- model


def _scratch_vocab(
    cfg: TrainConfig, out: Path, data: TaskData, dist: D.DistInfo, resume: bool
) -> tuple[Path, dict[str, Any]]:
    """The vocabulary of a scratch model: --vocab, or one trained from the training text (rank 0)."""
    if cfg.vocab:
        path = Path(cfg.vocab)
        vocab_file = path / "vocab.txt" if path.is_dir() else path
        if not vocab_file.is_file():
            raise ConfigError(f"config key 'vocab': {vocab_file} not found")
        return path, {"path": str(vocab_file), "sha256": sha256_file(vocab_file), "trained": False}
    folder = out / VOCAB_DIR
    vocab_file = folder / "vocab.txt"
    if dist.is_main and not (resume and vocab_file.is_file()):
        texts = training_texts(data)
        train_wordpiece_vocab(texts, cfg.vocab_size, bool(cfg.lower_case), folder)
        n = sum(1 for _ in vocab_file.open(encoding="utf-8"))
        log.info(
            "no vocabulary given for the scratch model: trained a WordPiece vocabulary of %d entries "
            "(asked %d, %s) from the %d training texts -> %s",
            n,
            cfg.vocab_size,
            "uncased" if cfg.lower_case else "cased",
            len(texts),
            vocab_file,
        )
    elif dist.is_main:
        log.info("resuming: reusing the vocabulary trained for this run, %s", vocab_file)
    D.barrier(dist)
    return folder, {
        "path": str(vocab_file),
        "sha256": sha256_file(vocab_file),
        "trained": True,
        "requested_size": cfg.vocab_size,
        "trained_on": "training text",
    }


def build_task_model(
    task: str, source: str, cfg: TrainConfig, data: TaskData, out: Path, dist: D.DistInfo, resume: bool = False
):
    """(model, tokenizer, info, source record): built with `cfg.seed` so every rank starts the same."""

    num_labels = len(data.labels) if data.labels else 2
    id2label = dict(enumerate(data.labels)) if data.labels else None
    torch.manual_seed(cfg.seed)
    if source == "scratch":
        vocab, vocab_record = _scratch_vocab(cfg, out, data, dist, resume)

        size = len(load_tokenizer(vocab, bool(cfg.lower_case)))
        config = scratch_config(cfg.layers, cfg.hidden, cfg.heads, size, ffn=cfg.ffn, max_positions=cfg.max_positions)
        model, tokenizer, info = build_model(
            task,
            "scratch",
            num_labels,
            scratch_config=config,
            id2label=id2label,
            vocab=vocab,
            lower_case=bool(cfg.lower_case),
            attention=cfg.attention,
        )
        record = {
            "name": "scratch",
            "kind": "scratch",
            "sha256": None,
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
    else:
        model, tokenizer, info = build_model(
            task,
            source,
            num_labels,
            id2label=id2label,
            vocab=cfg.vocab,
            lower_case=cfg.lower_case,
            checkpoint_version=cfg.checkpoint_version,
            attention=cfg.attention,
            conversion={
                "preset": cfg.preset,
                "config": cfg.model_config,
                "gelu": cfg.gelu,
                "trust_checkpoint": cfg.trust_checkpoint,
            },
        )
        record = {
            "name": source,
            "kind": "path" if Path(source).exists() else "preset",
            "resolved_dir": info.model_dir,
            **_weights_hash(info),
        }
    if cfg.dropout is not None:
        _set_dropout(model, cfg.dropout)
    return model, tokenizer, info, record


def _weights_hash(info: Any) -> dict[str, Any]:
    conversion = info.conversion or {}
    if conversion.get("source_sha256"):
        return {
            "sha256": conversion["source_sha256"],
            "sha256_of": conversion.get("source_path", "converted checkpoint"),
        }
    folder = Path(info.model_dir)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return {"sha256": sha256_file(folder / name), "sha256_of": str(folder / name)}
    shards = sorted(folder.glob("model-*.safetensors"))
    return {"sha256": [sha256_file(s) for s in shards], "sha256_of": [str(s) for s in shards]}


def _set_dropout(model: torch.nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
        if hasattr(model.config, key):
            setattr(model.config, key, p)


def add_relation_markers(model: Any, tokenizer: Any, data: TaskData, style: str) -> tuple[str, list[str]]:
    """Add the marker (or mask) tokens of the RE input style; returns (style used, tokens added)."""

    rel = data.relation
    assert rel is not None
    if rel.kind == "masked-tsv":
        masked_bioelectra = any(
            BIOELECTRA_MASKS[0] in ex.text or BIOELECTRA_MASKS[1] in ex.text for ex in rel.examples[:200]
        )
        tokens = list(BIOELECTRA_MASKS) if masked_bioelectra else []
        style = "masked-tsv"
    else:
        types = {t for pair in rel.task.type_pairs for t in pair} if rel.task else set()
        tokens = marker_tokens(style, types)
    if tokens:
        add_marker_tokens(model, tokenizer, tokens)
    return style, tokens


# ------------------------------------------------------------------------------------------ train


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in (
        "biomed-pipelines",
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "spacy",
        "scispacy",
        "numpy",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"

    out["biomodels_code"] = code_version("biomodels")
    return out


def _as_config(config: TrainConfig | Mapping[str, Any] | None) -> TrainConfig:
    if config is None:
        return TrainConfig()
    if isinstance(config, TrainConfig):
        return config
    return build_config(None, config)


def train(
    task: str,
    model: str,
    train: Sequence[str | Path],
    dev: Sequence[str | Path] | None,
    out: str | Path,
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
) -> TrainOutcome:
    """Train a `task` model from `model` (preset, path, or "scratch") on `train`, pick the best
    checkpoint on `dev`, and write the model directory `out`. Returns what happened."""

    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    if model == DEFAULT_NAME:  # fine-tune the shipped encoder
        model = str(shipped_model_dir("encoder"))
    cfg = _as_config(config).resolved(task, scratch=model == "scratch")
    out = Path(out)
    train = [train] if isinstance(train, (str, Path)) else list(train)
    dev = [dev] if isinstance(dev, (str, Path)) else (list(dev) if dev else None)
    dist = D.init_distributed(None if cfg.device is None else torch.device(cfg.device).type)
    try:
        started = time.time()
        data = load_task_data(task, cfg, train, dev)
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
        D.barrier(dist)
        net, tokenizer, info, source_record = build_task_model(task, model, cfg, data, out, dist, resume)
        style, markers = (
            add_relation_markers(net, tokenizer, data, cfg.marker_style) if task == "re" else (cfg.marker_style, [])
        )
        label2id = {lab: i for i, lab in enumerate(data.labels)} if data.labels else None
        features = make_features(task, data.train, tokenizer, label2id, cfg, style)
        if not features:
            raise ConfigError("no training features (every example was too long for max_length?)")
        negative = data.relation.negative_label if data.relation else "false"
        dev_set = None
        if data.dev:
            dev_set = eval_set(
                task, data.dev, make_features(task, data.dev, tokenizer, None, cfg, style), data.labels, cfg, negative
            )
        pad_id = tokenizer.pad_token_id
        eval_fn = make_eval_fn(dev_set, pad_id, cfg.eval_batch_size) if dev_set is not None else None
        log.info(
            "%s: %d training examples -> %d features; %s; labels %s",
            task,
            len(data.train),
            len(features),
            f"{len(data.dev)} dev examples" if data.dev else "no dev set",
            data.labels,
        )
        trainer = Trainer(net, features, PaddingCollator(pad_id), cfg, out, eval_fn=eval_fn)
        result = trainer.train(resume=resume)
        dev_metrics: dict[str, Any] = {}
        if dist.is_main:
            if dev_set is not None:
                plan = resolve_precision(cfg.precision, next(net.parameters()).device)
                with torch.no_grad(), plan.autocast():
                    dev_metrics = score(dev_set, predict(dev_set, net, pad_id, cfg.eval_batch_size))
                write_json(out / DEV_METRICS_FILE, dev_metrics)
            meta = {
                **provenance(),
                "lower_case": bool(info.lower_case),
                "source_model": source_record,
                "new_modules": info.new_modules,
                "model_warnings": info.warnings,
                "labels": data.labels,
                "training_data": {"train": data.train_files.files, "dev": data.dev_files.files},
                "config": cfg.as_dict(),
                "max_length": cfg.max_length,
                "stride": cfg.stride,
                "marker_style": style if task == "re" else None,
                "marker_tokens": markers,
                "relation_task": (data.relation.task.name if data.relation and data.relation.task else None),
                "relation_input": data.relation.kind if data.relation else None,
                "negative_label": negative if task == "re" else None,
                "entity_types": cfg.entity_types,
                "precision": result.run_info.get("precision"),
                "optimizer": result.run_info.get("optimizer"),
                "apex": result.run_info.get("apex"),
                "fused_layernorms": result.run_info.get("fused_layernorms"),
                "compiled": result.run_info.get("compiled"),
                "attention": result.run_info.get("attention"),
                "world_size": result.run_info.get("world_size"),
                "device": result.run_info.get("device"),
                "result": {
                    "global_step": result.global_step,
                    "best_step": result.best_step,
                    "best_metric": result.best_metric,
                    "stopped_early": result.stopped_early,
                    "weights": "best dev evaluation" if trainer.keep_best and result.best_dir else "last step",
                    "dev": headline(task, dev_metrics) if dev_metrics else {},
                },
                "versions": package_versions(),
                "resumed": resume,
                "seconds": round(time.time() - started, 1),
            }
            save_model_dir(out, net, tokenizer, task, data.labels, meta)
            if result.best_dir is not None and trainer.keep_best:
                shutil.rmtree(result.best_dir, ignore_errors=True)  # the saved model is these weights
            log.info("wrote model directory %s", out)
        D.barrier(dist)
        return TrainOutcome(
            out,
            result.global_step,
            result.best_step,
            dev_metrics,
            headline(task, dev_metrics) if dev_metrics else {},
            result.metrics_path,
            result.plot_path,
        )
    finally:
        D.shutdown(dist)


# --------------------------------------------------------------------------------------- evaluate


def evaluate(
    task: str,
    model_dir: str | Path,
    data: Sequence[str | Path] | str | Path,
    *,
    batch_size: int = 64,
    device: str | None = None,
) -> dict[str, Any]:
    """Metrics (strict entity-level NER, positive-class micro RE, SQuAD QA) of the model in `model_dir`
    on the gold `data`, read with the settings the model was trained with (max_length, stride, marker
    style, relation task, types)."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    inputs = [data] if isinstance(data, (str, Path)) else list(data)
    model_dir = str(resolve_model_path(model_dir, task))
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_model_dir(model_dir, task, device=dev)
    meta = loaded.meta
    saved = dict(meta.get("config") or {})
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}).resolved(task)
    files = DataFiles()
    negative = meta.get("negative_label") or "false"
    if task == "ner":
        examples = _ner_examples(inputs, cfg, files, strict_types=False)
    elif task == "re":
        rel_name = meta.get("relation_task")
        rel = load_re_examples(
            inputs,
            fmt=cfg.format,
            spacy_model=cfg.spacy_model,
            files=files,
            task=RELATION_TASKS.get(rel_name) if rel_name else None,
        )
        if meta.get("relation_input") and rel.kind != meta["relation_input"]:
            raise ConfigError(
                f"{model_dir} was trained on {meta['relation_input']} RE input, "
                f"{', '.join(map(str, inputs))} is {rel.kind}"
            )
        examples = rel.examples
    else:
        examples = load_qa_examples(inputs, files)
    style = meta.get("marker_style") or cfg.marker_style
    features = make_features(task, examples, loaded.tokenizer, None, cfg, style)
    evalset = eval_set(task, examples, features, loaded.labels, cfg, negative)

    with torch.no_grad(), resolve_precision("auto", dev).autocast():
        predictions = predict(evalset, loaded.model, loaded.tokenizer.pad_token_id, batch_size)
    metrics = score(evalset, predictions)
    metrics["data"] = files.files
    metrics["model_dir"] = str(model_dir)
    return metrics


__all__ = ["TaskData", "TrainOutcome", "evaluate", "load_task_data", "make_features", "package_versions", "train"]
