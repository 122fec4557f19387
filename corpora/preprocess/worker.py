"""The worker side of the preprocessing pool: build the pipeline once, then annotate chunks.

This module is what a worker process imports to run its initializer, so it imports nothing heavy
at the top: spaCy (and, through thinc, torch) load only inside `start_worker`, after torch is
hidden. Imports inside functions here are deliberate; keep them there.

Tested in `tests/corpora/preprocess/test_pool.py`.
"""

from __future__ import annotations

import sys
from typing import Any

_WORKER: dict[str, Any] = {}  # in a worker process: its pipeline and batch size


def start_worker(spacy_model: str | None, batch_size: int, expected: str | None) -> None:
    """Executor initializer: build the pipeline once per process, checked against the caller's."""
    block_torch = spacy_model is None and "torch" not in sys.modules
    if block_torch:
        # thinc imports torch when it can (seconds per process); the rule-based pipeline never uses
        # it, so hide it while spaCy is imported (this worker process only), then unhide it.
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from corpora.preprocess.chunks import annotate_tasks
        from corpora.preprocess.pipeline import build_pipeline, pipeline_fingerprint
    finally:
        if block_torch:
            del sys.modules["torch"]
    from corpora.errors import ConfigError

    nlp = build_pipeline(spacy_model)
    found = pipeline_fingerprint(nlp)["hash"]
    if expected is not None and found != expected:
        raise ConfigError(f"worker pipeline fingerprint {found} differs from the caller's {expected}")
    _WORKER.update(nlp=nlp, batch_size=batch_size, annotate=annotate_tasks)


def annotate_chunk(tasks: list) -> list:
    """`annotate_tasks` in this worker's pipeline: passage texts in, plain offsets out."""
    return _WORKER["annotate"](_WORKER["nlp"], tasks, _WORKER["batch_size"])
