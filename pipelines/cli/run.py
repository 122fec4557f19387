"""`biomed run`: the whole pipeline in one command (what `make run` calls)."""

from __future__ import annotations

import argparse
from pathlib import Path

from corpora.errors import PartialFailure
from pipelines.cli.checks import check_inputs, check_model_dir, check_output
from pipelines.cli.flow_calls import report_partial_failure

HELP = """\
Run the whole pipeline on Prefect's embedded local API: ingest INPUT (default: the bundled PubMed
XML samples in corpora/samples/pubmed), preprocess with scispaCy, annotate with the shipped NER
(Chemical, Disease) and CID relation models unless --ner/--re name others, and print a summary.
--train-demo trains small scratch models on the bundled BC5CDR samples instead (a few minutes; to
see training at work, not for use).

Outputs under --out: dataset/ (ingested), preprocessed/, annotated/ (with report.md and
scores.png), and models/ner, models/re with --train-demo. A second run skips everything unchanged.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole pipeline end to end (bundled samples by default)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="raw files, folders or globs (default: bundled PubMed samples)"
    )
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--ner", default=None, help="NER model directory (default: the shipped model)")
    p.add_argument("--re", default=None, help="RE model directory (default: the shipped model)")
    p.add_argument(
        "--train-demo", action="store_true", help="train small scratch models on the bundled samples instead"
    )
    p.add_argument("--workers", type=int, default=1, help="preprocessing worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    if args.inputs:
        check_inputs(list(args.inputs))
    if not args.train_demo:
        check_model_dir(args.ner or "default", "ner", "--ner")
        check_model_dir(args.re or "default", "re", "--re")
    check_output(args.out, list(args.inputs))
    from pipelines.flows.annotation_report import gather, written_outputs
    from pipelines.flows.run import run_flow

    try:
        results = run_flow(
            args.out,
            inputs=list(args.inputs) or None,
            ner=args.ner,
            re=args.re,
            workers=args.workers,
            progress=not args.no_progress,
            train_demo=args.train_demo,
        )
    except PartialFailure as exc:
        return report_partial_failure(exc)
    for step in ("ingest", "preprocess", "annotate"):
        print(f"\n== {step}\n{results[step].text()}")
    for task, info in results["models"].items():
        print(f"\n== {task} model ({info['status']}): {info['out_dir']}\n   dev metrics: {info['metrics']}")
    annotated = Path(args.out) / "annotated"
    stats = gather(annotated, examples=5)
    print(f"\n== annotated dataset: {annotated}/data/*.parquet ({stats['documents']} documents)")
    print("entities by type:  " + (", ".join(f"{k} {v}" for k, v in sorted(stats["entities"].items())) or "none"))
    print("relations by type: " + (", ".join(f"{k} {v}" for k, v in sorted(stats["relations"].items())) or "none"))
    if stats["examples"]:
        print("examples:")
        for line in stats["examples"]:
            print(f"  {line}")
    print(written_outputs(annotated))
    print(
        f"read it: duckdb.sql(\"select document_id, unnest(entities) from read_parquet('{annotated}/data/*.parquet')\")"
    )
    return 0
