"""Training throughput: our NER loop against transformers' Trainer, same model, data and steps.

Ours: biomodels.training.trainer.Trainer + PaddingCollator (pad to each batch's longest) +
LengthGroupedSampler (batches of similar lengths) on our encoder (biomodels.models.encoder: one
QKV matmul, scaled_dot_product_attention; --attention eager for the explicit path, --compile for
torch.compile). Peer: transformers.Trainer as run_ner.py sets it up by default on transformers'
MegatronBertForTokenClassification: DataCollatorForTokenClassification (pads each random batch to
its longest member), train_sampling_strategy="random" (no length grouping; the default), default
optimizer.

Both train the same randomly initialised Megatron-BERT weights (6 layers, hidden 512, 8 heads;
ours loads the peer model's initial state dict) on the same NCBI-disease training features
(WordPiece vocabulary trained on the training text, first-subword labels), batch 32, fp32 on CPU,
the same number of optimizer steps, in one process. `--precision bf16` runs both sides under CPU bf16
autocast (ours: TrainConfig precision "bf16"; the peer: TrainingArguments(bf16=True)); worth it on
CPUs with native bf16 (AVX512-BF16, AMX).

Throughput is real (non-padding) tokens per second, counted by a forward pre-hook on the model
(attention_mask ones), timed from the first forward pass to the end of `train()` (model
construction and trainer setup before the first batch are excluded on both sides), per wall
second and per CPU second of the process (the CPU figure is steadier when other jobs share the
cores; with --threads 1 it is the compute spent).

Usage: .venv/bin/python benchmarks/bench_train.py [--steps 20] [--threads N]
The last stdout line is a JSON object with ours_tokens_per_s, peer_tokens_per_s and ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ner_bench_data import LABELS, ner_features  # noqa: E402

from biomodels.data.batching import PaddingCollator  # noqa: E402
from biomodels.training.config import TrainConfig
from biomodels.training.trainer import Trainer  # noqa: E402

SEED, LR = 42, 5e-5


def build_model(vocab_size: int, ours: bool = False, attention: str = "sdpa"):
    """transformers' MegatronBertForTokenClassification, or ours with the same initial weights."""
    from transformers import MegatronBertConfig, MegatronBertForTokenClassification

    from biomodels.models.encoder import TokenClassifier

    torch.manual_seed(SEED)
    config = MegatronBertConfig(
        vocab_size=((vocab_size + 127) // 128) * 128,
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=8,
        intermediate_size=2048,
        max_position_embeddings=512,
        num_labels=len(LABELS),
    )
    peer = MegatronBertForTokenClassification(config)
    if not ours:
        return peer
    config.biomed_attention = attention
    model = TokenClassifier(config)
    model.load_state_dict(peer.state_dict())
    return model


class TokenMeter:
    """Counts real and padded tokens of every training forward pass and when the first began."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.real = self.padded = self.batches = 0
        self.first: float | None = None
        self.first_cpu = 0.0
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if not module.training:
            return None
        if self.first is None:
            self.first = time.perf_counter()
            self.first_cpu = time.process_time()
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        self.real += int(mask.sum())
        self.padded += ids.numel()
        self.batches += 1
        return None

    def report(self, end: float) -> dict:
        seconds = end - (self.first or end)
        cpu_seconds = time.process_time() - self.first_cpu
        return {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "tokens_per_cpu_s": self.real / cpu_seconds if cpu_seconds else 0.0,
            "batches": self.batches,
            "real_tokens": self.real,
            "padded_tokens": self.padded,
            "padding_fraction": 1 - self.real / max(self.padded, 1),
            "tokens_per_s": self.real / seconds if seconds else 0.0,
        }


def run_ours(
    features: list[dict],
    tokenizer,
    steps: int,
    batch: int,
    out: Path,
    attention: str = "sdpa",
    compile: bool = False,
    precision: str = "fp32",
) -> dict:
    model = build_model(len(tokenizer), ours=True, attention=attention)
    meter = TokenMeter(model)
    cfg = TrainConfig(
        learning_rate=LR,
        max_steps=steps,
        batch_size=batch,
        warmup_ratio=0.1,
        weight_decay=0.01,
        precision=precision,
        seed=SEED,
        log_every=max(1, steps // 4),
        device="cpu",
        progress=False,
        plot=False,
        save_every=None,
        attention=attention,
        compile=compile,
    )
    result = Trainer(model, features, PaddingCollator(tokenizer.pad_token_id), cfg, out).train()
    report = meter.report(time.perf_counter())
    report["trainer_reported_tokens_per_s"] = result.tokens_per_s
    report["optimizer"] = result.run_info["optimizer"]["name"]
    return report


def run_peer(features: list[dict], tokenizer, steps: int, batch: int, out: Path, precision: str = "fp32") -> dict:
    from transformers import DataCollatorForTokenClassification, TrainingArguments
    from transformers import Trainer as HFTrainer

    model = build_model(len(tokenizer))
    meter = TokenMeter(model)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=LR,
        weight_decay=0.01,
        warmup_steps=max(1, steps // 10),
        seed=SEED,
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        bf16=precision == "bf16",
    )
    trainer = HFTrainer(
        model=model, args=args, train_dataset=features, data_collator=DataCollatorForTokenClassification(tokenizer)
    )
    trainer.train()
    report = meter.report(time.perf_counter())
    report["optimizer"] = str(getattr(args.optim, "value", args.optim))
    report["train_sampling_strategy"] = getattr(args, "train_sampling_strategy", "random")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--order", choices=["ours-first", "peer-first"], default="ours-first")
    parser.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa", help="our encoder's attention path")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile our encoder (its compile time counts: it happens in the first steps)",
    )
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="both sides (CPU autocast)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    features, tokenizer, source = ner_features()
    lengths = [len(f["input_ids"]) for f in features]
    print(
        f"data: {source} ({len(features)} sentences, mean {sum(lengths) / len(lengths):.1f} "
        f"word pieces, max {max(lengths)}); {args.steps} steps of batch {args.batch_size}; "
        f"torch threads {torch.get_num_threads()}",
        flush=True,
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        order = ["ours", "peer"] if args.order == "ours-first" else ["peer", "ours"]
        for name in order:
            if name == "ours":
                results[name] = run_ours(
                    features,
                    tokenizer,
                    args.steps,
                    args.batch_size,
                    Path(tmp) / name,
                    args.attention,
                    args.compile,
                    args.precision,
                )
            else:
                results[name] = run_peer(
                    features, tokenizer, args.steps, args.batch_size, Path(tmp) / name, args.precision
                )
            r = results[name]
            print(
                f"{name}: {r['tokens_per_s']:.0f} real tokens/s, {r['tokens_per_cpu_s']:.0f} per "
                f"CPU s ({r['real_tokens']} real of {r['padded_tokens']} padded tokens, "
                f"{r['seconds']:.1f} s, {r['cpu_seconds']:.1f} CPU s, "
                f"optimizer {r['optimizer']})",
                flush=True,
            )
    ratio = results["ours"]["tokens_per_s"] / results["peer"]["tokens_per_s"]
    ratio_cpu = results["ours"]["tokens_per_cpu_s"] / results["peer"]["tokens_per_cpu_s"]
    print(f"ratio ours/peer: {ratio:.2f} (wall), {ratio_cpu:.2f} (CPU time)")
    print(
        json.dumps(
            {
                "ours_tokens_per_s": results["ours"]["tokens_per_s"],
                "peer_tokens_per_s": results["peer"]["tokens_per_s"],
                "ratio": ratio,
                "ours_tokens_per_cpu_s": results["ours"]["tokens_per_cpu_s"],
                "peer_tokens_per_cpu_s": results["peer"]["tokens_per_cpu_s"],
                "ratio_cpu": ratio_cpu,
                "steps": args.steps,
                "attention": args.attention,
                "compile": args.compile,
                "precision": args.precision,
                "batch_size": args.batch_size,
                "threads": torch.get_num_threads(),
                "data": str(source),
                "ours": results["ours"],
                "peer": results["peer"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
