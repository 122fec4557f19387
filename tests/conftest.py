"""Shared fixtures: sample paths and one Prefect test harness per test session (startup is slow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for the whole session; tests that run flows request this fixture."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny NER (Chemical/Disease) and CID RE models trained for a few steps on the BC5CDR samples.

    For plumbing tests (flows, offsets, skipping), not accuracy: two layers, hidden 64. The NER model
    trains long enough (120 steps, about 15 s) to predict entities, dev F1 about 0.13.
    """
    from biomodels.training.api import train

    root = tmp_path_factory.mktemp("tiny-models")
    small = {
        "layers": 2,
        "hidden": 64,
        "heads": 2,
        "vocab_size": 2000,
        "batch_size": 16,
        "max_steps": 12,
        "eval_every": 12,
        "seed": 3,
    }
    bc5 = SAMPLES / "bc5cdr"
    train(
        "ner",
        "scratch",
        [str(bc5 / "BC5CDR-IOB_train_sample.tsv")],
        [str(bc5 / "CDR_dev_sample.PubTator.txt")],
        root / "ner",
        {**small, "learning_rate": 3e-3, "max_steps": 120, "eval_every": 120},  # finds some entities
    )
    train(
        "re",
        "scratch",
        [str(bc5 / "CDR_train_sample.PubTator.txt")],
        [str(bc5 / "CDR_dev_sample.PubTator.txt")],
        root / "re",
        {**small, "relation_task": "bc5cdr-cid", "max_length": 96},
    )
    return {"ner": str(root / "ner"), "re": str(root / "re")}
