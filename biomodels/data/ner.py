"""NER examples from Documents, word-window features for a fast tokenizer, and the way back.

Path: `ner_examples` (Documents with `sentences` and `tokens` -> one `NerExample` per sentence with
IOB2 word tags) -> `tokenize_ner` (overlapping word windows, first-subword labels) -> model ->
`merge_ner_predictions` (one tag per word) -> `decode_entities` (character spans).

Rules for entities that IOB2 cannot express (counted in `NerConversionStats` and logged):

- Discontinuous entity: `discontinuous="first"` (default) keeps its first fragment in text order;
  `"outer"` takes the outer span from the first fragment's start to the last fragment's end.
- Boundaries inside a token are snapped outwards to the boundaries of the tokens the entity touches
  (`snapped`). An entity touching no token (only whitespace) is dropped (`no_token`); one whose span
  crosses a sentence end is dropped (`crossing_sentence`), since half a mention is a wrong label.
- Overlapping entities (after snapping, at token level): the longest (in tokens) is kept, ties
  going to the earlier start and then to document order; the others are dropped (`overlap_dropped`).
  An exact duplicate (same tokens, same type) is dropped silently (`duplicates`).

Windows (`tokenize_ner`): a sentence whose subwords do not fit `max_length` is split into windows
of whole words that overlap by about `stride` subwords (at least one word), never truncated, so every word is in at
least one window. Each feature records `_example_index`, `_word_ids` (word index in the example per
position, None for special tokens) and `_owned_words` [start, end): for a word in several windows
the window where it lies farthest from an edge (the centre-most) answers for it; ties go to the
earlier window. Labels are given to the first subword of every word of the window (-100 elsewhere),
so training sees overlap words in both windows; merging reads only the owning window.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from corpora.errors import ConfigError, InputError, ModelError
from corpora.schema import Document

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class NerExample:
    """One sentence: its words, their character offsets in the document text, and IOB2 tags."""

    id: str
    document_id: str
    words: list[str]
    offsets: list[tuple[int, int]]
    tags: list[str] | None = None


# what each NerConversionStats count means, in the words of the training log
PROBLEM_WORDS = {
    "discontinuous": "discontinuous (tagged by their first or outer span, --discontinuous)",
    "snapped": "with a boundary inside a token (widened to whole tokens)",
    "no_token": "over whitespace only (dropped)",
    "crossing_sentence": "crossing a sentence boundary (dropped: half a mention is a wrong label)",
    "overlap_dropped": "overlapping a longer entity (dropped: IOB tags hold one entity per token)",
    "duplicates": "exact duplicates (kept once)",
    "tokens_outside_sentences": "tokens outside every sentence",
}


@dataclass
class NerConversionStats:
    entities: int = 0
    discontinuous: int = 0
    snapped: int = 0
    no_token: int = 0
    crossing_sentence: int = 0
    overlap_dropped: int = 0
    duplicates: int = 0
    tokens_outside_sentences: int = 0
    dropped_ids: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, int]:
        keys = (
            "discontinuous",
            "snapped",
            "no_token",
            "crossing_sentence",
            "overlap_dropped",
            "duplicates",
            "tokens_outside_sentences",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k)}


# ----------------------------------------------------------------------------- Documents -> examples


def ner_examples(docs: Iterable[Document], *, discontinuous: Literal["first", "outer"] = "first") -> list[NerExample]:
    """One NerExample per sentence of each Document (see the module docstring for the rules)."""
    examples, stats = convert_documents(docs, discontinuous=discontinuous)
    if stats.problems():
        log.warning(
            "turning %d entities into token tags: %s",
            stats.entities,
            "; ".join(f"{v} {PROBLEM_WORDS[k]}" for k, v in stats.problems().items()),
        )
    return examples


def convert_documents(
    docs: Iterable[Document], *, discontinuous: Literal["first", "outer"] = "first"
) -> tuple[list[NerExample], NerConversionStats]:
    """`ner_examples` plus the counts of what the IOB2 rules changed or dropped."""
    if discontinuous not in ("first", "outer"):
        raise ConfigError(f"discontinuous must be 'first' or 'outer', not {discontinuous!r}")
    stats = NerConversionStats()
    examples: list[NerExample] = []
    for doc in docs:
        examples.extend(_document_examples(doc, discontinuous, stats))
    return examples, stats


def _document_examples(doc: Document, discontinuous: str, stats: NerConversionStats) -> list[NerExample]:
    if not doc.tokens:
        raise InputError(
            doc.source.path or doc.id,
            "document has no tokens; run preprocessing (or read a CoNLL file) first",
            record=doc.id,
        )
    text = doc.text
    sentences = sorted(doc.sentences, key=lambda s: s.start)
    if not sentences:
        raise InputError(doc.source.path or doc.id, "document has no sentences; run preprocessing first", record=doc.id)
    tokens = sorted((t for t in doc.tokens if t.end > t.start), key=lambda t: t.start)
    # assign tokens to the sentence holding their start
    sent_tokens: list[list[tuple[int, int]]] = [[] for _ in sentences]
    si = 0
    for t in tokens:
        while si < len(sentences) and sentences[si].end <= t.start:
            si += 1
        if si < len(sentences) and sentences[si].start <= t.start:
            sent_tokens[si].append((t.start, t.end))
        else:
            stats.tokens_outside_sentences += 1
    spans = _entity_spans(doc, discontinuous, stats)
    tags_per_sentence: list[list[str]] = [["O"] * len(toks) for toks in sent_tokens]
    candidates: list[tuple[int, int, int, int, str, str]] = []  # (sentence, first tok, end tok, order, type, id)
    for order, (start, end, etype, eid) in enumerate(spans):
        k = _sentence_of(sentences, start)
        if k is None or not sent_tokens[k]:
            stats.no_token += 1
            stats.dropped_ids.append(f"{doc.id}:{eid}")
            continue
        if end > sentences[k].end:
            stats.crossing_sentence += 1
            stats.dropped_ids.append(f"{doc.id}:{eid}")
            continue
        toks = sent_tokens[k]
        covered = [i for i, (ts, te) in enumerate(toks) if te > start and ts < end]
        if not covered:
            stats.no_token += 1
            stats.dropped_ids.append(f"{doc.id}:{eid}")
            continue
        first, last = covered[0], covered[-1]
        if (toks[first][0], toks[last][1]) != (start, end):
            stats.snapped += 1
        candidates.append((k, first, last + 1, order, etype, eid))
    candidates.sort(key=lambda c: (-(c[2] - c[1]), c[1], c[3]))
    taken: list[dict[int, tuple[str, int, int]]] = [dict() for _ in sentences]
    for k, first, end, _order, etype, eid in candidates:
        occupied = [taken[k].get(i) for i in range(first, end)]
        if any(occupied):
            if any(o == (etype, first, end) for o in occupied):
                stats.duplicates += 1
            else:
                stats.overlap_dropped += 1
                stats.dropped_ids.append(f"{doc.id}:{eid}")
            continue
        for i in range(first, end):
            taken[k][i] = (etype, first, end)
        tags_per_sentence[k][first] = f"B-{etype}"
        for i in range(first + 1, end):
            tags_per_sentence[k][i] = f"I-{etype}"
    out = []
    for k, toks in enumerate(sent_tokens):
        if not toks:
            continue
        out.append(
            NerExample(
                id=f"{doc.id}:s{k}",
                document_id=doc.document_id,
                words=[text[s:e] for s, e in toks],
                offsets=list(toks),
                tags=tags_per_sentence[k],
            )
        )
    return out


def _entity_spans(doc: Document, discontinuous: str, stats: NerConversionStats) -> list[tuple[int, int, str, str]]:
    spans = []
    for ent in doc.entities:
        stats.entities += 1
        frags = sorted((int(s), int(e)) for s, e in ent.offsets)
        if not frags:
            continue
        if len(frags) > 1:
            stats.discontinuous += 1
            start, end = (frags[0][0], frags[-1][1]) if discontinuous == "outer" else frags[0]
        else:
            start, end = frags[0]
        spans.append((start, end, ent.type, ent.id))
    return spans


def _sentence_of(sentences: Sequence[Any], pos: int) -> int | None:
    for k, s in enumerate(sentences):
        if s.start <= pos < s.end:
            return k
    return None


def build_label_map(examples: Iterable[NerExample]) -> list[str]:
    """Labels in a stable order: "O", then B- and I- of each entity type in sorted type order."""
    types: set[str] = set()
    for ex in examples:
        for tag in ex.tags or ():
            if tag != "O":
                if tag[:2] not in ("B-", "I-") or len(tag) < 3:
                    raise ConfigError(f"example {ex.id}: tag {tag!r} is not IOB2")
                types.add(tag[2:])
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in ("B", "I")]


# ------------------------------------------------------------------------------ examples -> features


def special_token_layout(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a single-sequence input gets before and after its tokens ([CLS] and [SEP] for BERT)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return list(full[:i]), list(full[i + len(bare) :])
    raise ModelError(f"cannot locate the text tokens inside the tokenizer's special-token layout {full}")


def _require_fast(tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("a fast (Rust `tokenizers`) tokenizer is required: word ids and offsets come from it")


def word_pieces(tokenizer: Any, words: Sequence[str]) -> list[list[int]]:
    """Subword ids per word; a word the tokenizer drops entirely (e.g. a zero-width space) becomes [UNK]
    so that every word keeps a first subword to carry its label."""
    pieces: list[list[int]] = [[] for _ in words]
    if words:
        enc = tokenizer(list(words), is_split_into_words=True, add_special_tokens=False)
        for tok_id, w in zip(enc["input_ids"], enc.word_ids()):
            if w is not None:
                pieces[w].append(tok_id)
    for p in pieces:
        if not p:
            p.append(tokenizer.unk_token_id)
    return pieces


def plan_windows(lengths: Sequence[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Word windows [start, end) whose subword total fits `budget`, consecutive ones overlapping by
    the trailing words that fit in `stride` subwords (at least one word when `stride` > 0, the
    window has more than one and the next window can still reach a new word); every word lies in
    some window. A single word longer than the budget
    gets a window of its own (its subwords are cut in `tokenize_ner`, its first subword is kept)."""
    if budget < 1:
        raise ConfigError(f"max_length leaves no room for tokens (budget {budget})")
    n = len(lengths)
    windows: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end, used = start, 0
        while end < n and used + lengths[end] <= budget:
            used += lengths[end]
            end += 1
        if end == start:
            end = start + 1
        windows.append((start, end))
        if end >= n:
            break
        nxt, back = end, 0
        while (
            nxt - 1 > start
            and back + lengths[nxt - 1] + lengths[end] <= budget  # the next window must reach past `end`
            and (back + lengths[nxt - 1] <= stride or (stride > 0 and nxt == end))
        ):
            nxt -= 1
            back += lengths[nxt]
        start = nxt
    return windows


def assign_owners(lengths: Sequence[int], windows: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Per window, the words [start, end) it answers for: each word goes to the window where its
    distance (in subwords) to the nearer window edge is largest; ties go to the earlier window."""
    cum = np.concatenate([[0], np.cumsum(lengths)]) if len(lengths) else np.zeros(1, dtype=int)
    owner = [-1] * len(lengths)
    best = [-1] * len(lengths)
    for k, (a, b) in enumerate(windows):
        for w in range(a, b):
            score = min(int(cum[w] - cum[a]), int(cum[b] - cum[w + 1]))
            if score > best[w]:
                best[w], owner[w] = score, k
    owned: list[tuple[int, int]] = []
    for k, (a, b) in enumerate(windows):
        mine = [w for w in range(a, b) if owner[w] == k]
        if mine and mine != list(range(mine[0], mine[-1] + 1)):
            raise AssertionError(f"window {k} owns a non-contiguous set of words")
        owned.append((mine[0], mine[-1] + 1) if mine else (a, a))
    return owned


def tokenize_ner(
    examples: Sequence[NerExample],
    tokenizer: Any,
    label2id: Mapping[str, int] | None,
    max_length: int = 128,
    stride: int = 32,
) -> list[dict[str, Any]]:
    """Features for token classification; see the module docstring for windows and labels.

    `label2id=None` (or examples without tags) gives features without `labels`, for inference.
    """
    _require_fast(tokenizer)
    prefix, suffix = special_token_layout(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if stride < 0 or stride >= budget:
        raise ConfigError(
            f"stride {stride} must be at least 0 and below the {budget} subwords a window holds "
            f"(max_length {max_length})"
        )
    features: list[dict[str, Any]] = []
    for ei, ex in enumerate(examples):
        if ex.tags is not None and len(ex.tags) != len(ex.words):
            raise ConfigError(f"example {ex.id}: {len(ex.words)} words but {len(ex.tags)} tags")
        pieces = word_pieces(tokenizer, ex.words)
        lengths = [min(len(p), budget) for p in pieces]
        windows = plan_windows(lengths, budget, stride)
        owned = assign_owners(lengths, windows)
        with_labels = label2id is not None and ex.tags is not None
        for (a, b), own in zip(windows, owned):
            ids = list(prefix)
            word_ids: list[int | None] = [None] * len(prefix)
            labels = [IGNORE_INDEX] * len(prefix)
            for w in range(a, b):
                p = pieces[w][: lengths[w]]
                ids.extend(p)
                word_ids.extend([w] * len(p))
                if with_labels:
                    tag = ex.tags[w]  # type: ignore[index]
                    if tag not in label2id:  # type: ignore[operator]
                        raise ConfigError(f"example {ex.id}: tag {tag!r} is not in the label map")
                    labels.append(label2id[tag])  # type: ignore[index]
                    labels.extend([IGNORE_INDEX] * (len(p) - 1))
            ids.extend(suffix)
            word_ids.extend([None] * len(suffix))
            feat: dict[str, Any] = {
                "input_ids": ids,
                "attention_mask": [1] * len(ids),
                "token_type_ids": [0] * len(ids),
                "_example_index": ei,
                "_word_ids": word_ids,
                "_window": (a, b),
                "_owned_words": own,
            }
            if with_labels:
                feat["labels"] = labels + [IGNORE_INDEX] * len(suffix)
            features.append(feat)
    return features


# ---------------------------------------------------------------------------- predictions -> words


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def merge_word_scores(
    features: Sequence[Mapping[str, Any]], logits: Any, examples: Sequence[NerExample]
) -> list[np.ndarray]:
    """Per example, a [n_words, n_labels] array of the first-subword logits from the owning window.

    `logits` is one array per feature ([seq_len, n_labels], or a padded [n_features, seq_len,
    n_labels] array); positions past a feature's length are ignored.
    """
    if len(logits) != len(features):
        raise ValueError(f"{len(logits)} prediction rows for {len(features)} features")
    out: list[np.ndarray | None] = [None] * len(examples)
    filled: list[np.ndarray | None] = [None] * len(examples)
    for feat, row in zip(features, logits):
        row = _as_numpy(row)
        ei = feat["_example_index"]
        n_words = len(examples[ei].words)
        if out[ei] is None:
            out[ei] = np.zeros((n_words, row.shape[-1]), dtype=np.float32)
            filled[ei] = np.zeros(n_words, dtype=bool)
        a, b = feat["_owned_words"]
        seen: set[int] = set()
        for pos, w in enumerate(feat["_word_ids"]):
            if w is None or w in seen or not a <= w < b:
                continue
            seen.add(w)
            out[ei][w] = row[pos]  # type: ignore[index]
            filled[ei][w] = True  # type: ignore[index]
    result = []
    for ei, ex in enumerate(examples):
        if out[ei] is None:
            if ex.words:
                raise ValueError(f"example {ex.id} has no feature")
            result.append(np.zeros((0, 0), dtype=np.float32))
            continue
        if not filled[ei].all():  # type: ignore[union-attr]
            missing = int((~filled[ei]).sum())  # type: ignore[operator]
            raise ValueError(f"example {ex.id}: {missing} words have no prediction (features do not cover it)")
        result.append(out[ei])  # type: ignore[arg-type]
    return result


def merge_ner_predictions(
    features: Sequence[Mapping[str, Any]],
    logits_or_label_ids: Any,
    examples: Sequence[NerExample],
    labels: Sequence[str] | Mapping[int, str],
    *,
    repair: bool = True,
) -> list[list[str]]:
    """One tag per word per example. Rows are logits ([seq, n_labels], argmax taken) or label ids
    ([seq]); each word reads its first subword in its owning window. `repair` applies `iob2_repair`."""
    rows = [_as_numpy(r) for r in logits_or_label_ids]
    if rows and rows[0].ndim == 1 and np.issubdtype(rows[0].dtype, np.integer):
        rows = [r[:, None] for r in rows]
        ids_per_example = [
            m[:, 0].astype(int) if m.size else np.zeros(0, dtype=int)
            for m in merge_word_scores(features, rows, examples)
        ]
    else:
        ids_per_example = [
            m.argmax(-1) if m.size else np.zeros(0, dtype=int) for m in merge_word_scores(features, rows, examples)
        ]
    out = []
    for ids in ids_per_example:
        tags = [labels[int(i)] for i in ids]
        out.append(iob2_repair(tags) if repair else tags)
    return out


def iob2_repair(tags: Sequence[str]) -> list[str]:
    """Make a tag sequence valid IOB2: an `I-X` that does not continue a `B-X`/`I-X` becomes `B-X`
    (after `O`, at the start, or after another type), so the span is kept as an entity rather than
    lost, which is what a model that got only the first tag wrong most likely meant."""
    out = list(tags)
    for i, tag in enumerate(out):
        if tag.startswith("I-"):
            prev = out[i - 1] if i else "O"
            if prev[2:] != tag[2:] or prev == "O":
                out[i] = "B-" + tag[2:]
    return out


def decode_entities(
    words_offsets: Sequence[tuple[int, int]],
    tags: Sequence[str],
    scores: Sequence[float] | None = None,
) -> list[tuple[int, int, str, float | None]]:
    """Character spans (start, end, type, score) of the entities of one sentence's IOB2 tags.

    Tags are repaired first (`iob2_repair`). The span runs from the first word's start to the last
    word's end; the score is the mean of the words' scores (None without scores).
    """
    if len(words_offsets) != len(tags) or (scores is not None and len(scores) != len(tags)):
        raise ValueError(
            f"{len(words_offsets)} word offsets, {len(tags)} tags, {None if scores is None else len(scores)} scores"
        )
    tags = iob2_repair(tags)
    entities = []
    i, n = 0, len(tags)
    while i < n:
        if tags[i].startswith("B-"):
            etype = tags[i][2:]
            j = i + 1
            while j < n and tags[j] == "I-" + etype:
                j += 1
            score = float(np.mean(scores[i:j])) if scores is not None else None
            entities.append((int(words_offsets[i][0]), int(words_offsets[j - 1][1]), etype, score))
            i = j
        else:
            i += 1
    return entities


__all__ = [
    "NerExample",
    "NerConversionStats",
    "ner_examples",
    "convert_documents",
    "build_label_map",
    "tokenize_ner",
    "merge_word_scores",
    "merge_ner_predictions",
    "iob2_repair",
    "decode_entities",
    "plan_windows",
    "assign_owners",
]
