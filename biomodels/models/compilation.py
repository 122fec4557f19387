"""`torch.compile` of our encoder, for training and for inference, with its requirements checked
before a run starts: a CPU without a C++ compiler gets one clear error at start-up instead of an
inductor traceback at the first batch (inductor builds C++ kernels on a CPU).

Training compiles the encoder as it is. Inference compiles it with dynamic shapes (every batch has
its own width) and runs it under `inference_settings`, inductor's freezing: the weights become
constants of the compiled graph, so a CPU runs the linear layers on oneDNN with weights packed once
(benchmarks/RESULTS.md, Annotate). Freezing applies only to graphs compiled without gradients, and
it is switched on around the caller's forward passes, not for the process; a frozen model must not
have its weights changed afterwards.

Tested in `tests/biomodels/models/test_compilation.py`.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from corpora.errors import ConfigError

log = logging.getLogger(__name__)


def require_cpp_compiler(device: torch.device) -> None:
    """Raise ConfigError when `device` is a CPU and inductor finds no working C++ compiler."""
    if device.type != "cpu":
        return
    import torch._inductor.config as inductor_config
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler as error:
        tried = ", ".join(c for c in inductor_config.cpp.cxx if c) or "none"
        raise ConfigError(
            f"--compile on a CPU needs a C++ compiler (torch.compile builds C++ kernels) and none runs here "
            f"(tried: {tried}); install one (Debian/Ubuntu: apt-get install g++) or set CXX, or run without "
            "--compile"
        ) from error


def compile_encoder(model: nn.Module, device: torch.device, *, inference: bool = False) -> bool:
    """Compile `model.bert` (or `model`) in place: `nn.Module.compile` keeps the parameter names, so
    checkpoints and saved weights stay as they are; the heads are small and stay eager."""
    require_cpp_compiler(device)
    target = getattr(model, "bert", model)
    if inference:
        target.compile(dynamic=True)
    else:
        target.compile()
    log.info("compiled %s with torch.compile (the first batches include compiling)", type(target).__name__)
    return True


def inference_settings(compiled: bool) -> contextlib.AbstractContextManager[object]:
    """Inductor's freezing while a compiled model runs forward passes (it compiles on its first ones)."""
    if not compiled:
        return contextlib.nullcontext()
    import torch._inductor.config as inductor_config

    return inductor_config.patch(freezing=True)


__all__ = ["compile_encoder", "inference_settings", "require_cpp_compiler"]
