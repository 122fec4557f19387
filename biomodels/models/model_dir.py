"""The trained-model directory: everything evaluation and inference need, and nothing else needed.

Layout written by `save_model_dir` (and by `biomed train`, which adds the Trainer's files):

    config.json            HuggingFace config (architecture, id2label/label2id)
    model.safetensors      weights
    tokenizer.json         the fast tokenizer, added marker tokens included
    tokenizer_config.json  special tokens, casing
    vocab.txt              the WordPiece vocabulary (without added tokens), for BERT tools
    labels.json            {"task", "labels": [label of id 0, 1, ...]} (NER, RE)
    biomed.json            task, source model and hash, data files and hashes, config, precision,
                           optimizer, apex, versions, max_length/stride, RE marker style
    metrics.json, training.png, dev_metrics.json   (training runs)

`biomed.json` is written last, so a directory that has it is complete.

Tested in `tests/biomodels/training/test_api.py`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biomodels.models.task_models import _task_class
from biomodels.models.tokenization import METADATA_FILE
from corpora.errors import ConfigError, ModelError
from corpora.file_modes import apply_umask

MODEL_FORMAT = "biomed-model/1"
LABELS_FILE = "labels.json"
LABELLED_TASKS = ("ner", "re")
MODEL_INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc


def base_vocab(tokenizer: Any) -> list[str]:
    """The tokenizer's WordPiece vocabulary in id order, without tokens added after training."""
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False)
    ordered = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in ordered] != list(range(len(ordered))):
        raise ModelError("tokenizer vocabulary ids are not contiguous; cannot write vocab.txt")
    return ordered


def save_model_dir(
    out: str | Path,
    model: Any,
    tokenizer: Any,
    task: str,
    labels: Sequence[str] | None,
    meta: Mapping[str, Any],
) -> Path:
    """Write the model, tokenizer, label map and `biomed.json` (last) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if task in LABELLED_TASKS:
        if not labels:
            raise ConfigError(f"a {task} model needs its labels to be saved")
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        if [id2label.get(i) for i in range(len(labels))] != list(labels):
            raise ModelError(f"model config id2label {id2label} does not match the labels {list(labels)}")
    model.save_pretrained(str(out))
    if not (out / "model.safetensors").is_file():
        raise ModelError(f"{out}: save_pretrained wrote no model.safetensors")
    apply_umask(out / "model.safetensors")  # safetensors writes 0600
    tokenizer.save_pretrained(str(out))
    (out / "vocab.txt").write_text("".join(t + "\n" for t in base_vocab(tokenizer)), encoding="utf-8")
    if task in LABELLED_TASKS:
        _write_json(out / LABELS_FILE, {"task": task, "labels": list(labels or ())})
    payload = {"format": MODEL_FORMAT, "task": task, **meta}
    _write_json(out / METADATA_FILE, payload)
    return out


def write_json(path: str | Path, payload: Any) -> None:
    """Atomic JSON write (for the run's extra reports)."""
    _write_json(Path(path), payload)


@dataclass
class LoadedModel:
    path: Path
    task: str
    model: Any
    tokenizer: Any
    labels: list[str] | None
    meta: dict[str, Any]


def read_meta(path: str | Path) -> dict[str, Any]:
    """`biomed.json` of a trained-model directory; ModelError when this is not one."""
    p = Path(path)
    if not p.is_dir():
        raise ModelError(f"{p}: no such model directory")
    meta_path = p / METADATA_FILE
    if not meta_path.is_file():
        raise ModelError(
            f"{meta_path}: missing; {p} is not a trained biomed model directory (train one with `biomed train`)"
        )
    meta = _read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT or "task" not in meta:
        raise ModelError(f"{meta_path}: not a trained-model record (expected format {MODEL_FORMAT!r} and a task)")
    return meta


def read_labels(path: str | Path, task: str) -> list[str]:
    labels_path = Path(path) / LABELS_FILE
    if not labels_path.is_file():
        raise ModelError(f"{labels_path}: missing; a {task} model directory needs its label map (labels.json)")
    data = _read_json(labels_path)
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f'{labels_path}: expected {{"labels": [label of id 0, 1, ...]}}')
    return labels


def load_model_dir(path: str | Path, task: str | None = None, device: Any = None) -> LoadedModel:
    """Model, tokenizer, labels and record of a trained-model directory (checked for consistency)."""
    import torch
    from transformers import PreTrainedTokenizerFast

    p = Path(path)
    meta = read_meta(p)
    saved_task = meta["task"]
    if task is not None and task != saved_task:
        raise ConfigError(f"{p} holds a {saved_task} model, not a {task} model")
    labels = read_labels(p, saved_task) if saved_task in LABELLED_TASKS else None
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (p / name).is_file():
            raise ModelError(f"{p / name}: missing from the model directory")
    # tokenizer.json exactly as saved (added marker tokens included); the generic class would leave
    # token_type_ids out of its outputs unless told, and QA pairs need them
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(p), model_input_names=list(MODEL_INPUT_NAMES))
    model = _task_class(saved_task).from_pretrained(str(p), dtype=torch.float32)
    if labels is not None:
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        if [id2label.get(i) for i in range(len(labels))] != labels or len(id2label) != len(labels):
            raise ModelError(f"{p}: labels.json {labels} disagrees with config.json id2label {id2label}")
    if device is not None:
        model.to(device)
    model.eval()
    return LoadedModel(p, saved_task, model, tokenizer, labels, meta)


__all__ = [
    "LABELS_FILE",
    "LoadedModel",
    "MODEL_FORMAT",
    "load_model_dir",
    "read_labels",
    "read_meta",
    "save_model_dir",
    "write_json",
]
