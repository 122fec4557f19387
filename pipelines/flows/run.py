"""The end-to-end run (`make run`, `biomed run`, `biomed serve`): ingest, preprocess, models, annotate.

Tested in `tests/pipelines/cli/test_run.py`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from corpora.samples_path import SAMPLES_DIR
from pipelines.flows.annotate import annotate_flow
from pipelines.flows.ingest import ingest_flow
from pipelines.flows.preprocess import preprocess_flow
from pipelines.flows.reporting import RunSummary
from tasks.demo_models import demo_model_task

DEFAULT_INPUTS = [str(SAMPLES_DIR / "pubmed")]


@flow(name="end-to-end")
def run_flow(
    out: str,
    inputs: list[str] | None = None,
    ner: str | None = None,
    re: str | None = None,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, object]:
    """Every step over `inputs` (default: the bundled PubMed XML samples), writing under `out`:

    `dataset/` (ingested), `preprocessed/` (sentences, tokens, abbreviations), `models/` (demo
    models trained on the bundled BC5CDR samples when --ner/--re are not given) and `annotated/`
    (entities and relations with scores, report.md, scores.png). Each step skips what is unchanged.
    """
    root = Path(out)
    log = get_run_logger()
    ingest: RunSummary = ingest_flow(inputs or DEFAULT_INPUTS, str(root / "dataset"), progress=progress)
    pre: RunSummary = preprocess_flow(
        str(root / "dataset"), str(root / "preprocessed"), workers=workers, progress=progress
    )
    models: dict[str, dict] = {}
    if ner is None:
        models["ner"] = demo_model_task("ner", str(root / "models" / "ner"))
        ner = models["ner"]["out_dir"]
    if re is None:
        models["re"] = demo_model_task("re", str(root / "models" / "re"))
        re = models["re"]["out_dir"]
    for task_name, info in models.items():
        log.info("%s model %s (%s): %s", task_name, info["out_dir"], info["status"], info["metrics"])
    annotated: RunSummary = annotate_flow(
        [str(root / "preprocessed")], str(root / "annotated"), ner, re, progress=progress
    )
    return {"ingest": ingest, "preprocess": pre, "models": models, "annotate": annotated}
