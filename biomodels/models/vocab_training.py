"""Train a BERT WordPiece vocabulary on a corpus (the Bio-30k/50k vocabularies of BioMegatron are
such vocabularies trained on PubMed), writing a `vocab.txt` any of our tokenizers can load.

The normaliser and pre-tokeniser are BERT's (so the vocabulary matches how `build_tokenizer`
splits text), and the special tokens come first: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.

Tested in `tests/biomodels/models/test_tokenization.py`.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from biomodels.models.tokenization import METADATA_FILE, SPECIAL_TOKENS
from corpora.errors import ConfigError, EmptyInputError


def train_wordpiece_vocab(
    texts: Iterable[str],
    size: int,
    lower_case: bool,
    out: Path,
    *,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
) -> Path:
    """Train a WordPiece vocabulary of at most `size` entries; write `out/vocab.txt` and return it.

    `out` is a folder (created); a `biomed.json` beside the vocabulary records its casing so
    `load_tokenizer(out)` needs no further flag. A corpus too small for `size` gives fewer entries.
    The result depends only on the texts and the arguments (see `_wordpiece_entries`).
    """
    from tokenizers import normalizers, pre_tokenizers

    if size <= len(SPECIAL_TOKENS):
        raise ConfigError(f"vocabulary size {size} leaves no room beyond the {len(SPECIAL_TOKENS)} special tokens")
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lower_case
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counted = _Counting(texts)
    words: Counter[str] = Counter()
    for text in counted:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    if counted.texts == 0 or counted.chars == 0 or not words:
        raise EmptyInputError("<corpus>", "no text to train a vocabulary on")
    ordered = _wordpiece_entries(words, size, min_frequency, limit_alphabet)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("".join(tok + "\n" for tok in ordered), encoding="utf-8")
    meta = {
        "kind": "wordpiece-vocab",
        "lower_case": lower_case,
        "vocab_size": len(ordered),
        "requested_size": size,
        "texts": counted.texts,
        "characters": counted.chars,
        "min_frequency": min_frequency,
    }
    (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


def _wordpiece_entries(words: Counter[str], size: int, min_frequency: int, limit_alphabet: int) -> list[str]:
    """The vocabulary: special tokens, the alphabet (word-initial and "##" forms), then merges.

    Why our own loop rather than `tokenizers`' WordPieceTrainer: that trainer breaks ties between
    equally frequent pairs in hash-map order, which Rust seeds at random per process, so the same
    corpus gave a different vocabulary (and a different scratch model) on every run. Here each step
    merges the most frequent adjacent pair of a word's pieces (at least `min_frequency`), ties
    going to the alphabetically first merged string, as BPE-style WordPiece trainers do. Characters
    outside the `limit_alphabet` most frequent are left out (they tokenize as [UNK]).
    """
    chars: Counter[str] = Counter()
    for word, n in words.items():
        for ch in word:
            chars[ch] += n
    alphabet = set(sorted(chars, key=lambda ch: (-chars[ch], ch))[:limit_alphabet])
    pieces: list[list[str]] = []
    counts: list[int] = []
    initial: set[str] = set()
    for word in sorted(words):
        symbols = [ch for ch in word if ch in alphabet]
        if symbols:
            pieces.append([symbols[0]] + ["##" + ch for ch in symbols[1:]])
            counts.append(words[word])
            initial.update(pieces[-1])
    vocab = list(SPECIAL_TOKENS) + sorted(initial - set(SPECIAL_TOKENS))
    if len(vocab) >= size:
        return vocab[:size]
    pair_counts: dict[tuple[str, str], int] = {}
    where: dict[tuple[str, str], set[int]] = {}
    for i, word in enumerate(pieces):
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + counts[i]
            where.setdefault(pair, set()).add(i)
    heap = [(-n, _merged(*pair), pair) for pair, n in pair_counts.items()]
    heapq.heapify(heap)
    known = set(vocab)
    while len(vocab) < size and heap:
        neg, merged, pair = heapq.heappop(heap)
        if pair_counts.get(pair) != -neg:
            continue  # a stale entry: the pair's count changed since it was pushed
        if -neg < min_frequency:
            break
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair, ())):
            old = pieces[i]
            new = _merge(old, pair, merged)
            for p in zip(old, old[1:]):
                pair_counts[p] -= counts[i]
                changed.add(p)
            for p in zip(new, new[1:]):
                pair_counts[p] = pair_counts.get(p, 0) + counts[i]
                changed.add(p)
            for p in set(zip(old, old[1:])) - set(zip(new, new[1:])):
                where.get(p, set()).discard(i)
            for p in zip(new, new[1:]):
                where.setdefault(p, set()).add(i)
            pieces[i] = new
        pair_counts.pop(pair, None)
        for p in sorted(changed - {pair}):
            if pair_counts.get(p, 0) > 0:
                heapq.heappush(heap, (-pair_counts[p], _merged(*p), p))
    return vocab


def _merged(left: str, right: str) -> str:
    """The piece that joining `left` and a continuation piece `right` ("##...") makes."""
    return left + right[2:]


def _merge(word: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


class _Counting:
    """Pass texts through while counting them (the trainer consumes a plain iterator)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = texts
        self.texts = 0
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            if not text:
                continue
            self.texts += 1
            self.chars += len(text)
            yield text


__all__ = ["train_wordpiece_vocab"]
