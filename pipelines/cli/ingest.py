"""`biomed ingest`: read raw files into a Parquet dataset."""

from __future__ import annotations

import argparse

from corpora.formats.registry import FORMATS, describe_formats
from pipelines.cli.checks import check_inputs, check_output
from pipelines.cli.flow_calls import add_dask_options, nothing_to_do, run_and_report, with_runner

HELP = """\
Read raw corpus files into a Parquet dataset (one shard per input file).

INPUT is a file, a folder (walked recursively; LICENSE/README/PDF files are ignored) or a quoted
glob. The format is detected from each file's content unless --format is given:
{formats}
Reruns skip files whose content and the code that reads them are unchanged. MEDLINE update
files' DeleteCitation entries remove those PMIDs from earlier shards, and a citation that appears
again (in a later file, or later in the same file) replaces the earlier copy. In other formats a
document id repeated within a file fails the file unless --on-duplicate says otherwise. A file that
fails is reported with its line and leaves nothing partial; the exit code is then 1.

One writer at a time: the run locks OUT (OUT/.biomed.lock names the holder); a second writer is
refused at once. A run killed at any moment is completed by the next run.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="read raw files (PubMed XML, PubTator, BioC, CoNLL, ChemProt, brat) into a Parquet dataset",
        description=HELP.format(formats=describe_formats()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="file, folder or glob")
    p.add_argument("--out", required=True, help="dataset folder to create or update")
    p.add_argument(
        "--format", default="auto", choices=["auto", *FORMATS], help="input format (default: detect from content)"
    )
    p.add_argument("--force", action="store_true", help="re-read files even when unchanged")
    p.add_argument(
        "--on-offset-mismatch",
        choices=["error", "skip"],
        default="error",
        help="an annotation whose text does not match its offsets: fail the file (default), or, for BioC "
        "inputs, skip that annotation with a warning naming it (kept in the document's extra as bioc.skipped)",
    )
    p.add_argument(
        "--on-duplicate",
        choices=["error", "last", "keep"],
        default="error",
        help="a document id repeated within one file (not MEDLINE: there the later record always wins): fail the "
        "file naming both places (default), keep the last (also across the files ingested with last, the later "
        "file name winning), or keep both",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dask_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    check_inputs(list(args.inputs), args.format)
    check_output(args.out, list(args.inputs))
    from corpora.dataset.ingest import unchanged_inputs  # pyarrow, when the command runs
    from corpora.dataset.write_run import write_run

    with write_run(args.out) as writing:  # a second writer is refused here, at once
        done = not args.force and not writing.recovering
        if done and (
            files := unchanged_inputs(
                list(args.inputs), args.out, args.format, args.on_offset_mismatch, args.on_duplicate
            )
        ):
            return nothing_to_do(f"{len(files)} input file(s) unchanged since they were ingested into {args.out}")
        from pipelines.flows.ingest import ingest_flow

        flow = with_runner(ingest_flow, args)
        return run_and_report(
            lambda: flow(
                list(args.inputs),
                args.out,
                fmt=args.format,
                force=args.force,
                progress=not args.no_progress,
                on_mismatch=args.on_offset_mismatch,
                on_duplicate=args.on_duplicate,
            ),
            f"Output: {args.out}/data/*.parquet  (manifest: {args.out}/manifest.json)",
        )
