"""Fast WordPiece tokenizers built from a model's `vocab.txt`, with casing stated, never guessed.

The tokenizer is assembled from the `tokenizers` pieces BERT uses (BertNormalizer, BertPreTokenizer,
WordPiece with `##` continuation, `[CLS] A [SEP] B [SEP]` template) and wrapped in
`BertTokenizerFast`, so `return_offsets_mapping=True` works for aligning word pieces to the
document's character offsets. Accents follow BERT: stripped when lower-casing, kept otherwise
(`strip_accents=None`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from corpora.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
METADATA_FILE = "biomed.json"


def read_vocab(path: str | Path) -> list[str]:
    """Tokens of a BERT vocab.txt, one per line, in id order; checks the special tokens are there."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: vocabulary file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{p}: vocabulary is not UTF-8 ({exc})") from exc
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    tokens = [t.rstrip("\r") for t in tokens]
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise ModelError(f"{p}: vocabulary lacks the BERT special tokens {', '.join(missing)}")
    repeats = len(tokens) - len(set(tokens))
    if repeats:  # harmless (the later id is never produced) but worth knowing
        log.warning("%s: %d tokens appear more than once; ids keep their line numbers", p, repeats)
    return tokens


def build_tokenizer(vocab_file: str | Path, lower_case: bool, model_max_length: int = 512):
    """BertTokenizerFast from a vocab.txt with explicit casing (BERT rules for accents)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    tokens = read_vocab(vocab_file)
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        vocab.setdefault(tok, i)
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lower_case
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=backend,
        do_lower_case=lower_case,
        strip_accents=None,
        tokenize_chinese_chars=True,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def recorded_lower_case(model_dir: Path) -> bool | None:
    """Casing recorded in a model folder: our biomed.json first, then tokenizer_config.json."""
    meta = model_dir / METADATA_FILE
    if meta.is_file():
        value = json.loads(meta.read_text(encoding="utf-8")).get("lower_case")
        if isinstance(value, bool):
            return value
    tok_cfg = model_dir / "tokenizer_config.json"
    if tok_cfg.is_file():
        value = json.loads(tok_cfg.read_text(encoding="utf-8")).get("do_lower_case")
        if isinstance(value, bool):
            return value
    return None


def _max_positions(model_dir: Path) -> int | None:
    cfg = model_dir / "config.json"
    if cfg.is_file():
        value = json.loads(cfg.read_text(encoding="utf-8")).get("max_position_embeddings")
        return int(value) if value else None
    return None


def load_tokenizer(model_dir_or_vocab: str | Path, lower_case: bool | None = None, model_max_length: int | None = None):
    """Tokenizer of a model folder (its vocab.txt) or of a vocab.txt file.

    `lower_case=None` takes the casing recorded in the folder (biomed.json or tokenizer_config.json);
    a bare vocab file, or a folder that records nothing, needs it stated. An explicit value that
    contradicts the folder's record is used, with a warning.
    """
    p = Path(model_dir_or_vocab).expanduser()
    if p.is_dir():
        vocab = p / "vocab.txt"
        if not vocab.is_file():
            raise ModelError(f"{p}: no vocab.txt in this model folder; put the model's vocab.txt there")
        recorded = recorded_lower_case(p)
        max_len = model_max_length or _max_positions(p) or 512
    else:
        vocab, recorded, max_len = p, None, model_max_length or 512
    if lower_case is None:
        if recorded is None:
            raise ConfigError(
                f"{p}: cannot tell whether this vocabulary is lower-cased; pass lower_case "
                "(the CLI's --lowercase / a cased or uncased preset)"
            )
        lower_case = recorded
    elif recorded is not None and recorded != lower_case:
        log.warning(
            "%s records lower_case=%s but lower_case=%s was asked for; using %s", p, recorded, lower_case, lower_case
        )
    return build_tokenizer(vocab, lower_case, max_len)


__all__ = ["SPECIAL_TOKENS", "build_tokenizer", "load_tokenizer", "read_vocab", "recorded_lower_case"]
