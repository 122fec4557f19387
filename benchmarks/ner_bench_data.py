"""NCBI-disease training sentences as word-piece NER features, for the training benchmarks.

Reads the CoNLL/IOB file of the full corpus from ../shared when it is there, else the bundled
sample; trains a WordPiece vocabulary on the training text itself (no hub downloads); labels the
first word piece of each word and sets -100 on the rest, as HuggingFace's run_ner does.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL = REPO.parent / "shared" / "corpora" / "ncbi-disease" / "conll" / "NCBI-disease-IOB" / "train.tsv"
SAMPLE = REPO / "corpora" / "samples" / "ncbi-disease" / "train_sample.tsv"
LABELS = ["O", "B-Disease", "I-Disease"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_file() -> Path:
    return FULL if FULL.is_file() else SAMPLE


def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    """(words, tags) per sentence from a two-column tab-separated file, blank-line separated."""
    sentences, words, tags = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[-1] not in LABELS:
            raise ValueError(f"{path}, line {number}: expected 'word<TAB>tag', got {line!r}")
        words.append(parts[0])
        tags.append(parts[-1])
    if words:
        sentences.append((words, tags))
    return sentences


def train_wordpiece(sentences: list[tuple[list[str], list[str]]], vocab_size: int):
    """A cased WordPiece tokenizer (HuggingFace fast tokenizer) trained on the sentences."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS)
    tok.train_from_iterator((" ".join(words) for words, _ in sentences), trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def ner_features(
    vocab_size: int = 8000, max_length: int = 512, path: Path | None = None
) -> tuple[list[dict], object, Path]:
    """Features (input_ids, attention_mask, token_type_ids, first-subword labels), tokenizer, source."""
    path = path or train_file()
    sentences = read_conll(path)
    tokenizer = train_wordpiece(sentences, vocab_size)
    label_id = {label: i for i, label in enumerate(LABELS)}
    enc = tokenizer(
        [w for w, _ in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=True,
    )
    features = []
    for i, (_, tags) in enumerate(sentences):
        labels, previous = [], None
        for word in enc.word_ids(i):
            labels.append(-100 if word is None or word == previous else label_id[tags[word]])
            previous = word
        features.append(
            {
                "input_ids": enc["input_ids"][i],
                "attention_mask": enc["attention_mask"][i],
                "token_type_ids": enc["token_type_ids"][i],
                "labels": labels,
            }
        )
    return features, tokenizer, path
