"""Checkpoints that resume exactly: weights, optimizer, schedule, scaler, data position and RNG.

A run killed at step k and resumed must end with the same weights as a run never interrupted. That
needs everything that influences later steps: the optimizer moments, the LR schedule position, the
GradScaler's scale, where in which epoch the sampler stood, and the state of every random number
generator that dropout or anything else draws from (python, numpy, torch CPU and each CUDA device,
per rank under DDP). Directories are written beside the target and renamed into place, so a kill
during a save leaves the previous checkpoint whole.

Tested in `tests/biomodels/training/test_trainer.py`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from corpora.errors import ModelError
from corpora.file_modes import apply_umask

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.json"
_OLD_SUFFIX = ".old"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and all CUDA devices) for repeatable runs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def capture_rng_state() -> dict[str, Any]:
    """Every RNG state, as tensors and plain numbers (loadable with weights_only=True)."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python_version": version,
        "python_state": torch.tensor(internal, dtype=torch.int64),
        "python_gauss": gauss,
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_cached_gaussian": float(np_state[4]),
        "torch_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    random.setstate(
        (state["python_version"], tuple(int(x) for x in state["python_state"].tolist()), state["python_gauss"])
    )
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_has_gauss"],
            state["numpy_cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        cuda_states = state["torch_cuda"]
        if len(cuda_states) != torch.cuda.device_count():
            raise ModelError(
                f"checkpoint holds RNG states for {len(cuda_states)} CUDA devices, "
                f"this machine has {torch.cuda.device_count()}"
            )
        torch.cuda.set_rng_state_all(cuda_states)


def save_weights(model: nn.Module, directory: Path) -> None:
    """Model weights as safetensors (plus config.json for HuggingFace models) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / "model.safetensors"))
    apply_umask(directory / "model.safetensors")  # safetensors writes 0600
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_file"):
        config.to_json_file(str(directory / "config.json"))


def load_weights(model: nn.Module, directory: Path) -> None:
    path = directory / "model.safetensors"
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint has no model weights")
    missing, unexpected = load_model(model, str(path), strict=True)
    if missing or unexpected:  # strict=True raises already; kept for clarity
        raise ModelError(f"{path}: missing {missing}, unexpected {unexpected}")


def atomic_replace_dir(build: Any, target: Path) -> None:
    """Write a directory by calling `build(tmp_dir)`, then move it onto `target` atomically.

    The old target is renamed aside first and deleted only after the new one is in place, so at
    every moment one complete directory exists (`find_checkpoint` also looks for the aside copy).
    """
    target = Path(target)
    remove_stale_tmp_dirs(target)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    old = target.with_name(target.name + _OLD_SUFFIX)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def remove_stale_tmp_dirs(target: Path) -> list[Path]:
    """Delete `<target>.tmp-<pid>` folders whose writer is no longer running; the ones removed.

    A process killed while saving (kill -9, out of memory) leaves its half-written folder behind,
    named after its pid; nothing else would ever remove it. A folder of a live pid (another rank,
    another run) is left alone.
    """
    removed = []
    target = Path(target)
    if not target.parent.is_dir():
        return removed
    for path in target.parent.glob(f"{target.name}.tmp-*"):
        pid = path.name.rsplit("-", 1)[1]
        if path.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def find_checkpoint(out_dir: Path) -> Path | None:
    """The last complete checkpoint directory in `out_dir`, or None (stale tmp folders are removed)."""
    remove_stale_tmp_dirs(Path(out_dir) / CHECKPOINT_DIR)
    for name in (CHECKPOINT_DIR, CHECKPOINT_DIR + _OLD_SUFFIX):
        candidate = Path(out_dir) / name
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def write_checkpoint(
    target: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    state: dict[str, Any],
    rng_states: list[dict[str, Any]],
) -> None:
    """Atomically write a full training checkpoint; `rng_states` holds one entry per rank."""

    def build(tmp: Path) -> None:
        save_weights(model, tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        torch.save(rng_states, tmp / "rng.pt")
        # the state file is written last: its presence marks the directory complete
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")

    atomic_replace_dir(build, target)


def read_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    map_location: torch.device | str = "cpu",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load a checkpoint written by `write_checkpoint` into the given objects.

    Returns the trainer state dict and the per-rank RNG states (restore them last, just before
    training continues, so nothing after loading draws from them).
    """
    directory = Path(directory)
    state_path = directory / STATE_FILE
    if not state_path.is_file():
        raise ModelError(f"{directory}: not a complete checkpoint (no {STATE_FILE})")
    state = json.loads(state_path.read_text(encoding="utf-8"))
    load_weights(model, directory)
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", map_location=map_location, weights_only=True))
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=True))
    scaler_path = directory / "scaler.pt"
    if scaler is not None:
        if not scaler_path.is_file():
            raise ModelError(f"{directory}: run uses fp16 loss scaling but the checkpoint has no scaler.pt")
        scaler.load_state_dict(torch.load(scaler_path, weights_only=True))
    rng_states = torch.load(directory / "rng.pt", weights_only=True)
    return state, rng_states
