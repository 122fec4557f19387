"""What NER and RE inference share: loading a model directory for prediction, naming the annotator,
and running features through the model in batches bounded by their padded size.

Batches: features are sorted by length (longest first, so a batch that does not fit in memory fails
at once, not at the end) and cut so that `rows x longest row` stays within `batch_tokens` padded
tokens (default 8,192 on CUDA, 2,048 on CPU, where smaller batches pad less and stay in cache).
Short biomedical sentences (about 30 word pieces) then travel in batches of dozens to hundreds, long
ones in small batches, and padding stays a few percent of the work.

Kernels: models run on our encoder (`biomodels.models.encoder`: one QKV matmul, fused attention,
PyTorch's GeLU kernels); `compile=True` also compiles it for inference, with frozen weights
(`biomodels.models.compilation`).

Precision: `biomodels.training.precision.resolve_precision` decides ("auto": bf16 autocast on CUDA devices
that have native bf16, fp16 on older ones, fp32 on CPU); every forward runs under
`torch.inference_mode`.

Tested in `tests/biomodels/inference/test_engine.py`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biomodels.models.compilation import compile_encoder, inference_settings
from biomodels.models.model_dir import LoadedModel, load_model_dir
from biomodels.models.shipped import resolve_model_path
from biomodels.training.precision import PrecisionPlan, resolve_precision
from corpora.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

DEFAULT_BATCH_TOKENS = 8192  # CUDA: large batches keep the GPU busy
CPU_BATCH_TOKENS = 2048  # CPU: less padding and cache-sized activations (measured faster than 8192)
WEIGHTS_FILE = "model.safetensors"
DIGEST_CHARS = 12


def weights_digest(model_dir: str | Path) -> str:
    """First 12 hex digits of the sha256 of the directory's `model.safetensors`."""
    path = Path(model_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise ModelError(f"{path}: missing from the model directory {Path(model_dir)}")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:DIGEST_CHARS]


def model_name(model_dir: Path, meta: dict[str, Any]) -> str:
    """The name a model goes by in annotator strings: biomed.json's `name`, else the folder name."""
    name = meta.get("name")
    return str(name) if isinstance(name, str) and name else model_dir.resolve().name


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None: the first CUDA device when there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device ({exc})") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


def default_batch_tokens(device: torch.device) -> int:
    return DEFAULT_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS


@dataclass
class TaskModel:
    """A loaded model directory ready to predict: the model on its device, in eval mode."""

    loaded: LoadedModel
    device: torch.device
    precision: PrecisionPlan
    annotator: str
    max_length: int
    compiled: bool = False

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def model(self) -> Any:
        return self.loaded.model

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def labels(self) -> list[str]:
        return list(self.loaded.labels or ())

    @property
    def meta(self) -> dict[str, Any]:
        return self.loaded.meta


def load_task_model(
    model_dir: str | Path,
    task: str,
    device: str | torch.device | None = None,
    precision: str = "auto",
    compile: bool = False,
) -> TaskModel:
    """Load a trained-model directory of `task` for inference (weights hashed for the annotator).

    Raises ModelError naming the missing file and the directory when the directory is incomplete.
    """
    path = Path(str(resolve_model_path(model_dir, task))).expanduser()
    if not path.is_dir():
        raise ModelError(f"{path}: no such model directory")
    digest = weights_digest(path)  # before loading: names a missing weights file plainly
    dev = resolve_device(device)
    plan = resolve_precision(precision, dev)
    loaded = load_model_dir(path, task=task, device=dev)
    if compile:
        compile_encoder(loaded.model, dev, inference=True)
    if not getattr(loaded.tokenizer, "is_fast", False):
        raise ModelError(f"{path}: the tokenizer is not a fast tokenizer; word ids and offsets need one")
    positions = int(getattr(loaded.model.config, "max_position_embeddings", 512))
    max_length = int(loaded.meta.get("max_length") or min(positions, 512))
    if max_length > positions:
        raise ModelError(f"{path}: biomed.json max_length {max_length} exceeds the model's {positions} positions")
    annotator = f"{task}:{model_name(path, loaded.meta)}@{digest}"
    log.info("loaded %s from %s on %s (%s)", annotator, path, dev, plan.name)
    return TaskModel(loaded, dev, plan, annotator, max_length, compiled=compile)


def padded_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches, longest first, each within `batch_tokens` padded tokens
    (a single row longer than the budget forms a batch of its own)."""
    if batch_tokens < 1:
        raise ConfigError(f"batch_tokens must be >= 1, got {batch_tokens}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order.tolist():
        n = int(lengths[i])
        width = max(longest, n)
        if current and width * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest, width = [], 0, n
        current.append(i)
        longest = width
    if current:
        batches.append(current)
    return batches


def run_batches(
    task_model: TaskModel,
    input_ids: Sequence[Sequence[int]],
    batch_tokens: int,
    consume: Callable[[list[int], torch.Tensor], None],
) -> None:
    """Forward every row of `input_ids` (lists of token ids) in padded-size batches; `consume(rows,
    logits)` receives the batch's row indices and its logits (float32, on the model's device)."""
    pad_id = task_model.tokenizer.pad_token_id
    if pad_id is None:
        raise ModelError(f"{task_model.path}: the tokenizer has no padding token")
    lengths = [len(ids) for ids in input_ids]
    model, device = task_model.model, task_model.device
    with torch.inference_mode(), task_model.precision.autocast(), inference_settings(task_model.compiled):
        for rows in padded_batches(lengths, batch_tokens):
            width = max(lengths[r] for r in rows)
            ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for k, r in enumerate(rows):
                ids[k, : lengths[r]] = input_ids[r]
                mask[k, : lengths[r]] = 1
            ids_t = torch.from_numpy(ids).to(device, non_blocking=True)
            mask_t = torch.from_numpy(mask).to(device, non_blocking=True)
            logits = model(input_ids=ids_t, attention_mask=mask_t, token_type_ids=torch.zeros_like(ids_t)).logits
            consume(rows, logits.float())


def iter_chunks(
    items: Iterator[Any], size: int, weight: Callable[[Any], int] | None = None, max_weight: int | None = None
) -> Iterator[list[Any]]:
    """Lists of consecutive items: at most `size` items, and closed once their total `weight`
    reaches `max_weight` (when given)."""
    chunk: list[Any] = []
    total = 0
    for item in items:
        chunk.append(item)
        if weight is not None:
            total += weight(item)
        if len(chunk) >= size or (max_weight is not None and total >= max_weight):
            yield chunk
            chunk, total = [], 0
    if chunk:
        yield chunk


__all__ = [
    "CPU_BATCH_TOKENS",
    "DEFAULT_BATCH_TOKENS",
    "TaskModel",
    "default_batch_tokens",
    "iter_chunks",
    "load_task_model",
    "model_name",
    "padded_batches",
    "resolve_device",
    "run_batches",
    "weights_digest",
]
