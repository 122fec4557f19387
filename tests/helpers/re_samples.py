"""ChemProt sample documents with sentences from a rule the tests can check on their own (". " before
a capital letter), a stand-in for preprocessing, and a small WordPiece tokenizer with RE markers."""

from __future__ import annotations

import re

from corpora.formats.chemprot import read_chemprot
from corpora.schema import Document, Span
from tests.helpers.paths import SAMPLES

CHEMPROT = SAMPLES / "chemprot" / "chemprot_sample_abstracts.tsv"
CDR = SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt"
CPR = ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")


def split_sentences_simple(text: str) -> list[tuple[int, int]]:
    """Test stand-in for preprocessing: a sentence ends at a "." followed by one space and a capital."""
    spans, start = [], 0
    for m in re.finditer(r"\. (?=[A-Z])", text):
        spans.append((start, m.start() + 1))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def with_sentences(docs: list[Document]) -> list[Document]:
    for doc in docs:
        doc.sentences = [Span(s, e) for s, e in split_sentences_simple(doc.text)]
    return docs


def chemprot_with_sentences() -> list[Document]:
    return with_sentences(list(read_chemprot(CHEMPROT)))


def re_tokenizer(folder):
    """A lower-cased WordPiece tokenizer trained on the ChemProt sample, with the marker tokens."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    from biomodels.data.re_marking import marker_tokens

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(
        CHEMPROT.read_text(encoding="utf-8").splitlines(),
        vocab_size=500,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    wp.save_model(str(folder))
    tok = BertTokenizerFast.from_pretrained(str(folder))
    tok.add_special_tokens({"additional_special_tokens": marker_tokens("entity_markers") + marker_tokens("bioelectra")})
    return tok
