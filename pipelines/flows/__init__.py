"""Prefect flows: ingest, preprocess, annotate, train and the end-to-end run, with what they share
(task runners, collecting mapped shard tasks, run summaries and artifacts, the annotation report).

Each flow only wires library functions from `corpora` and `biomodels` through the tasks in `tasks/`.
The names below import their module (and Prefect) on first use (`corpora.lazy_exports` says why):
the CLI reads `runners` for its options without loading Prefect, which also configures logging.
"""

from corpora.lazy_exports import lazy_exports

_EXPORTS = {
    "annotate_flow": "annotate",
    "ingest_flow": "ingest",
    "preprocess_flow": "preprocess",
    "run_flow": "run",
    "task_runner": "runners",
    "train_flow": "train",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
