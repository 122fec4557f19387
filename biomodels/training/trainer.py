"""The one training loop for NER, RE and QA fine-tuning.

Any model whose forward takes the collated batch and returns an output with `.loss` trains here:
token classification (NER), sequence classification (RE), span extraction (QA). The loop brings
mixed precision (bf16 autocast, or fp16 with a GradScaler), the fused AdamW, gradient
accumulation, clipping, warmup with linear decay, periodic evaluation with best-model keeping and
early stopping, checkpoints that resume to bit-identical weights, and DDP under torchrun.

Loss normalisation: each optimizer step's gradient is the mean loss over every labelled item in
the global step (tokens with a label for NER, examples otherwise), however those items are split
across accumulation micro-batches and ranks. So 2 ranks x batch 4, or 2 micro-batches of 4, give
the same update as one batch of 8, which a per-micro-batch mean would not for token losses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from biomodels.data.batching import LengthGroupedSampler, count_tokens
from biomodels.models.compilation import compile_encoder
from biomodels.training import distributed as D
from biomodels.training.config import GENERAL_DEFAULTS, TrainConfig
from biomodels.training.precision import apex_status, build_optimizer, resolve_precision, swap_fused_layernorm
from biomodels.training.state import (
    CHECKPOINT_DIR,
    STATE_FILE,
    atomic_replace_dir,
    capture_rng_state,
    find_checkpoint,
    load_weights,
    read_checkpoint,
    restore_rng_state,
    save_weights,
    seed_everything,
    write_checkpoint,
)
from corpora.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)

EvalFn = Callable[[nn.Module], Mapping[str, float]]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training: raised after the step in progress, once a resumable
    checkpoint of that step is written (a second signal stops at once, without one)."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"training interrupted at step {step}")
        self.step = step
        self.checkpoint = checkpoint
        self.resume_hint = f"training stopped at step {step}; a resumable checkpoint is in {checkpoint}"


@dataclass
class StepInfo:
    """What a callback sees after each optimizer step."""

    global_step: int
    epoch: int
    total_steps: int


@dataclass
class TrainResult:
    global_step: int
    total_steps: int
    best_metric: float | None
    best_step: int | None
    best_dir: Path | None
    final_metrics: dict[str, float]
    train_log: list[dict[str, Any]]
    eval_log: list[dict[str, Any]]
    stopped_early: bool
    tokens_per_s: float
    real_tokens: int
    padded_tokens: int
    metrics_path: Path | None
    plot_path: Path | None
    run_info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    """The loop's position and history; saved in every checkpoint."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False
    last_eval_step: int | None = None
    real_tokens: int = 0
    padded_tokens: int = 0
    train_seconds: float = 0.0
    train_log: list[dict[str, Any]] = field(default_factory=list)
    eval_log: list[dict[str, Any]] = field(default_factory=list)
    run_key: dict[str, Any] = field(default_factory=dict)


def linear_schedule(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warmup from 0 to 1, then linear decay to 0 at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


class _MicroBatches:
    """Batch sampler for the DataLoader: each step batch of `steps`, cut into micro-batches."""

    def __init__(self, steps: LengthGroupedSampler, micro_batch_size: int) -> None:
        self.steps = steps
        self.size = micro_batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for step_batch in self.steps:
            for start in range(0, len(step_batch), self.size):
                yield step_batch[start : start + self.size]

    def __len__(self) -> int:
        return sum(math.ceil(len(b) / self.size) for b in self.steps)


def count_items(batch: Mapping[str, torch.Tensor], label_pad: int = -100) -> int:
    """Labelled items in a batch: non-ignored label tokens for token labels, else examples."""
    labels = batch.get("labels")
    if labels is not None and labels.dim() == 2:
        return int((labels != label_pad).sum())
    return int(batch["input_ids"].shape[0])


class Trainer:
    """Fine-tune `model` on `train_features` (dicts collated by `collate`) as `config` says."""

    def __init__(
        self,
        model: nn.Module,
        train_features: Sequence[Mapping[str, Any]],
        collate: Callable[[list[Mapping[str, Any]]], dict[str, torch.Tensor]],
        config: TrainConfig,
        out_dir: str | Path,
        eval_fn: EvalFn | None = None,
        callbacks: Sequence[Callable[[StepInfo], None]] = (),
        *,
        metric: str = "f1",
        greater_is_better: bool = True,
    ) -> None:
        """`config` as `TrainConfig.resolved(task)` gives it (a learning rate is needed); `eval_fn`
        returns metrics that include `metric`, which picks the best evaluation."""
        config.validate()
        if config.learning_rate is None:
            raise ConfigError(
                "Trainer: learning_rate is not set (TrainConfig.resolved(task) fills in the task default)"
            )
        if not train_features:
            raise ConfigError("Trainer: no training features")
        self.model = model
        self.features = train_features
        self.collate = collate
        self.config = config
        self.eval_fn = eval_fn
        self.callbacks = tuple(callbacks)
        self.out_dir = Path(out_dir)
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.keep_best = config.load_best and eval_fn is not None

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg = self.config
        self.dist = D.init_distributed(None if cfg.device is None else torch.device(cfg.device).type)
        if cfg.device is not None:
            self.device = torch.device(cfg.device)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", self.dist.local_rank)
        else:
            self.device = torch.device("cpu")
        seed_everything(cfg.seed)
        self.model.to(self.device)
        self.apex = apex_status()
        self.swapped_layernorms = (
            swap_fused_layernorm(self.model, self.apex) if cfg.fused_layernorm and self.device.type == "cuda" else 0
        )
        self.compiled = cfg.compile and compile_encoder(self.model, self.device)
        self.plan = resolve_precision(cfg.precision, self.device)
        logger.info(
            "device %s, precision %s (scaler: %s), %s, %d LayerNorms fused",
            self.device,
            self.plan.name,
            self.plan.use_scaler,
            self.apex.detail,
            self.swapped_layernorms,
        )
        self.optimizer, self.optimizer_info = build_optimizer(
            self.model, cfg.learning_rate, cfg.weight_decay, self.device, self.apex
        )
        lengths = [len(f["input_ids"]) for f in self.features]
        # one sampler batch = one optimizer step's share of this rank, cut into micro-batches below
        self.sampler = LengthGroupedSampler(
            lengths if cfg.group_by_length else [0] * len(lengths),
            cfg.batch_size * cfg.grad_accum,
            seed=cfg.seed,
            shuffle=True,
            world_size=self.dist.world_size,
            rank=self.dist.rank,
            mega_batch_mult=cfg.mega_batch_mult,
        )
        self.steps_per_epoch = len(self.sampler)
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"Trainer: {len(self.features)} features give no batch for {self.dist.world_size} processes"
            )
        epochs = cfg.epochs if cfg.epochs is not None else GENERAL_DEFAULTS["epochs"]
        self.total_steps = cfg.max_steps or epochs * self.steps_per_epoch
        warmup = math.ceil(cfg.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_schedule(self.total_steps, warmup))
        self.scaler = self.plan.make_scaler()
        generator = torch.Generator()
        generator.manual_seed(cfg.seed)  # a private generator: loaders never draw from global RNG
        self.loader = DataLoader(
            self.features,  # type: ignore[arg-type]
            batch_sampler=_MicroBatches(self.sampler, cfg.batch_size),
            collate_fn=self.collate,
            num_workers=cfg.num_workers,
            generator=generator,
            pin_memory=self.device.type == "cuda",
        )
        self.state = _State(run_key=self._run_key())
        self.pending = {"loss": 0.0, "items": 0, "real": 0, "seconds": 0.0, "steps": 0}
        self._resumed_step: int | None = None

    def _run_key(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "global_batch": cfg.batch_size * cfg.grad_accum * self.dist.world_size,
            "world_size": self.dist.world_size,
            "grad_accum": cfg.grad_accum,
            "seed": cfg.seed,
            "num_features": len(self.features),
            "total_steps": self.total_steps,
        }

    def _wrap(self) -> nn.Module:
        if not self.dist.enabled:
            return self.model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    # ----------------------------------------------------------------- resume
    def _maybe_resume(self) -> None:
        ckpt = find_checkpoint(self.out_dir)
        if ckpt is None:
            logger.info("resume requested but %s holds no checkpoint; starting fresh", self.out_dir)
            return
        saved = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
        saved_key, key = saved.get("run_key", {}), self.state.run_key
        for name in ("global_batch", "world_size", "grad_accum", "seed", "num_features"):
            if saved_key.get(name) != key[name]:
                raise ConfigError(
                    f"{ckpt}: checkpoint was written with {name}={saved_key.get(name)!r}, this run "
                    f"has {key[name]!r}; an exact resume needs the same value"
                )
        if saved_key.get("total_steps") != key["total_steps"]:
            logger.warning(
                "%s: total steps changed from %s to %s; the LR schedule changes",
                ckpt,
                saved_key.get("total_steps"),
                key["total_steps"],
            )
        # checked before loading, so a refused resume leaves the model and optimizer untouched
        state, rng_states = read_checkpoint(
            ckpt, self.model, self.optimizer, self.scheduler, self.scaler, map_location=self.device
        )
        self.state = _State(**state)
        self.state.run_key = key
        self._resumed_step = self.state.global_step
        mine = rng_states[self.dist.rank]
        self.pending = mine["pending"]
        restore_rng_state(mine["rng"])
        logger.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            ckpt,
            self.state.global_step,
            self.state.epoch,
            self.state.step_in_epoch,
        )

    def _save_checkpoint(self) -> None:
        mine = {"rng": capture_rng_state(), "pending": dict(self.pending)}
        rng_states = D.all_gather_object(mine, self.dist)
        if self.dist.is_main:
            write_checkpoint(
                self.out_dir / CHECKPOINT_DIR,
                self.model,
                self.optimizer,
                self.scheduler,
                self.scaler,
                asdict(self.state),
                rng_states,
            )
        D.barrier(self.dist)

    # ------------------------------------------------------------------- step
    def _train_step(self, wrapped: nn.Module, window: list[dict[str, torch.Tensor]]) -> None:
        counts = [(count_items(b),) + count_tokens(b) for b in window]
        totals = torch.tensor(
            [sum(c[i] for c in counts) for i in range(3)],
            dtype=torch.float64,
            device=self.device if self.dist.enabled else "cpu",
        )
        D.all_reduce_sum(totals, self.dist)
        global_items, global_real, global_padded = (int(x) for x in totals.tolist())
        world = self.dist.world_size
        loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        for i, batch in enumerate(window):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            last = i == len(window) - 1
            sync = contextlib.nullcontext() if (last or not self.dist.enabled) else wrapped.no_sync()
            with sync:
                with self.plan.autocast():
                    out = wrapped(**batch)
                loss = getattr(out, "loss", None)
                if loss is None:
                    raise ModelError(
                        f"{type(self.model).__name__} returned no loss; the batch needs labels (keys: {sorted(batch)})"
                    )
                items = counts[i][0]
                if items == 0:  # no labelled token: the model's mean is NaN; contribute zero
                    logits = out.logits if hasattr(out, "logits") else out[1]
                    weighted = logits.float().sum() * 0.0
                else:
                    weighted = loss.float() * (items * world / max(global_items, 1))
                    loss_sum += loss.detach().float() * items
                if self.scaler is not None:
                    self.scaler.scale(weighted).backward()
                else:
                    weighted.backward()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.config.max_grad_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.pending_loss_tensor = self.pending_loss_tensor + loss_sum
        self.pending["items"] += global_items
        self.pending["real"] += global_real
        self.state.real_tokens += global_real
        self.state.padded_tokens += global_padded

    # ------------------------------------------------------------- reporting
    def _log(self, bar: Any) -> None:
        loss_total = D.all_reduce_sum(self.pending_loss_tensor.detach().clone(), self.dist)
        loss_total = float(loss_total) + self.pending["loss"]
        p = self.pending
        row = {
            "step": self.state.global_step,
            "epoch": self.state.epoch,
            "loss": loss_total / max(p["items"], 1),
            "lr": self.scheduler.get_last_lr()[0],
            "tokens_per_s": p["real"] / p["seconds"] if p["seconds"] > 0 else 0.0,
        }
        self.state.train_log.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
        logger.info(
            "step %d loss %.4f lr %.3g real tokens/s %.0f", row["step"], row["loss"], row["lr"], row["tokens_per_s"]
        )
        self._reset_pending()

    def _reset_pending(self) -> None:
        self.pending = {"loss": 0.0, "items": 0, "real": 0, "seconds": 0.0, "steps": 0}
        self.pending_loss_tensor = torch.zeros((), dtype=torch.float32, device=self.device)

    def _flush_pending_loss(self) -> None:
        """Move the on-device loss sum into `pending` (rank-local) so a checkpoint holds it."""
        self.pending["loss"] += float(D.all_reduce_sum(self.pending_loss_tensor.detach().clone(), self.dist))
        self.pending_loss_tensor = torch.zeros((), dtype=torch.float32, device=self.device)

    def _evaluate(self) -> dict[str, float]:
        assert self.eval_fn is not None
        metrics: dict[str, float] | None = None
        if self.dist.is_main:
            self.model.eval()
            with torch.no_grad(), self.plan.autocast():
                metrics = {k: float(v) for k, v in self.eval_fn(self.model).items()}
            self.model.train()
        metrics = D.broadcast_object(metrics, self.dist)
        assert metrics is not None
        if self.metric not in metrics:
            raise ConfigError(
                f"eval_fn returned {sorted(metrics)}; the configured metric {self.metric!r} is not among them"
            )
        st = self.state
        st.last_eval_step = st.global_step
        st.eval_log.append({"step": st.global_step, "epoch": st.epoch, **metrics})
        value = metrics[self.metric]
        better = st.best_metric is None or (
            value > st.best_metric if self.greater_is_better else value < st.best_metric
        )
        logger.info(
            "step %d dev %s%s",
            st.global_step,
            " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float)),
            " (best so far)" if better else "",
        )
        if better:
            st.best_metric, st.best_step, st.bad_evals = value, st.global_step, 0
            if self.dist.is_main:
                atomic_replace_dir(lambda tmp: save_weights(self.model, tmp), self.out_dir / "best")
            D.barrier(self.dist)
        else:
            st.bad_evals += 1
            if self.config.patience and st.bad_evals >= self.config.patience:
                st.stopped_early = True
                logger.info(
                    "early stopping at step %d: %s did not improve for %d evaluations",
                    st.global_step,
                    self.metric,
                    st.bad_evals,
                )
        return metrics

    # ------------------------------------------------------------------- loop
    def train(self, resume: bool = False) -> TrainResult:
        """Run training to the end (or early stop) and return what happened; with `resume`, from
        the checkpoint in `out_dir` when there is one."""
        self._setup()
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._reset_pending()
            if resume:
                self._maybe_resume()
            wrapped = self._wrap()
            self.model.train()
            with self._stop_on_signal():
                return self._loop(wrapped)
        finally:
            D.shutdown(self.dist)

    @contextlib.contextmanager
    def _stop_on_signal(self) -> Iterator[None]:
        """SIGINT/SIGTERM ask the loop to stop after the current step (and checkpoint it); a second
        signal interrupts at once. Only in one process on the main thread: under torchrun every rank
        gets the signal, and ranks that stopped at different steps could not write one checkpoint."""
        self._stop_requested = False
        if self.dist.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            logger.warning("stopping after this step and saving a checkpoint (signal again to stop at once)")

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, request_stop)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self, wrapped: nn.Module) -> TrainResult:
        cfg, st = self.config, self.state
        show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
        bar = tqdm(
            total=self.total_steps,
            initial=st.global_step,
            unit="step",
            disable=not (show and self.dist.is_main),
            dynamic_ncols=True,
        )
        last_saved = self._resumed_step
        last_saved_at = time.monotonic()
        final_metrics: dict[str, float] = {}
        with bar:
            while st.global_step < self.total_steps and not st.stopped_early:
                self.sampler.set_epoch(st.epoch, skip_batches=st.step_in_epoch)
                micro_counts = [math.ceil(len(b) / cfg.batch_size) for b in self.sampler]
                batches = iter(self.loader)
                for n_micro in micro_counts:
                    if st.global_step >= self.total_steps or st.stopped_early:
                        break
                    started = time.perf_counter()
                    window = list(islice(batches, n_micro))
                    self._train_step(wrapped, window)
                    st.step_in_epoch += 1
                    st.global_step += 1
                    epoch_end = st.step_in_epoch >= self.steps_per_epoch
                    log_now = st.global_step % cfg.log_every == 0 or st.global_step == self.total_steps
                    eval_due = self.eval_fn is not None and (
                        (cfg.eval_every is not None and st.global_step % cfg.eval_every == 0)
                        or (cfg.eval_every is None and epoch_end)
                    )
                    save_due = bool(cfg.save_every) and st.global_step % cfg.save_every == 0
                    if cfg.save_minutes and log_now:  # rank 0's clock decides, so all ranks save together
                        late = time.monotonic() - last_saved_at >= 60 * cfg.save_minutes
                        save_due = bool(D.broadcast_object(late, self.dist)) or save_due
                    if log_now or eval_due or save_due:
                        self._sync()  # queued GPU work belongs to training time, not to eval
                    elapsed = time.perf_counter() - started
                    self.pending["seconds"] += elapsed
                    self.pending["steps"] += 1
                    st.train_seconds += elapsed
                    bar.update(1)
                    if log_now:
                        self._log(bar)
                    if eval_due:
                        final_metrics = self._evaluate()
                    if save_due:
                        self._flush_pending_loss()
                        self._save_checkpoint()
                        last_saved, last_saved_at = st.global_step, time.monotonic()
                    info = StepInfo(st.global_step, st.epoch, self.total_steps)
                    for callback in self.callbacks:
                        callback(info)
                    if self._stop_requested:  # saved as a periodic checkpoint would be: resumes exactly
                        self._flush_pending_loss()
                        self._save_checkpoint()
                        raise TrainingInterrupted(st.global_step, self.out_dir / CHECKPOINT_DIR)
                if st.step_in_epoch >= self.steps_per_epoch:
                    st.epoch += 1
                    st.step_in_epoch = 0
        if self.eval_fn is not None:
            if st.last_eval_step == st.global_step and st.eval_log:
                final_metrics = {k: v for k, v in st.eval_log[-1].items() if k not in ("step", "epoch")}
            else:
                final_metrics = self._evaluate()
        if cfg.save_every and last_saved != st.global_step:
            self._flush_pending_loss()
            self._save_checkpoint()
        best_dir = self.out_dir / "best" if st.best_step is not None else None
        if self.keep_best and best_dir is not None:
            load_weights(self.model, best_dir)
        return self._finish(final_metrics, best_dir)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _finish(self, final_metrics: dict[str, float], best_dir: Path | None) -> TrainResult:
        st = self.state
        tokens_per_s = st.real_tokens / st.train_seconds if st.train_seconds > 0 else 0.0
        run_info = {
            "precision": self.plan.as_dict(),
            "optimizer": self.optimizer_info,
            "apex": self.apex.as_dict(),
            "fused_layernorms": self.swapped_layernorms,
            "compiled": self.compiled,
            "attention": getattr(getattr(self.model, "config", None), "biomed_attention", None),
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "torch": torch.__version__,
        }
        metrics_path = plot_path = None
        if self.dist.is_main:
            payload = {
                "global_step": st.global_step,
                "total_steps": self.total_steps,
                "epochs_completed": st.epoch,
                "metric": self.metric,
                "greater_is_better": self.greater_is_better,
                "best_metric": st.best_metric,
                "best_step": st.best_step,
                "stopped_early": st.stopped_early,
                "final_metrics": final_metrics,
                "tokens_per_s": tokens_per_s,
                "real_tokens": st.real_tokens,
                "padded_tokens": st.padded_tokens,
                "train_seconds": st.train_seconds,
                "history": {"train": st.train_log, "eval": st.eval_log},
                "config": asdict(self.config),
                **run_info,
            }
            metrics_path = self.out_dir / "metrics.json"
            tmp = metrics_path.with_name(f"metrics.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
            os.replace(tmp, metrics_path)
            if self.config.plot and st.train_log:
                from biomodels.training.plots import plot_training  # matplotlib only when used

                plot_path = plot_training(st.train_log, st.eval_log, self.metric, self.out_dir / "training.png")
        return TrainResult(
            global_step=st.global_step,
            total_steps=self.total_steps,
            best_metric=st.best_metric,
            best_step=st.best_step,
            best_dir=best_dir,
            final_metrics=final_metrics,
            train_log=st.train_log,
            eval_log=st.eval_log,
            stopped_early=st.stopped_early,
            tokens_per_s=tokens_per_s,
            real_tokens=st.real_tokens,
            padded_tokens=st.padded_tokens,
            metrics_path=metrics_path,
            plot_path=plot_path,
            run_info=run_info,
        )
