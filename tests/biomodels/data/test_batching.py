"""Dynamic padding and length-grouped batches, checked on NCBI-disease sentence lengths."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from biomodels.data.batching import LengthGroupedSampler, PaddingCollator, count_tokens
from corpora.errors import ConfigError, MalformedInputError
from tests.helpers.paths import ROOT

SAMPLE = ROOT / "corpora" / "samples" / "ncbi-disease" / "train_sample.tsv"
PAD, CLS, SEP = 0, 2, 3


def ncbi_sentence_lengths() -> list[int]:
    """Words per sentence in the bundled CoNLL sample (blank line = sentence end)."""
    lengths, current = [], 0
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            current += 1
        elif current:
            lengths.append(current)
            current = 0
    if current:
        lengths.append(current)
    return lengths


def features_for(lengths: list[int]) -> list[dict]:
    feats = []
    for i, n in enumerate(lengths):
        ids = [CLS] + [10 + (i + j) % 50 for j in range(n)] + [SEP]
        feats.append(
            {
                "input_ids": ids,
                "attention_mask": [1] * len(ids),
                "token_type_ids": [0] * len(ids),
                "labels": [-100] + [j % 3 for j in range(n)] + [-100],
                "_id": f"s{i}",
            }
        )
    return feats


# ----------------------------------------------------------------------------- collator


def test_collator_pads_each_field_to_longest_and_drops_bookkeeping():
    feats = [
        {
            "input_ids": [2, 7, 8, 3],
            "attention_mask": [1, 1, 1, 1],
            "token_type_ids": [0, 0, 1, 1],
            "labels": [-100, 1, 2, -100],
            "_id": "a",
            "_words": ["x", "y"],
        },
        {
            "input_ids": [2, 9, 3],
            "attention_mask": [1, 1, 1],
            "token_type_ids": [0, 0, 0],
            "labels": [-100, 0, -100],
            "_id": "b",
            "_words": ["z"],
        },
    ]
    batch = PaddingCollator(pad_token_id=PAD)(feats)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].tolist() == [[2, 7, 8, 3], [2, 9, 3, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 1], [0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 1, 2, -100], [-100, 0, -100, -100]]
    assert all(t.dtype == torch.long for t in batch.values())
    assert count_tokens(batch) == (7, 8)


def test_collator_scalar_labels_and_qa_positions():
    feats = [
        {"input_ids": [2, 5, 3], "labels": 4, "start_positions": 1, "end_positions": 1},
        {"input_ids": [2, 5, 6, 7, 3], "labels": 0, "start_positions": 2, "end_positions": 3},
    ]
    batch = PaddingCollator(pad_token_id=PAD)(feats)
    assert batch["labels"].tolist() == [4, 0]
    assert batch["start_positions"].tolist() == [1, 2]
    assert batch["end_positions"].tolist() == [1, 3]
    # no attention_mask given: built from the lengths
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_collator_pad_to_multiple_of_8():
    feats = [{"input_ids": list(range(1, 14)), "attention_mask": [1] * 13}]
    batch = PaddingCollator(pad_token_id=PAD, pad_to_multiple_of=8)(feats)
    assert batch["input_ids"].shape == (1, 16)
    assert batch["input_ids"][0, 13:].tolist() == [PAD, PAD, PAD]
    assert batch["attention_mask"].sum().item() == 13


def test_collator_rejects_mismatched_labels_naming_the_record():
    feats = [{"input_ids": [2, 5, 3], "labels": [-100, 1], "_id": "PMID123-s4"}]
    with pytest.raises(MalformedInputError, match="PMID123-s4.*labels has 2 entries but input_ids has 3"):
        PaddingCollator(pad_token_id=PAD)(feats)
    with pytest.raises(ConfigError):
        PaddingCollator(pad_token_id=PAD)([])


# ------------------------------------------------------------------------------ sampler


def test_padding_on_ncbi_lengths_far_below_pad_to_128():
    lengths = [n + 2 for n in ncbi_sentence_lengths()]  # + [CLS] and [SEP]
    assert len(lengths) == 800
    feats = features_for([n - 2 for n in lengths])
    collate = PaddingCollator(pad_token_id=PAD)
    bs = 32
    sampler = LengthGroupedSampler(lengths, bs, seed=1)
    real = padded = 0
    for batch_idx in sampler:
        batch = collate([feats[i] for i in batch_idx])
        r, p = count_tokens(batch)
        real, padded = real + r, padded + p
    assert real == sum(lengths)
    # 800 sentences fit in one mega-batch (50 x 32), so the batches are the sorted lengths cut in
    # runs of 32: padded size = sum over runs of (run max x run size)
    ordered = sorted(lengths, reverse=True)
    expected = sum(max(ordered[i : i + bs]) * len(ordered[i : i + bs]) for i in range(0, len(ordered), bs))
    assert padded == expected
    assert padded < 0.3 * 128 * len(lengths)
    # random batches padded to their own longest member pad far more than grouped ones
    rng = random.Random(0)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    random_padded = sum(
        max(lengths[i] for i in order[s : s + bs]) * len(order[s : s + bs]) for s in range(0, len(order), bs)
    )
    assert padded < 0.7 * random_padded


def test_every_index_once_per_epoch_and_deterministic():
    lengths = [n + 2 for n in ncbi_sentence_lengths()]
    s1 = LengthGroupedSampler(lengths, 16, seed=7, mega_batch_mult=4)
    s2 = LengthGroupedSampler(lengths, 16, seed=7, mega_batch_mult=4)
    epochs = []
    for epoch in range(3):
        s1.set_epoch(epoch)
        s2.set_epoch(epoch)
        b1, b2 = list(s1), list(s2)
        assert b1 == b2
        assert len(b1) == len(s1) == 50
        flat = [i for b in b1 for i in b]
        assert sorted(flat) == list(range(len(lengths)))
        # each batch is length-sorted (longest first) and the first batch holds the longest sentence
        for b in b1:
            assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
        assert max(lengths) == lengths[b1[0][0]]
        epochs.append(b1)
    assert epochs[0] != epochs[1] != epochs[2]
    other_seed = LengthGroupedSampler(lengths, 16, seed=8, mega_batch_mult=4)
    assert list(other_seed) != epochs[0]


def test_mega_batches_limit_sorting_scope():
    # with mega-batches of 4 x 16 = 64, a batch only mixes members of one shuffled chunk of 64
    lengths = list(range(1, 257))
    sampler = LengthGroupedSampler(lengths, 16, seed=3, mega_batch_mult=4)
    order = np.random.default_rng([3, 0]).permutation(256)
    chunks = [set(order[i : i + 64].tolist()) for i in range(0, 256, 64)]
    for batch in sampler:
        assert sum(set(batch) <= chunk for chunk in chunks) == 1


def test_skip_batches_resumes_mid_epoch():
    lengths = [n + 2 for n in ncbi_sentence_lengths()]
    sampler = LengthGroupedSampler(lengths, 32, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, skip_batches=9)
    assert list(sampler) == full[9:]
    sampler.set_epoch(2)
    assert list(sampler) == full


@pytest.mark.parametrize("world_size", [2, 3])
def test_distributed_split_unions_to_single_process_batches(world_size):
    lengths = [n + 2 for n in ncbi_sentence_lengths()][:500]
    per_rank = 8
    single = LengthGroupedSampler(lengths, per_rank * world_size, seed=11, mega_batch_mult=5)
    ranks = [
        LengthGroupedSampler(lengths, per_rank, seed=11, world_size=world_size, rank=r, mega_batch_mult=5)
        for r in range(world_size)
    ]
    for epoch in range(2):
        single.set_epoch(epoch)
        for s in ranks:
            s.set_epoch(epoch)
        single_batches = list(single)
        rank_batches = [list(s) for s in ranks]
        assert all(len(rb) == len(single_batches) == len(s) for rb, s in zip(rank_batches, ranks))
        for step, global_batch in enumerate(single_batches):
            parts = [rb[step] for rb in rank_batches]
            assert sorted(i for p in parts for i in p) == sorted(global_batch)
            assert sum(len(p) for p in parts) == len(global_batch)
            assert all(len(p) <= per_rank for p in parts)
            # strided share: rank r holds global_batch[r::world_size]
            for r, p in enumerate(parts):
                assert p == global_batch[r::world_size]


def test_distributed_drops_a_tail_too_small_for_every_rank():
    lengths = [5] * 17  # global batch 8: batches of 8, 8 and a tail of 1
    single = list(LengthGroupedSampler(lengths, 8, seed=0))
    assert [len(b) for b in single] == [8, 8, 1]
    ranks = [LengthGroupedSampler(lengths, 4, seed=0, world_size=2, rank=r) for r in range(2)]
    assert [len(s) for s in ranks] == [2, 2]
    seen = sorted(i for s in ranks for b in s for i in b)
    assert seen == sorted(single[0] + single[1])
    assert single[2][0] not in seen


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ConfigError):
        LengthGroupedSampler([3, 4], 0)
    with pytest.raises(ConfigError):
        LengthGroupedSampler([3, 4], 2, world_size=2, rank=2)
    with pytest.raises(ConfigError):
        LengthGroupedSampler([3, 4], 2).set_epoch(0, skip_batches=-1)
