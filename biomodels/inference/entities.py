"""NER prediction over sentences given as word lists (the words of scispaCy's tokens).

Features follow `biomodels.data.ner.tokenize_ner` exactly (same word pieces, same windows of whole
words overlapping by about `stride` subwords, same owning window per word), but all sentences are
tokenized in one call of the Rust tokenizer, and only the first-subword positions of owned words are
read back from the logits. A word's prediction is its first subword's label in its owning window.

Scores: each word gets the softmax probability of its predicted label (the maximum probability); an
entity's score is the mean of its words' scores (as in `ner_data.decode_entities`). Invalid IOB2 (an
`I-X` that does not continue an `X`) is repaired by `iob2_repair` before decoding: the `I-X` starts a
new `X` entity.

Tested in `tests/biomodels/inference/test_engine.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from biomodels.data.ner import assign_owners, iob2_repair, plan_windows, special_token_layout
from biomodels.inference.runtime import TaskModel, run_batches
from corpora.errors import ConfigError, ModelError

DEFAULT_STRIDE = 32

# (first word, end word, entity type, score): word indices into the sentence, end exclusive
WordEntity = tuple[int, int, str, float]


@dataclass
class _Feature:
    sentence: int
    input_ids: list[int]
    positions: np.ndarray  # first-subword position of each owned word
    words: np.ndarray  # the owned words' indices in the sentence


class NerPredictor:
    """Token-classification model + tokenizer + label map, predicting entities over word lists."""

    def __init__(self, task_model: TaskModel, batch_tokens: int, stride: int | None = None) -> None:
        labels = task_model.labels
        for tag in labels:
            if tag != "O" and (tag[:2] not in ("B-", "I-") or len(tag) < 3):
                raise ModelError(f"{task_model.path}: label {tag!r} is not an IOB2 tag; this is not an NER model")
        self.task_model = task_model
        self.labels = labels
        self.entity_types = sorted({t[2:] for t in labels if t != "O"})
        self.batch_tokens = batch_tokens
        self.max_length = task_model.max_length
        meta_stride = task_model.meta.get("stride")
        self.stride = int(stride if stride is not None else meta_stride if meta_stride is not None else DEFAULT_STRIDE)
        self.prefix, self.suffix = special_token_layout(task_model.tokenizer)
        self.budget = self.max_length - len(self.prefix) - len(self.suffix)
        if self.stride < 0 or self.stride >= self.budget:
            raise ConfigError(
                f"{task_model.path}: stride {self.stride} must be in [0, {self.budget}) "
                f"for max_length {self.max_length}"
            )
        self.unk_id = task_model.tokenizer.unk_token_id

    @property
    def annotator(self) -> str:
        return self.task_model.annotator

    # ------------------------------------------------------------------------------------ features

    def features(self, sentences: Sequence[Sequence[str]]) -> list[_Feature]:
        """Windows of every non-empty sentence (see the module docstring)."""
        backend = self.task_model.tokenizer.backend_tokenizer
        todo = [i for i, words in enumerate(sentences) if len(words)]
        encodings = backend.encode_batch(
            [list(sentences[i]) for i in todo], is_pretokenized=True, add_special_tokens=False
        )
        out: list[_Feature] = []
        for si, enc in zip(todo, encodings):
            out.extend(self._sentence_features(si, len(sentences[si]), enc.ids, enc.word_ids))
        return out

    def _sentence_features(self, si: int, n_words: int, ids: list[int], word_ids: list[int | None]) -> list[_Feature]:
        try:  # without special tokens every piece belongs to a word
            wid = np.asarray(word_ids, dtype=np.int64)
        except TypeError:
            wid = np.fromiter((-1 if w is None else w for w in word_ids), dtype=np.int64, count=len(word_ids))
        counts = np.bincount(wid[wid >= 0], minlength=n_words) if len(wid) else np.zeros(n_words, dtype=np.int64)
        total = int(counts.sum())
        if total <= self.budget and (n_words == 0 or counts.min() > 0):  # the usual case: one window, no [UNK] to add
            positions = len(self.prefix) + np.cumsum(counts) - counts
            seq = self.prefix + list(ids) + self.suffix
            return [_Feature(si, seq, positions, np.arange(n_words, dtype=np.int64))]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # a word the tokenizer drops entirely becomes [UNK], as in ner_data.word_pieces
        lengths = np.minimum(np.maximum(counts, 1), self.budget)
        if int(lengths.sum()) <= self.budget:
            windows, owned = [(0, n_words)], [(0, n_words)]
        else:
            lens = lengths.tolist()
            windows = plan_windows(lens, self.budget, self.stride)
            owned = assign_owners(lens, windows)
        feats = []
        for (a, b), (oa, ob) in zip(windows, owned):
            seq = list(self.prefix)
            positions = np.empty(ob - oa, dtype=np.int64)
            for w in range(a, b):
                if oa <= w < ob:
                    positions[w - oa] = len(seq)
                if counts[w]:
                    seq.extend(ids[starts[w] : starts[w] + lengths[w]])
                else:
                    seq.append(self.unk_id)
            seq.extend(self.suffix)
            feats.append(_Feature(si, seq, positions, np.arange(oa, ob, dtype=np.int64)))
        return feats

    # ---------------------------------------------------------------------------------- prediction

    def word_predictions(self, sentences: Sequence[Sequence[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per sentence: (label id per word, probability of that label per word)."""
        feats = self.features(sentences)
        label_ids = [np.zeros(len(words), dtype=np.int64) for words in sentences]
        probs = [np.zeros(len(words), dtype=np.float32) for words in sentences]
        device = self.task_model.device

        def consume(rows: list[int], logits: torch.Tensor) -> None:
            row_index = np.concatenate(
                [np.full(len(feats[r].positions), k, dtype=np.int64) for k, r in enumerate(rows)]
            )
            pos_index = np.concatenate([feats[r].positions for r in rows])
            picked = logits[torch.from_numpy(row_index).to(device), torch.from_numpy(pos_index).to(device)]
            p, ids = torch.softmax(picked, dim=-1).max(dim=-1)
            p_np, ids_np = p.cpu().numpy(), ids.cpu().numpy()
            at = 0
            for r in rows:
                f = feats[r]
                n = len(f.words)
                label_ids[f.sentence][f.words] = ids_np[at : at + n]
                probs[f.sentence][f.words] = p_np[at : at + n]
                at += n

        if feats:
            run_batches(self.task_model, [f.input_ids for f in feats], self.batch_tokens, consume)
        return list(zip(label_ids, probs))

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[WordEntity]]:
        """Entities of each sentence as word-index spans with scores (see the module docstring)."""
        labels = self.labels
        return [
            decode_words([labels[i] for i in ids.tolist()], probs.tolist())
            for ids, probs in self.word_predictions(sentences)
        ]


def decode_words(tags: Sequence[str], scores: Sequence[float]) -> list[WordEntity]:
    """`ner_data.decode_entities` over word indices: IOB2-repaired spans, score = mean word score."""
    tags = iob2_repair(tags)
    out: list[WordEntity] = []
    i, n = 0, len(tags)
    while i < n:
        tag = tags[i]
        if tag[0] == "B":
            inside = "I" + tag[1:]
            j = i + 1
            while j < n and tags[j] == inside:
                j += 1
            out.append((i, j, tag[2:], sum(scores[i:j]) / (j - i)))
            i = j
        else:
            i += 1
    return out


__all__ = ["DEFAULT_STRIDE", "NerPredictor", "WordEntity", "decode_words"]
