"""The end-to-end run (`make run`, `biomed run`, `biomed serve`): ingest, preprocess, models, annotate.

Tested in `tests/pipelines/cli/test_run.py`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from biomodels.models.shipped import DEFAULT_NAME, shipped_dev_metrics, shipped_model_dir
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
    train_demo: bool = False,
) -> dict[str, object]:
    """Every step over `inputs` (default: the bundled PubMed XML samples), writing under `out`:

    `dataset/` (ingested), `preprocessed/` (sentences, tokens, abbreviations) and `annotated/`
    (entities and relations with scores, report.md, scores.png). Models: `ner`/`re` when given,
    else the shipped ones (`default`); with `train_demo`, small scratch models trained on the bundled
    BC5CDR samples into `models/` instead. Each step skips what is unchanged.
    """
    root = Path(out)
    log = get_run_logger()
    ingest: RunSummary = ingest_flow(inputs or DEFAULT_INPUTS, str(root / "dataset"), progress=progress)
    pre: RunSummary = preprocess_flow(
        str(root / "dataset"), str(root / "preprocessed"), workers=workers, progress=progress
    )
    models: dict[str, dict] = {}
    if ner is None and train_demo:
        models["ner"] = demo_model_task("ner", str(root / "models" / "ner"))
        ner = models["ner"]["out_dir"]
    if re is None and train_demo:
        models["re"] = demo_model_task("re", str(root / "models" / "re"))
        re = models["re"]["out_dir"]
    for task_name, given in (("ner", ner), ("re", re)):
        if given is None or given == DEFAULT_NAME:
            path = shipped_model_dir(task_name)
            models[task_name] = {"status": "shipped", "out_dir": str(path), "metrics": shipped_dev_metrics(path)}
    ner = models["ner"]["out_dir"] if "ner" in models else ner
    re = models["re"]["out_dir"] if "re" in models else re
    for task_name, info in models.items():
        log.info("%s model %s (%s): %s", task_name, info["out_dir"], info["status"], info["metrics"])
    annotated: RunSummary = annotate_flow(
        [str(root / "preprocessed")], str(root / "annotated"), ner, re, progress=progress
    )
    return {"ingest": ingest, "preprocess": pre, "models": models, "annotate": annotated}
