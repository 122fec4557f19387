"""`biomed serve`: run the end-to-end flow on a schedule over a watched folder."""

from __future__ import annotations

import argparse

HELP = """\
Serve the end-to-end flow (ingest -> preprocess -> annotate) on a cron schedule, over the files in
--watch. Each run does only what changed: files that are new or whose bytes changed are ingested,
their shards preprocessed and annotated; unchanged shards are skipped. MEDLINE update files'
DeleteCitation entries remove those PMIDs from the dataset, and revised citations replace the old.

The process registers a Prefect deployment and waits for its scheduled runs (or runs started by
hand with `prefect deployment run 'end-to-end/NAME'`). It uses pause_on_shutdown=False, so the
schedule stays active when this process restarts. To run it on a work pool instead, see
prefect.yaml in the repository.

Needs a Prefect API that outlives this process for schedules to matter: start one with
`prefect server start` (or use Prefect Cloud) and set PREFECT_API_URL.

Stop it with Ctrl-C or SIGTERM: runs in progress are cancelled, no process is left behind, one
line says so, and the exit code is 0 (the deployment stays registered; serve again to resume).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the end-to-end flow on a schedule over a watched folder",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--watch", required=True, help="folder of raw input files (new/changed files are processed each run)"
    )
    p.add_argument("--out", required=True, help="output folder (dataset, preprocessed, annotated, models)")
    p.add_argument("--cron", default="0 2 * * *", help='schedule in cron syntax (default "0 2 * * *": 02:00 daily)')
    p.add_argument("--ner", default=None, help="NER model directory (default: the shipped model)")
    p.add_argument("--re", default=None, help="RE model directory (default: the shipped model)")
    p.add_argument("--name", default="biomed-nightly", help="deployment name (default biomed-nightly)")
    p.add_argument("--timezone", default="UTC", help="time zone of the cron schedule (default UTC)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `biomed --help` loads no flow, torch or spaCy
    from prefect.client.schemas.schedules import CronSchedule

    from pipelines.flows.run import run_flow

    try:
        run_flow.serve(
            name=args.name,
            schedules=[CronSchedule(cron=args.cron, timezone=args.timezone)],
            parameters={"out": args.out, "inputs": [args.watch], "ner": args.ner, "re": args.re, "progress": False},
            pause_on_shutdown=False,
        )
    except SystemExit as exc:  # Prefect's SIGTERM handler, when the runner has not started yet: sys.exit(0)
        if exc.code not in (0, None):
            raise
    # serving ends only on a signal: Prefect's runner catches Ctrl-C (SIGTERM: its own handler) and
    # returns; the usual interrupt clean-up follows (pipelines.cli.interrupts: children, one line, exit 0)
    raise KeyboardInterrupt("serve stopped")
