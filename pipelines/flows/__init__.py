"""Prefect flows: ingest, preprocess, annotate, train and the end-to-end run, with what they share
(task runners, collecting mapped shard tasks, run summaries and artifacts, the annotation report).

Each flow only wires library functions from `corpora` and `biomodels` through the tasks in `tasks/`.
"""

from pipelines.flows.annotate import annotate_flow
from pipelines.flows.ingest import ingest_flow
from pipelines.flows.preprocess import preprocess_flow
from pipelines.flows.run import run_flow
from pipelines.flows.runners import task_runner
from pipelines.flows.train import train_flow

__all__ = ["annotate_flow", "ingest_flow", "preprocess_flow", "run_flow", "task_runner", "train_flow"]
