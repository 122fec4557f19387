"""torch.compile of the encoder: a missing C++ compiler is one clear error, inference compiles
with dynamic shapes and runs under freezing only inside `inference_settings`."""

from __future__ import annotations

import re

import pytest
import torch
import torch._inductor.config as inductor_config

from biomodels.models.compilation import compile_encoder, inference_settings, require_cpp_compiler
from biomodels.models.encoder import TokenClassifier
from biomodels.models.presets import scratch_config
from corpora.errors import ConfigError

MISSING = "no-such-c++-compiler-here"


@pytest.fixture
def no_compiler():
    with inductor_config.patch({"cpp.cxx": (None, MISSING)}):
        yield


def test_a_cpu_without_a_compiler_is_refused_naming_what_was_tried(no_compiler) -> None:
    with pytest.raises(ConfigError, match=f"needs a C\\+\\+ compiler.*tried: {re.escape(MISSING)}.*without --compile"):
        require_cpp_compiler(torch.device("cpu"))
    model = TokenClassifier(scratch_config(1, 32, 2, 100))
    with pytest.raises(ConfigError):
        compile_encoder(model, torch.device("cpu"))
    assert "_compiled_call_impl" not in vars(model.bert) or model.bert._compiled_call_impl is None


def test_a_gpu_needs_no_cpp_compiler(no_compiler) -> None:
    require_cpp_compiler(torch.device("cuda"))  # inductor generates Triton kernels there


def test_this_machine_has_one() -> None:
    require_cpp_compiler(torch.device("cpu"))  # the compile tests elsewhere rely on it


def test_compile_keeps_parameter_names_and_freezing_stays_scoped() -> None:
    model = TokenClassifier(scratch_config(1, 32, 2, 100)).eval()
    names = [n for n, _ in model.named_parameters()]
    assert compile_encoder(model, torch.device("cpu"), inference=True)
    assert model.bert._compiled_call_impl is not None
    assert [n for n, _ in model.named_parameters()] == names  # checkpoints and saved weights unchanged
    assert not inductor_config.freezing
    with inference_settings(True):
        assert inductor_config.freezing
    assert not inductor_config.freezing
    with inference_settings(False):
        assert not inductor_config.freezing
