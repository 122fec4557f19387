"""`biomed run`: the whole pipeline in one command (what `make run` calls)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from corpora.errors import PartialFailure


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole pipeline on the bundled samples (or on INPUT files)",
        description="Run every step of the pipeline end to end on Prefect's embedded local API. "
        "Without INPUT it uses the bundled samples in corpora/samples/. Outputs go under --out.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="raw files, folders or globs (default: bundled samples)")
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from corpora.store import open_dataset
    from pipelines.run_flow import run_flow

    try:
        results = run_flow(args.out, inputs=list(args.inputs) or None, progress=not args.no_progress)
    except PartialFailure as exc:
        print(exc.summary.text())
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(results["ingest"].text())
    dataset = Path(args.out) / "dataset"
    store = open_dataset(dataset)
    print(f"\nOutput: {dataset}/data/ ({len(store.shard_files())} Parquet shards, {store.count_rows()} documents), manifest {dataset}/manifest.json")
    print("Read it with: pyarrow.dataset.dataset('%s/data'), pandas.read_parquet, DuckDB read_parquet('%s/data/*.parquet')," % (dataset, dataset))
    print("or in Python: from corpora.store import open_dataset; docs = open_dataset('%s').iter_documents()" % dataset)
    return 0
