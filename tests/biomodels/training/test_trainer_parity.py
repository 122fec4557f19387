"""Parity with HuggingFace: our NER pipeline and training loop against transformers' `Trainer`.

Both sides start from the same scratch weights (one state dict copied into both), see the same
training sentences in the same order (the order is recorded inside both collators and compared),
and use the same hyperparameters (lr, no warmup, linear decay, batch 16, AdamW with weight decay
0.01 on the same parameter groups, clipping at 1.0, fp32, dropout 0). The HuggingFace side does what
`run_ner.py` does (first-subword labels, -100 elsewhere, DataCollatorForTokenClassification) and
scores with seqeval in strict IOB2 mode; our side uses ner_data, PaddingCollator, our Trainer and
task_eval. The dev F1s must agree within one point, and both must be clearly above zero, so a loop
that learns nothing (or learns differently) fails.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.raw_formats import raw_conll

pytest.importorskip("accelerate")  # transformers' Trainer needs it

from biomodels.data.batching import LengthGroupedSampler, PaddingCollator
from biomodels.data.ner import build_label_map, ner_examples, tokenize_ner
from biomodels.models.presets import scratch_config
from biomodels.models.tokenization import load_tokenizer
from biomodels.training.config import TrainConfig
from biomodels.training.evaluation import EvalSet, predict, score
from biomodels.training.trainer import Trainer
from corpora.formats.registry import read_documents
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples" / "ncbi-disease"
LR, EPOCHS, BATCH, SEED, MAX_LEN, WD = 1e-3, 3, 16, 7, 256, 0.01
F1_FLOOR = 0.15  # observed: 0.29 for this tiny model and seed; 0 means the loop learned nothing


def word_vocab(sents, size: int, folder: Path) -> Path:
    """A deterministic WordPiece vocabulary: specials, every character (alone and as ##c), then the
    most frequent words (ties alphabetical). The trained WordPiece vocabularies of `tokenizers`
    differ from run to run, which would make this test's F1 differ too."""
    counts = Counter(w for words, _ in sents for w in words)
    chars = sorted({c for w in counts for c in w})
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:size]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars), *words]) + "\n",
        encoding="utf-8",
    )
    return path


def run_ner_features(sents, tokenizer, label2id):
    """HuggingFace run_ner.py's tokenize_and_align_labels (label_all_tokens=False)."""
    feats = []
    for i, (words, tags) in enumerate(sents):
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=MAX_LEN)
        labels, previous = [], None
        for w in enc.word_ids():
            labels.append(-100 if w is None or w == previous else label2id[tags[w]])
            previous = w
        feats.append(
            {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "token_type_ids": enc["token_type_ids"],
                "labels": labels,
                "_idx": i,
            }
        )
    return feats


class Recording:
    """A collator wrapper that records which examples each batch holds."""

    def __init__(self, inner, key):
        self.inner, self.key, self.batches = inner, key, []

    def __call__(self, features):
        self.batches.append([f[self.key] for f in features])
        return self.inner([{k: v for k, v in f.items() if k != "_idx"} for f in features])


class EpochOrder(torch.utils.data.Sampler):
    """Yields, in epoch e, the order our Trainer's sampler gives in epoch e."""

    def __init__(self, orders):
        self.orders, self.epoch = orders, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        return iter(self.orders[self.epoch])

    def __len__(self):
        return len(self.orders[0])


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_dev_f1_matches_transformers_trainer(tmp_path):
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2
    from transformers import DataCollatorForTokenClassification, MegatronBertForTokenClassification, TrainingArguments
    from transformers import Trainer as HFTrainer

    train_raw = raw_conll(SAMPLES / "train_sample.tsv")
    dev_raw = raw_conll(SAMPLES / "devel_sample.tsv")
    assert (len(train_raw), len(dev_raw)) == (800, 250)  # SOURCE.md: first 800 / 250 sentences

    # shared pieces: vocabulary, tokenizer, labels, initial weights
    tokenizer = load_tokenizer(word_vocab(train_raw, 3000, tmp_path / "vocab"), lower_case=False)
    labels = ["O", "B-Disease", "I-Disease"]
    label2id = {lab: i for i, lab in enumerate(labels)}
    config = scratch_config(2, 128, 2, len(tokenizer), max_positions=MAX_LEN)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.num_labels, config.id2label, config.label2id = 3, dict(enumerate(labels)), label2id
    torch.manual_seed(SEED)
    initial = MegatronBertForTokenClassification(config).state_dict()

    # ours: Documents -> examples -> windowed features (no window needed at MAX_LEN)
    train_ex = ner_examples(read_documents(SAMPLES / "train_sample.tsv"))
    dev_ex = ner_examples(read_documents(SAMPLES / "devel_sample.tsv"))
    assert build_label_map(train_ex) == labels
    ours_train = tokenize_ner(train_ex, tokenizer, label2id, MAX_LEN, 32)
    ours_dev = tokenize_ner(dev_ex, tokenizer, None, MAX_LEN, 32)
    hf_train = run_ner_features(train_raw, tokenizer, label2id)
    hf_dev = run_ner_features(dev_raw, tokenizer, label2id)
    # the same inputs on both sides: one window per sentence, identical ids and labels
    assert [f["input_ids"] for f in ours_train] == [f["input_ids"] for f in hf_train]
    assert [f["labels"] for f in ours_train] == [f["labels"] for f in hf_train]
    assert [f["input_ids"] for f in ours_dev] == [f["input_ids"] for f in hf_dev]

    # ours
    ours_model = MegatronBertForTokenClassification(config)
    ours_model.load_state_dict(copy.deepcopy(initial))
    ours_collate = Recording(PaddingCollator(tokenizer.pad_token_id), "_example_index")
    tcfg = TrainConfig(
        learning_rate=LR,
        epochs=EPOCHS,
        batch_size=BATCH,
        warmup_ratio=0.0,
        weight_decay=WD,
        max_grad_norm=1.0,
        precision="fp32",
        seed=SEED,
        group_by_length=False,
        progress=False,
        plot=False,
        log_every=50,
    )
    result = Trainer(ours_model, ours_train, ours_collate, tcfg, tmp_path / "ours").train()
    steps_per_epoch = -(-len(ours_train) // BATCH)
    assert result.global_step == EPOCHS * steps_per_epoch
    evalset = EvalSet("ner", dev_ex, ours_dev, labels)
    ours_metrics = score(evalset, predict(evalset, ours_model, tokenizer.pad_token_id))

    # the order our sampler produced, per epoch, handed to the HuggingFace Trainer
    sampler = LengthGroupedSampler([0] * len(ours_train), BATCH, seed=SEED, shuffle=True)
    orders = [np.concatenate(sampler.global_batches(e)).tolist() for e in range(EPOCHS)]

    class SameOrderTrainer(HFTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return EpochOrder(orders)

    hf_model = MegatronBertForTokenClassification(config)
    hf_model.load_state_dict(copy.deepcopy(initial))
    hf_collate = Recording(DataCollatorForTokenClassification(tokenizer), "_idx")
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        learning_rate=LR,
        num_train_epochs=EPOCHS,
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=64,
        warmup_steps=0,
        lr_scheduler_type="linear",
        weight_decay=WD,
        max_grad_norm=1.0,
        optim="adamw_torch",
        seed=SEED,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        remove_unused_columns=False,
        dataloader_drop_last=False,
        disable_tqdm=True,
    )
    hf_trainer = SameOrderTrainer(model=hf_model, args=args, train_dataset=hf_train, data_collator=hf_collate)
    hf_trainer.train()
    hf_batches = list(hf_collate.batches)
    assert hf_batches == ours_collate.batches, "the two trainers did not see the same batches in the same order"
    pred = hf_trainer.predict(hf_dev)
    argmax = pred.predictions.argmax(-1)
    hf_pred, hf_gold = [], []
    for row, gold_ids in zip(argmax, pred.label_ids):
        keep = gold_ids != -100
        hf_pred.append([labels[i] for i in row[keep]])
        hf_gold.append([labels[i] for i in gold_ids[keep]])
    assert hf_gold == [tags for _, tags in dev_raw]
    hf_f1 = f1_score(hf_gold, hf_pred, mode="strict", scheme=IOB2)

    print(f"dev entity F1 (strict): ours {ours_metrics['f1']:.4f}  transformers Trainer {hf_f1:.4f}")
    assert ours_metrics["f1"] > F1_FLOOR and hf_f1 > F1_FLOOR
    assert abs(ours_metrics["f1"] - hf_f1) <= 0.01
