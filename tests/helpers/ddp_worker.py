"""One rank of the DDP test (launched by torchrun from tests/test_ddp.py), or the 1-process reference.

Usage: python tests/helpers/ddp_worker.py OUT_DIR PER_RANK_BATCH
Builds the same tiny Megatron-BERT (seed 0, dropout 0) and synthetic features everywhere, trains on
CPU (gloo under torchrun), and has rank 0 write the final weights to OUT_DIR/final.safetensors.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch
from safetensors.torch import save_model
from transformers import MegatronBertConfig, MegatronBertForTokenClassification

from biomodels.data.batching import PaddingCollator
from biomodels.training.config import TrainConfig
from biomodels.training.trainer import Trainer

VOCAB, PAD, CLS, SEP = 40, 0, 1, 2
N_FEATURES, EPOCHS = 48, 2


def build_model() -> MegatronBertForTokenClassification:
    torch.manual_seed(0)
    config = MegatronBertConfig(
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
        vocab_size=VOCAB,
        num_labels=3,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return MegatronBertForTokenClassification(config)


def build_features() -> list[dict]:
    rng = random.Random(17)
    feats = []
    for i in range(N_FEATURES):
        words = [rng.randrange(3, VOCAB) for _ in range(rng.randint(3, 24))]
        ids = [CLS] + words + [SEP]
        feats.append(
            {
                "input_ids": ids,
                "attention_mask": [1] * len(ids),
                "token_type_ids": [0] * len(ids),
                "labels": [-100] + [w % 3 for w in words] + [-100],
                "_id": f"s{i}",
            }
        )
    return feats


def train(out_dir: Path, per_rank_batch: int) -> dict:
    torch.set_num_threads(1)
    model = build_model()
    feats = build_features()
    dev = feats[:8]

    def eval_fn(m: torch.nn.Module) -> dict[str, float]:
        batch = PaddingCollator(PAD)(dev)
        labels = batch.pop("labels")
        pred = m(**batch).logits.argmax(-1)
        mask = labels != -100
        return {"accuracy": float((pred[mask] == labels[mask]).float().mean())}

    cfg = TrainConfig(
        learning_rate=1e-3,
        epochs=EPOCHS,
        batch_size=per_rank_batch,
        warmup_ratio=0.1,
        log_every=2,
        eval_every=3,
        save_every=4,
        seed=7,
        precision="fp32",
        device="cpu",
        progress=False,
    )
    result = Trainer(model, feats, PaddingCollator(PAD), cfg, out_dir, eval_fn=eval_fn, metric="accuracy").train()
    if result.metrics_path is not None:  # rank 0 only
        save_model(model, str(out_dir / "final.safetensors"))
    return {"global_step": result.global_step, "world_size": result.run_info["world_size"]}


if __name__ == "__main__":
    print(train(Path(sys.argv[1]), int(sys.argv[2])))
