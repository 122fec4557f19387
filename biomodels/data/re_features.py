"""Relation-extraction features: marked examples to subword windows that hold both arguments.

Windows (`tokenize_re`): an input longer than `max_length` is cut to a window of subwords that holds
both arguments with their markers, centred on them and widened symmetrically, never splitting a word
at its edges when that can be avoided. When the two arguments themselves span more than the window,
the candidate gets no feature and a warning names it (`missing_candidates` lists them, so an
evaluation can count them as predicted negative rather than lose them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from biomodels.data.ner import special_token_layout
from biomodels.data.re_candidates import RelationCandidate
from biomodels.data.re_marking import DEFAULT_TYPE_ALIASES, MarkedExample, mark_candidate
from corpora.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


def tokenize_re(
    examples: Sequence[RelationCandidate | MarkedExample],
    tokenizer: Any,
    label2id: Mapping[str, int] | None,
    max_length: int = 256,
    style: str = "entity_markers",
    type_aliases: Mapping[str, str] = DEFAULT_TYPE_ALIASES,
) -> list[dict[str, Any]]:
    """One feature per example: `input_ids`, masks, `labels` (one int, when `label2id` is given and the
    example has a label) and bookkeeping `_candidate_index`, `_example_id`, `_offset_mapping`
    (character offsets into the marked text, None for specials), `_char_window`, `_arg1_token_index`,
    `_arg2_token_index` (first position of each argument). See the module docstring for windows."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("a fast (Rust `tokenizers`) tokenizer is required: offsets come from it")
    prefix, suffix = special_token_layout(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 2:
        raise ConfigError(f"max_length {max_length} leaves no room for text")
    features: list[dict[str, Any]] = []
    skipped: list[str] = []
    for ci, ex in enumerate(examples):
        marked = mark_candidate(ex, style, type_aliases) if isinstance(ex, RelationCandidate) else ex
        enc = tokenizer(marked.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets, word_ids = enc["input_ids"], enc["offset_mapping"], enc.word_ids()
        arg_tokens = [_token_range(offsets, span) for span in (marked.arg1_span, marked.arg2_span)]
        found = [r for r in arg_tokens if r is not None]
        if not found:
            skipped.append(marked.id)
            continue
        need_lo, need_hi = min(r[0] for r in found), max(r[1] for r in found)
        if need_hi - need_lo > budget:
            skipped.append(marked.id)
            continue
        lo, hi = _window(len(ids), need_lo, need_hi, budget, word_ids)
        feat: dict[str, Any] = {
            "input_ids": prefix + list(ids[lo:hi]) + suffix,
            "_candidate_index": ci,
            "_example_id": marked.id,
            "_offset_mapping": [None] * len(prefix) + [tuple(o) for o in offsets[lo:hi]] + [None] * len(suffix),
            "_char_window": (offsets[lo][0], offsets[hi - 1][1]) if hi > lo else (0, 0),
            "_arg1_token_index": arg_tokens[0][0] - lo + len(prefix) if arg_tokens[0] else None,
            "_arg2_token_index": arg_tokens[1][0] - lo + len(prefix) if arg_tokens[1] else None,
        }
        n = len(feat["input_ids"])
        feat["attention_mask"] = [1] * n
        feat["token_type_ids"] = [0] * n
        if label2id is not None and marked.label is not None:
            if marked.label not in label2id:
                raise ConfigError(
                    f"example {marked.id}: label {marked.label!r} is not in the label map ({', '.join(label2id)})"
                )
            feat["labels"] = label2id[marked.label]
        features.append(feat)
    if skipped:
        log.warning(
            "%d relation inputs got no feature (arguments farther apart than %d subwords, or not found): %s",
            len(skipped),
            budget,
            ", ".join(skipped[:20]),
        )
    return features


def missing_candidates(features: Sequence[Mapping[str, Any]], n_examples: int) -> list[int]:
    """Indices of examples that `tokenize_re` could not fit (to be counted as predicted negative)."""
    have = {f["_candidate_index"] for f in features}
    return [i for i in range(n_examples) if i not in have]


def _token_range(offsets: Sequence[tuple[int, int]], span: tuple[int, int] | None) -> tuple[int, int] | None:
    """[first, last + 1) of the tokens overlapping `span` (None if none does)."""
    if span is None:
        return None
    hit = [i for i, (s, e) in enumerate(offsets) if e > span[0] and s < span[1] and e > s]
    return (hit[0], hit[-1] + 1) if hit else None


def _window(n: int, need_lo: int, need_hi: int, budget: int, word_ids: Sequence[int | None]) -> tuple[int, int]:
    """A token window of at most `budget` holding [need_lo, need_hi), centred on it, edges moved
    inwards off the middle of a word when that keeps the needed tokens inside."""
    if n <= budget:
        return 0, n
    extra = budget - (need_hi - need_lo)
    left = min(need_lo, extra // 2)
    right = min(n - need_hi, extra - left)
    left = min(need_lo, extra - right)
    lo, hi = need_lo - left, need_hi + right
    while 0 < lo < need_lo and word_ids[lo] is not None and word_ids[lo] == word_ids[lo - 1]:
        lo += 1
    while need_hi < hi < n and word_ids[hi] is not None and word_ids[hi] == word_ids[hi - 1]:
        hi -= 1
    return lo, hi
