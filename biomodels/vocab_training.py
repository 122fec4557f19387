"""Train a BERT WordPiece vocabulary on a corpus (the Bio-30k/50k vocabularies of BioMegatron are
such vocabularies trained on PubMed), writing a `vocab.txt` any of our tokenizers can load.

The normaliser and pre-tokeniser are BERT's (so the vocabulary matches how `build_tokenizer`
splits text), and the special tokens come first: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from biomodels.tokenization import METADATA_FILE, SPECIAL_TOKENS
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
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if size <= len(SPECIAL_TOKENS):
        raise ConfigError(f"vocabulary size {size} leaves no room beyond the {len(SPECIAL_TOKENS)} special tokens")
    counted = _Counting(texts)
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lower_case
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=size,
        min_frequency=min_frequency,
        limit_alphabet=limit_alphabet,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator(counted, trainer=trainer)
    if counted.texts == 0 or counted.chars == 0:
        raise EmptyInputError("<corpus>", "no text to train a vocabulary on")
    vocab = tokenizer.get_vocab()
    ordered = sorted(vocab, key=vocab.__getitem__)
    if tuple(ordered[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise RuntimeError(f"WordPiece trainer did not put the special tokens first: {ordered[:5]}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("".join(tok + "\n" for tok in ordered), encoding="utf-8")
    meta = {"kind": "wordpiece-vocab", "lower_case": lower_case, "vocab_size": len(ordered), "requested_size": size,
            "texts": counted.texts, "characters": counted.chars, "min_frequency": min_frequency}
    (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


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
