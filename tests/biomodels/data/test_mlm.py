"""Pretraining data: packing of consecutive sentences, whole-word masks, the held-out slice."""

from __future__ import annotations

import pytest
import torch

from biomodels.data.mlm import (
    IGNORE,
    MaskingCollator,
    MaskingSpec,
    document_segments,
    fixed_masked_batches,
    mask_batch,
    pack_documents,
    split_held_out,
)
from biomodels.models.tokenization import build_tokenizer
from biomodels.models.vocab_training import train_wordpiece_vocab
from corpora.errors import ConfigError
from corpora.formats.pubtator import read_pubtator
from corpora.schema import Document, Passage, Span
from tests.helpers.paths import SAMPLES

PUBTATOR = SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    docs = [d for d in read_pubtator(PUBTATOR) if isinstance(d, Document)]
    folder = tmp_path_factory.mktemp("vocab")
    train_wordpiece_vocab([d.text for d in docs], 1500, True, folder)
    return build_tokenizer(folder / "vocab.txt", True)


def doc_with_sentences(text: str, bounds: list[tuple[int, int]]) -> Document:
    doc = Document(id="d1", document_id="d1", passages=[Passage("p", "abstract", text, [[0, len(text)]])])
    doc.sentences = [Span(a, b) for a, b in bounds]
    return doc


def test_segments_are_sentences_when_present_else_passages():
    text = "Aspirin helps. It cures pain."
    doc = doc_with_sentences(text, [(15, 29), (0, 14)])
    assert document_segments(doc) == ["Aspirin helps.", "It cures pain."]
    doc.sentences = []
    assert document_segments(doc) == [text]


def test_packing_joins_consecutive_sentences_up_to_max_length(tokenizer):
    text = "Aspirin helps. It cures pain. Nothing else."
    doc = doc_with_sentences(text, [(0, 14), (15, 29), (30, 43)])
    feats = pack_documents([doc], tokenizer, max_length=64)
    assert len(feats) == 1
    ids = feats[0]["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids[1:-1]) == "aspirin helps. it cures pain. nothing else."
    # a budget of 8 pieces: sentences are not merged past it, long ones are cut
    small = pack_documents([doc], tokenizer, max_length=8)
    assert all(len(f["input_ids"]) <= 8 for f in small)
    joined = [t for f in small for t in f["input_ids"][1:-1]]
    assert joined == ids[1:-1]  # nothing lost, nothing repeated, order kept
    for f in small:
        assert f["word_start"][0] == 0 and f["word_start"][-1] == 0 and f["word_start"][1] == 1


def test_word_start_flags_mark_the_first_piece_of_each_word(tokenizer):
    doc = doc_with_sentences("hepatotoxicity of acetaminophen", [(0, 31)])
    feat = pack_documents([doc], tokenizer, 64)[0]
    pieces = tokenizer.convert_ids_to_tokens(feat["input_ids"])
    for piece, start in zip(pieces[1:-1], feat["word_start"][1:-1], strict=True):
        assert start == (0 if piece.startswith("##") else 1)


def test_whole_word_masking_masks_every_piece_of_a_picked_word(tokenizer):
    doc = doc_with_sentences("hepatotoxicity of acetaminophen in rats", [(0, 39)])
    feat = pack_documents([doc], tokenizer, 64)[0]
    ids = torch.tensor([feat["input_ids"]] * 200)
    starts = torch.tensor([feat["word_start"]] * 200)
    spec = MaskingSpec.from_tokenizer(tokenizer, probability=0.3)
    masked, labels = mask_batch(ids, starts, spec, torch.Generator().manual_seed(0))
    word_of = starts.cumsum(1) - 1
    for row in range(200):
        chosen = labels[row] != IGNORE
        assert chosen.any()  # at least one word per row
        assert not chosen[0] and not chosen[-1]  # never [CLS] / [SEP]
        assert torch.equal(labels[row][chosen], ids[row][chosen])
        words = set(word_of[row][chosen].tolist())
        for w in words:  # all pieces of each picked word
            in_word = (word_of[row] == w).nonzero().flatten().tolist()
            in_word = [i for i in in_word if i not in (0, len(feat["input_ids"]) - 1)]
            assert all(chosen[i] for i in in_word)
    chosen = labels != IGNORE
    replaced = masked[chosen]
    share_mask = float((replaced == spec.mask_id).float().mean())
    share_kept = float((replaced == ids[chosen]).float().mean())
    assert 0.74 < share_mask < 0.86 and 0.06 < share_kept < 0.16  # 80/10/10
    assert torch.equal(masked[~chosen], ids[~chosen])


def test_collator_draws_new_masks_each_call_and_fixed_batches_repeat(tokenizer):
    docs = [d for d in read_pubtator(PUBTATOR) if isinstance(d, Document)][:5]
    feats = pack_documents(docs, tokenizer, 64)
    spec = MaskingSpec.from_tokenizer(tokenizer)
    collate = MaskingCollator(spec)
    torch.manual_seed(0)
    a, b = collate(feats[:4]), collate(feats[:4])
    assert not torch.equal(a["labels"], b["labels"])
    assert set(a) == {"input_ids", "attention_mask", "labels"}
    ratio = float((a["labels"] != IGNORE).sum() / a["attention_mask"].sum())
    assert 0.05 < ratio < 0.3
    first = fixed_masked_batches(feats, spec, 4, seed=3)
    again = fixed_masked_batches(feats, spec, 4, seed=3)
    assert all(torch.equal(x["labels"], y["labels"]) for x, y in zip(first, again, strict=True))


def test_held_out_slice_depends_on_ids_only():
    docs = [Document(id=str(i), document_id=str(i)) for i in range(400)]
    train, held = split_held_out(docs, 5.0)
    assert 8 <= len(held) <= 35 and len(train) + len(held) == 400
    _, held_reversed = split_held_out(list(reversed(docs)), 5.0)
    assert {d.id for d in held} == {d.id for d in held_reversed}
    assert split_held_out(docs[:2], 0.0)[1] == []
    with pytest.raises(ConfigError, match="held-out percent"):
        split_held_out(docs, 100)
    with pytest.raises(ConfigError, match="max_length"):
        pack_documents(docs, None, 4)
