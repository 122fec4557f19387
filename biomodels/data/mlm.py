"""Masked-language-model pretraining data: packed sequences and whole-word masks.

How BERT and Megatron-LM pretrain, at the scale of this project:
- Sequences are packed from consecutive sentences of one document up to `max_length` word pieces
  ([CLS] ... [SEP]); a sentence longer than that is cut into pieces of the budget. Documents that
  have no sentences yet (ingested, not preprocessed) contribute their passages as segments.
- Whole-word masking: words are picked with probability `probability` (so about that share of
  the word pieces are predicted); every piece of a picked word is then replaced by [MASK] (80%), by
  a random ordinary token (10%) or kept (10%), and only those pieces carry a label.
- Masks are drawn at collate time from torch's global generator, so each epoch sees new masks and
  the trainer's checkpoints (which hold the generator state) resume to the same masks. The
  held-out slice is masked once, with a fixed seed, so its loss is comparable across evaluations.
- The held-out slice is chosen by document id (a hash), so it does not move when inputs are
  added or reordered.

Tested in `tests/biomodels/data/test_mlm.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from biomodels.data.batching import PaddingCollator
from corpora.errors import ConfigError
from corpora.schema import Document

IGNORE = -100


def document_segments(doc: Document) -> list[str]:
    """The text of `doc` in reading order: its sentences when it has them, else its passages."""
    text = doc.text
    if doc.sentences:
        spans = sorted((s.start, s.end) for s in doc.sentences)
        return [seg for seg in (text[a:b].strip() for a, b in spans) if seg]
    return [p.text.strip() for p in doc.passages if p.text.strip()]


def is_held_out(document_id: str, percent: float) -> bool:
    """Whether a document belongs to the held-out slice: a stable function of its id."""
    digest = hashlib.sha1(document_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < percent * 100


def split_held_out(docs: Sequence[Document], percent: float) -> tuple[list[Document], list[Document]]:
    """(training documents, held-out documents); at least one held-out document when there are two."""
    if not 0 <= percent < 100:
        raise ConfigError(f"held-out percent must be in [0, 100), got {percent}")
    train = [d for d in docs if not is_held_out(d.document_id or d.id, percent)]
    held = [d for d in docs if is_held_out(d.document_id or d.id, percent)]
    if percent > 0 and not held and len(train) > 1:
        held = [train.pop()]
    return train, held


def _pieces(tokenizer: Any, segments: list[str]) -> list[tuple[list[int], list[int]]]:
    """(ids, word start flags) of each segment; a flag is 1 on the first piece of each word."""
    if not segments:
        return []
    enc = tokenizer(
        segments, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False, verbose=False
    )
    out = []
    for i, ids in enumerate(enc["input_ids"]):
        words = enc.word_ids(i)
        starts = [1 if k == 0 or words[k] != words[k - 1] else 0 for k in range(len(ids))]
        out.append((list(ids), starts))
    return out


def pack_documents(docs: Iterable[Document], tokenizer: Any, max_length: int) -> list[dict[str, list[int]]]:
    """Features `{input_ids, word_start}` packed from consecutive segments of each document."""
    if max_length < 8:
        raise ConfigError(f"max_length must be at least 8 for pretraining, got {max_length}")
    budget = max_length - 2
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    features: list[dict[str, list[int]]] = []

    def emit(ids: list[int], starts: list[int]) -> None:
        if ids:
            starts = [1, *starts[1:]] if starts else starts  # a piece cut from its word starts one
            features.append({"input_ids": [cls_id, *ids, sep_id], "word_start": [0, *starts, 0]})

    for doc in docs:
        ids: list[int] = []
        starts: list[int] = []
        for seg_ids, seg_starts in _pieces(tokenizer, document_segments(doc)):
            if len(ids) + len(seg_ids) > budget:
                emit(ids, starts)
                ids, starts = [], []
            while len(seg_ids) > budget:
                emit(seg_ids[:budget], seg_starts[:budget])
                seg_ids, seg_starts = seg_ids[budget:], seg_starts[budget:]
            ids += seg_ids
            starts += seg_starts
        emit(ids, starts)
    return features


@dataclass(frozen=True)
class MaskingSpec:
    """What masking needs to know of the vocabulary."""

    mask_id: int
    pad_id: int
    first_ordinary_id: int  # random replacements are drawn from [first_ordinary_id, vocab_size)
    vocab_size: int
    probability: float = 0.15

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, probability: float = 0.15) -> MaskingSpec:
        if not 0 < probability < 1:
            raise ConfigError(f"mask probability must be in (0, 1), got {probability}")
        special = [i for i in tokenizer.all_special_ids if i is not None]
        return cls(tokenizer.mask_token_id, tokenizer.pad_token_id, max(special) + 1, len(tokenizer), probability)


def mask_batch(
    input_ids: torch.Tensor, word_start: torch.Tensor, spec: MaskingSpec, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels) for a padded batch; labels are -100 except on masked pieces.

    Word ids come from the word-start flags (pieces after a start belong to its word; [CLS],
    [SEP] and padding, flagged 0 before any start, belong to none). Every row gets at least one
    masked word.
    """
    starts = word_start.bool()
    word_of = starts.long().cumsum(1) - 1  # -1 before the first word
    specials = (input_ids == spec.pad_id) | (word_of < 0)
    specials |= input_ids < spec.first_ordinary_id  # [SEP] etc. after the last word
    n_words = int(word_of.max()) + 1 if word_of.numel() else 0
    if n_words == 0:
        return input_ids.clone(), torch.full_like(input_ids, IGNORE)
    draw = torch.rand(input_ids.shape[0], n_words, generator=generator)
    words_per_row = starts.sum(1)
    valid_word = torch.arange(n_words)[None, :] < words_per_row[:, None]
    picked = (draw < spec.probability) & valid_word
    empty = (~picked.any(1)) & (words_per_row > 0)
    if empty.any():  # the word with the smallest draw, so the choice stays uniform
        fallback = draw.masked_fill(~valid_word, 2.0).argmin(1)
        picked[empty, fallback[empty]] = True
    chosen = picked.gather(1, word_of.clamp(min=0)) & ~specials
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    action = torch.rand(input_ids.shape, generator=generator)
    randoms = torch.randint(spec.first_ordinary_id, spec.vocab_size, input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (action < 0.8)] = spec.mask_id
    swap = chosen & (action >= 0.8) & (action < 0.9)
    masked[swap] = randoms[swap]
    return masked, labels


class MaskingCollator:
    """Pad features to the batch's longest and mask them anew on every call."""

    def __init__(self, spec: MaskingSpec) -> None:
        self.spec = spec
        self.pad = PaddingCollator(spec.pad_id)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.pad(features)
        word_start = batch.pop("word_start")
        batch["input_ids"], batch["labels"] = mask_batch(batch["input_ids"], word_start, self.spec)
        batch.setdefault("attention_mask", (batch["input_ids"] != self.spec.pad_id).long())
        return batch


def fixed_masked_batches(
    features: Sequence[Mapping[str, Any]], spec: MaskingSpec, batch_size: int, seed: int = 1234
) -> list[dict[str, torch.Tensor]]:
    """The held-out features, batched and masked once with `seed` (the same masks at every evaluation)."""
    generator = torch.Generator().manual_seed(seed)
    pad = PaddingCollator(spec.pad_id)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    batches = []
    for start in range(0, len(order), batch_size):
        batch = pad([features[i] for i in order[start : start + batch_size]])
        word_start = batch.pop("word_start")
        batch["input_ids"], batch["labels"] = mask_batch(batch["input_ids"], word_start, spec, generator)
        batch.setdefault("attention_mask", (batch["input_ids"] != spec.pad_id).long())
        batches.append(batch)
    return batches


def mlm_metrics(model: torch.nn.Module, batches: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """Loss (mean over masked pieces), accuracy and perplexity of `model` on masked batches."""
    device = next(model.parameters()).device
    total_loss, correct, count = 0.0, 0, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        targets = batch["labels"][batch["labels"] != IGNORE]
        n = int(targets.numel())
        total_loss += float(out.loss) * n
        correct += int((out.logits.argmax(-1) == targets).sum())
        count += n
    if count == 0:
        raise ConfigError("the held-out text has no masked pieces to score")
    loss = total_loss / count
    return {"mlm_loss": loss, "mlm_accuracy": correct / count, "perplexity": float(torch.tensor(loss).exp())}


__all__ = [
    "MaskingCollator",
    "MaskingSpec",
    "document_segments",
    "fixed_masked_batches",
    "is_held_out",
    "mask_batch",
    "mlm_metrics",
    "pack_documents",
    "split_held_out",
]
