"""`biomed preprocess`: add sentences, tokens and abbreviations to a dataset with scispaCy."""

from __future__ import annotations

import argparse

from corpora.errors import UsageError
from pipelines.cli.checks import check_dataset, check_output
from pipelines.cli.flow_calls import add_dask_options, nothing_to_do, run_and_report, with_runner

HELP = """\
Run scispaCy over every document of DATASET (a folder written by `biomed ingest`) and write the
same documents, with `sentences`, `tokens` and `abbreviations` added as character offsets, to OUT.

Default pipeline: spaCy's blank English with scispaCy's combined rule tokenizer, a rule-based
biomedical sentence splitter and scispaCy's Schwartz-Hearst abbreviation detector. With
--spacy-model NAME an installed scispaCy model (en_core_sci_sm, _md, _lg, _scibert) is used, with
its parser's sentence boundaries. Unchanged shards are skipped; a change of pipeline redoes them;
a shard whose input only lost documents (MEDLINE deletions applied upstream) drops the same
documents instead of being redone.

--workers N: with N > 1, N worker processes annotate, started once for the whole run (a second or
two each) and shared by all shards, while this one applies their results; the output is identical
to --workers 1. On a
Dask runner keep --workers 1: Dask spreads shards over its own processes.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="scispaCy sentences, tokens and abbreviations for every document of a dataset",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", help="input dataset folder")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes that annotate (default 1: this process alone)"
    )
    p.add_argument(
        "--spacy-model", default=None, help="installed scispaCy model package to use instead of the rule pipeline"
    )
    p.add_argument("--force", action="store_true", help="redo shards even when unchanged")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dask_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    check_dataset(args.dataset)
    check_output(args.out, [args.dataset])
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    from corpora.dataset.write_run import write_run

    with write_run(args.out) as writing:  # a second writer is refused here, at once (before spaCy loads)
        from corpora.preprocess.shard import unchanged_shards  # spaCy, for the pipeline's fingerprint

        if (
            not args.force
            and not writing.recovering
            and (done := unchanged_shards(args.dataset, args.out, args.spacy_model))
        ):
            return nothing_to_do(
                f"{len(done)} shard(s) of {args.dataset} unchanged since they were preprocessed into {args.out}"
            )
        from pipelines.flows.preprocess import preprocess_flow

        flow = with_runner(preprocess_flow, args)
        return run_and_report(
            lambda: flow(
                args.dataset,
                args.out,
                workers=args.workers,
                spacy_model=args.spacy_model,
                force=args.force,
                progress=not args.no_progress,
            ),
            f"Output: {args.out}/data/*.parquet  (manifest: {args.out}/manifest.json)",
        )
