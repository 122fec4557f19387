"""`biomed annotate`: run trained NER (and RE) models over raw files or a dataset.

Tested in `tests/pipelines/flows/test_annotate.py`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from corpora.errors import UsageError
from pipelines.cli.checks import check_dataset, check_inputs, check_model_dir, check_output
from pipelines.cli.flow_calls import add_dask_options, nothing_to_do, run_and_report, with_runner

HELP = """\
Annotate DATASET_OR_FILES with a NER model (and optionally an RE model) trained by `biomed train`,
writing an annotated Parquet dataset to OUT (schema as `biomed ingest`; predicted entities and
relations carry `score` and `annotator` = model name and content hash).

Raw files are ingested and preprocessed first (kept under OUT/_work/); a dataset without
sentences is preprocessed. Shards already annotated by the same models from unchanged input are
skipped, so an interrupted run resumes where it stopped. OUT also gets report.md and scores.png.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="annotate raw files or a dataset with trained NER/RE models",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", metavar="DATASET_OR_FILES", help="one dataset folder, or raw files/folders/globs"
    )
    p.add_argument(
        "--ner", required=True, help="NER model directory (written by `biomed train ner`), or default (shipped)"
    )
    p.add_argument(
        "--re", default=None, help="relation extraction model directory (`biomed train re`), or default (shipped)"
    )
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--workers", type=int, default=1, help="preprocessing worker processes (default 1)")
    p.add_argument("--force", action="store_true", help="redo shards even when unchanged")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the encoders with frozen weights: on a CPU 1.2-1.7x the sentences per second after "
        "7-18 s of compiling per model and process, so worth it from a few thousand sentences on",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="auto: bf16 on GPUs that have it, fp32 on CPU; bf16 on a CPU with AVX512-BF16 or AMX runs a "
        "6 x 512 model about 2x faster, with about 0.2%% of entities different from fp32",
    )
    add_dask_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    inputs = list(args.inputs)
    if len(inputs) == 1 and (Path(inputs[0]) / "manifest.json").is_file():
        check_dataset(inputs[0])
    else:
        check_inputs(inputs)
    check_model_dir(args.ner, "ner", "--ner")
    check_model_dir(args.re, "re", "--re")
    check_output(args.out, inputs)
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.compile:  # here, before anything is written, not at the first batch of every shard
        from biomodels.inference.runtime import resolve_device
        from biomodels.models.compilation import require_cpp_compiler

        require_cpp_compiler(resolve_device(None))
    from corpora.dataset.write_run import write_run

    with write_run(args.out) as writing:  # a second writer is refused here, at once (before torch loads)
        from pipelines.flows.annotate_inputs import unchanged_run  # no Prefect: a rerun may be a no-op
        from pipelines.flows.annotation_report import written_outputs

        if (
            not args.force
            and not writing.recovering
            and (done := unchanged_run(inputs, args.out, args.ner, args.re, args.precision))
        ):
            code = nothing_to_do(f"{len(done)} shard(s) already annotated by these models into {args.out}")
            print(f"Output: {args.out}/data/*.parquet, {written_outputs(args.out)}")
            return code
        from pipelines.flows.annotate import annotate_flow

        flow = with_runner(annotate_flow, args)
        return run_and_report(
            lambda: flow(
                list(args.inputs),
                args.out,
                args.ner,
                args.re,
                workers=args.workers,
                force=args.force,
                progress=not args.no_progress,
                compile=args.compile,
                precision=args.precision,
            ),
            lambda: f"Output: {args.out}/data/*.parquet, {written_outputs(args.out)}",
        )
