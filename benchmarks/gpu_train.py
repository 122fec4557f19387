"""GPU training throughput of the 345m Megatron-BERT NER fine-tuning loop, and its MFU.

Trains our Megatron-BERT token classifier (biomodels.models.encoder: one QKV matmul,
scaled_dot_product_attention, or the explicit path with --attention eager; --compile for
torch.compile) with the BioMegatron 345m architecture (24 layers, hidden 1024, 16 heads, FFN 4096,
vocab 30592; random weights, so no checkpoint is needed) through
biomodels.training.trainer.Trainer: bf16 autocast, fused AdamW (apex FusedAdam when apex is usable),
PaddingCollator padding to a multiple of 8, LengthGroupedSampler. The inputs are synthetic
sentences whose word-piece lengths follow NCBI-disease's training set (tokenised with the
benchmark's WordPiece vocabulary when ../shared has the corpus, else a fixed histogram of the same
lengths), random token ids and labels.

Reported: real (non-padding) tokens per second, overall and in steady state (after the warmup
steps, which include CUDA/cuBLAS initialisation and the deliberately longest first batch), and
model FLOPs utilisation

    MFU = tokens/s x (6N + 12·L·s·d) / peak

where N is the number of non-embedding parameters (a forward pass costs about 2 FLOPs per parameter
per token for the matrix multiplies, the backward pass twice that: 6N), and 12·L·s·d is attention's
own work per token that no parameter counts (QK^T and attention x V: 2·s·d multiply-adds each per
layer forward, so 4·L·s·d FLOPs forward and 12·L·s·d with the backward), with L layers, d hidden,
and s the mean real sequence length (padding is not useful work and is not counted). peak is
989 TFLOP/s, the dense bf16 peak of an H100/H200 (--peak-tflops to change). At s = 128 the formula
gives about 1.85 GFLOP per token for this model.

Usage: python benchmarks/gpu_train.py [--steps 60] [--batch-size 64] [--attention sdpa|eager] [--compile]
       bash benchmarks/gpu_check.sh   (both attention paths, with and without compile: the device check)
       python benchmarks/gpu_train.py --tiny --cpu     (a CPU smoke run of the same code path)
Without a CUDA device (and without --cpu) it prints why and exits with status 0.
The last stdout line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biomodels.data.batching import PaddingCollator  # noqa: E402
from biomodels.training.config import TrainConfig
from biomodels.training.trainer import StepInfo, Trainer  # noqa: E402

# Word-piece lengths of NCBI-disease train (5,424 sentences, [CLS] and [SEP] included, WordPiece
# vocabulary of 8,000 trained on the text by benchmarks/ner_bench_data.py): bins of 10, counts.
NCBI_LENGTH_HISTOGRAM = [
    (0, 190),
    (10, 1151),
    (20, 1796),
    (30, 1226),
    (40, 641),
    (50, 256),
    (60, 92),
    (70, 40),
    (80, 14),
    (90, 6),
    (100, 7),
    (110, 1),
    (120, 2),
    (130, 1),
    (140, 1),
]
ARCH_345M = dict(
    num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096, vocab_size=30592
)
ARCH_TINY = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128, vocab_size=1024)
PAD, CLS, SEP, NUM_LABELS = 0, 2, 3, 3


def lengths_from_histogram(n: int, rng: random.Random) -> list[int]:
    bins = [lo for lo, _ in NCBI_LENGTH_HISTOGRAM]
    weights = [count for _, count in NCBI_LENGTH_HISTOGRAM]
    return [max(3, lo + rng.randrange(10)) for lo in rng.choices(bins, weights=weights, k=n)]


def ncbi_lengths(source: str, n: int, rng: random.Random) -> tuple[list[int], str]:
    """`n` sequence lengths drawn from NCBI-disease's word-piece length distribution."""
    if source in ("auto", "sample"):
        from ner_bench_data import FULL, SAMPLE, ner_features

        path = SAMPLE if source == "sample" else FULL
        if path.is_file():
            feats, _, used = ner_features(path=path)
            real = [len(f["input_ids"]) for f in feats]
            return [rng.choice(real) for _ in range(n)], f"word-piece lengths of {used}"
    return lengths_from_histogram(n, rng), "fixed histogram of NCBI-disease word-piece lengths"


def synthetic_features(lengths: list[int], vocab: int, rng: random.Random) -> list[dict]:
    feats = []
    for n in lengths:
        body = n - 2
        feats.append(
            {
                "input_ids": [CLS] + [rng.randrange(5, vocab) for _ in range(body)] + [SEP],
                "attention_mask": [1] * n,
                "token_type_ids": [0] * n,
                "labels": [-100] + [rng.randrange(NUM_LABELS) for _ in range(body)] + [-100],
            }
        )
    return feats


def non_embedding_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def flops_per_token(n_params: int, layers: int, seq: float, hidden: int) -> float:
    return 6 * n_params + 12 * layers * seq * hidden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (60; tiny: 6)")
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per step (64; tiny: 8)")
    parser.add_argument(
        "--warmup-steps", type=int, default=None, help="steps excluded from the steady-state figure (10; tiny: 2)"
    )
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    parser.add_argument(
        "--lengths",
        default="auto",
        choices=["auto", "histogram", "sample"],
        help="where sequence lengths come from (auto: ../shared corpus, else histogram)",
    )
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model instead of 345m")
    parser.add_argument("--cpu", action="store_true", help="run on CPU (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: temporary)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa", help="our encoder's attention path")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder (compile time is in warmup)")
    args = parser.parse_args(argv)

    if not args.cpu and not torch.cuda.is_available():
        print("gpu_train: no CUDA device here; nothing measured (use --tiny --cpu for a smoke run)")
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    from transformers import MegatronBertConfig

    from biomodels.models.encoder import TokenClassifier

    arch = ARCH_TINY if args.tiny else ARCH_345M
    steps = args.steps or (6 if args.tiny else 60)
    batch = args.batch_size or (8 if args.tiny else 64)
    warm = args.warmup_steps if args.warmup_steps is not None else (2 if args.tiny else 10)
    if not 0 <= warm < steps:
        parser.error("--warmup-steps must be smaller than --steps")
    device = torch.device("cpu" if args.cpu else "cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    rng = random.Random(args.seed)
    lengths, length_source = ncbi_lengths(args.lengths, steps * batch, rng)
    features = synthetic_features(lengths, arch["vocab_size"], rng)
    torch.manual_seed(args.seed)
    config = MegatronBertConfig(
        **arch, max_position_embeddings=512, num_labels=NUM_LABELS, layer_norm_eps=1e-5, hidden_act="gelu_new"
    )
    config.biomed_attention = args.attention
    model = TokenClassifier(config)
    n_params = non_embedding_params(model)

    marks: dict[str, tuple[float, int]] = {}
    trainer: Trainer

    def mark(info: StepInfo) -> None:  # the trainer synchronises CUDA at log steps
        if info.global_step == warm:
            marks["warm"] = (trainer.state.train_seconds, trainer.state.real_tokens)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        cfg = TrainConfig(
            learning_rate=5e-5,
            max_steps=steps,
            batch_size=batch,
            warmup_ratio=0.1,
            precision=args.precision,
            seed=args.seed,
            log_every=max(1, warm),
            device=str(device),
            progress=None,
            plot=False,
            save_every=None,
            attention=args.attention,
            compile=args.compile,
        )
        collate = PaddingCollator(PAD, pad_to_multiple_of=8 if device.type == "cuda" else None)
        trainer = Trainer(model, features, collate, cfg, out, callbacks=[mark])
        wall = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - wall
    st = trainer.state
    steady = None
    if "warm" in marks and st.train_seconds > marks["warm"][0]:
        steady = (st.real_tokens - marks["warm"][1]) / (st.train_seconds - marks["warm"][0])
    # every step takes `batch` sequences and the run is one epoch, so all lengths are trained on
    mean_len = st.real_tokens / (st.global_step * batch)
    fpt = flops_per_token(n_params, arch["num_hidden_layers"], mean_len, arch["hidden_size"])
    best = steady if steady is not None else result.tokens_per_s
    mfu = best * fpt / (args.peak_tflops * 1e12)
    report = {
        "model": "tiny" if args.tiny else "megatron-bert-345m",
        "attention": args.attention,
        "compile": args.compile,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "steps": st.global_step,
        "batch_size": batch,
        "precision": result.run_info["precision"]["name"],
        "optimizer": result.run_info["optimizer"]["name"],
        "apex": result.run_info["apex"]["detail"],
        "lengths": length_source,
        "mean_real_seq_len": mean_len,
        "real_tokens": st.real_tokens,
        "padded_tokens": st.padded_tokens,
        "tokens_per_s": result.tokens_per_s,
        "steady_tokens_per_s": steady,
        "warmup_steps_excluded": warm,
        "non_embedding_params": n_params,
        "flops_per_token": fpt,
        "peak_tflops": args.peak_tflops,
        "mfu": mfu,
        "wall_s": wall,
        "final_loss": st.train_log[-1]["loss"] if st.train_log else None,
    }
    if device.type == "cuda":
        report["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    print(
        f"{report['model']} on {report['device']}, {report['precision']}, {report['optimizer']}: "
        f"{result.tokens_per_s:.0f} real tokens/s overall, "
        f"{(steady or 0):.0f} after {warm} warmup steps; mean real length {mean_len:.1f}; "
        f"{fpt / 1e9:.3f} GFLOP/token; MFU {100 * mfu:.1f}% of {args.peak_tflops:.0f} TFLOP/s"
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
