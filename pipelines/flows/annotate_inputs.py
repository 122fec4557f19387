"""Where `annotate_flow` takes its documents from, and whether a rerun has anything to do.

Kept apart from the flow (no Prefect import), so `biomed annotate` can answer "nothing to do"
before Prefect and its temporary API server start.
"""

from __future__ import annotations

from pathlib import Path

from biomodels.inference.annotate_shard import unchanged_annotations
from biomodels.models.shipped import resolve_model_path
from corpora.dataset.ingest import unchanged_inputs
from corpora.dataset.store import DatasetStore
from corpora.preprocess.shard import unchanged_shards


def is_dataset(path: str | Path) -> bool:
    return (Path(path) / "data").is_dir() and (Path(path) / "_shards").is_dir()


def is_preprocessed(dataset: str | Path) -> bool:
    entries = DatasetStore(dataset).entries()
    return bool(entries) and all("preprocess" in e.producer for e in entries.values())


def unchanged_run(
    inputs: list[str], out: str, ner: str, re: str | None = None, precision: str = "auto"
) -> list[str] | None:
    """The annotated shards when `annotate_flow(inputs, out, ner, re)` would skip everything (its
    ingest and preprocess steps included); None when there is work. Starts no flow."""
    ner, re = str(resolve_model_path(ner, "ner")), resolve_model_path(re, "re")
    work = Path(out) / "_work"
    if len(inputs) == 1 and is_dataset(inputs[0]):
        dataset = inputs[0]
    elif unchanged_inputs(inputs, work / "ingested"):
        dataset = str(work / "ingested")
    else:
        return None
    if not is_preprocessed(dataset):
        if not unchanged_shards(dataset, work / "preprocessed"):
            return None
        dataset = str(work / "preprocessed")
    return unchanged_annotations(dataset, out, ner, re, precision)
