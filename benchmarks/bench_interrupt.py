"""Ctrl-C benchmark: seconds from SIGINT to the exit of a working `biomed` command.

Issue 13 asks that Ctrl-C be acted on within 2 s. For each command below this starts
`python -m pipelines.cli ...` on small inputs built from the bundled samples, waits until the
command is demonstrably working (a finished shard in its output, a training step logged, the
deployment served), records the process tree, sends SIGINT and measures until the process has
exited. It then checks what the tests check: exit code, the one-line message, no `.staging` left,
and no process of the recorded tree still alive (Prefect's temporary API server, worker processes).

    .venv/bin/python benchmarks/bench_interrupt.py                    # every command, 3 runs each
    .venv/bin/python benchmarks/bench_interrupt.py preprocess --runs 1

The last stdout line is a JSON object: per command, every run's seconds, and the machine load.
Models: the shipped ones (`default`) for annotate and run; pretraining a 1 x 32 scratch encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "corpora" / "samples"
BIOMED = [sys.executable, "-m", "pipelines.cli"]


def replicated_pubtator(path: Path, copies: int, first_id: int) -> None:
    """The NCBI-disease devel sample `copies` times over under new ids: a few seconds of work per shard."""
    blocks = (SAMPLES / "ncbi-disease" / "NCBI_devel_sample.PubTator.txt").read_text(encoding="utf-8").split("\n\n")
    out = []
    for n in range(copies):
        for i, block in enumerate(b for b in blocks if b.strip()):
            pmid = block.split("|", 1)[0]
            new = str(first_id + n * 1000 + i)
            out.append("\n".join(new + line[len(pmid) :] for line in block.strip().splitlines()))
    path.write_text("\n\n".join(out) + "\n", encoding="utf-8")


def build_inputs(work: Path, shards: int = 6, copies: int = 8) -> dict[str, Path]:
    """Raw PubTator files, their ingested dataset and its preprocessed copy (done in this process)."""
    from corpora.dataset.ingest import ingest_file

    raw = work / "raw"
    raw.mkdir(parents=True)
    for s in range(shards):
        replicated_pubtator(raw / f"part{s}.PubTator.txt", copies, 10_000_000 + s * 100_000)
    ds = work / "ds"
    for path in sorted(raw.iterdir()):
        ingest_file(path, ds)
    pre = work / "pre"
    subprocess.run([*BIOMED, "preprocess", str(ds), "--out", str(pre), "--workers", "2", "--no-progress"],
                   cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    return {"raw": raw, "ds": ds, "pre": pre}


class Running:
    """A `biomed` subprocess whose stderr and stdout lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [*BIOMED, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(s,), daemon=True) for s in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, condition: Callable[[], bool], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited {self.proc.returncode} before the signal: {self.lines[-20:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"not working after {timeout} s: {self.lines[-20:]}")
            time.sleep(0.05)

    def interrupt(self, sig: int = signal.SIGINT) -> tuple[float, list[psutil.Process]]:
        """Send `sig`; seconds until exit, and the processes of the tree recorded before that are still alive."""
        family = psutil.Process(self.proc.pid).children(recursive=True)
        sent = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)
        took = time.monotonic() - sent
        for reader in self.readers:
            reader.join(timeout=10)
        time.sleep(0.5)
        alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        return took, alive


def any_file(folder: Path, pattern: str = "*.parquet") -> Callable[[], bool]:
    return lambda: folder.is_dir() and any(folder.glob(pattern))


def commands(inputs: dict[str, Path], out: Path) -> dict[str, tuple[list[str], Callable[[Running], bool]]]:
    """Command line and "it is working" test of each benchmarked command."""
    pretrain = ["pretrain", str(inputs["pre"]), "--out", str(out), "--layers", "1", "--hidden", "32", "--heads", "2",
                "--vocab-size", "800", "--max-steps", "100000", "--batch-size", "8", "--log-every", "1",
                "--save-every", "100000", "--no-progress", "--no-plot"]  # fmt: skip
    return {
        "ingest": (["ingest", str(inputs["raw"]), "--out", str(out), "--no-progress"],
                   lambda r: any_file(out / "data")()),
        "preprocess": (["preprocess", str(inputs["ds"]), "--out", str(out), "--workers", "2", "--no-progress"],
                       lambda r: any_file(out / "data")()),
        "annotate": (["annotate", str(inputs["pre"]), "--ner", "default", "--out", str(out), "--no-progress"],
                     lambda r: any_file(out / "data")()),
        "pretrain": (pretrain, lambda r: any("step 2" in line or "'step': 2" in line for line in r.lines)),
        "run": (["run", str(inputs["raw"]), "--out", str(out), "--no-progress"],
                lambda r: any_file(out / "preprocessed" / "data")()),
        "serve": (["serve", "--watch", str(inputs["raw"]), "--out", str(out), "--name", "bench-interrupt"],
                  lambda r: any("is being served" in line for line in r.lines)),
    }  # fmt: skip


def staging_left(out: Path) -> list[str]:
    return [str(p) for p in out.rglob(".staging")] if out.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commands", nargs="*", help="which commands (default: all)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-interrupt-"))
    try:
        inputs = build_inputs(work)
        names = args.commands or list(commands(inputs, work).keys())
        results: dict[str, list[float]] = {}
        for run in range(args.runs):
            for name in names:
                out = work / f"{name}-{run}"
                argv, working = commands(inputs, out)[name]
                started = time.monotonic()
                proc = Running(argv)
                proc.wait_for(lambda: working(proc))
                ready = time.monotonic() - started
                took, alive = proc.interrupt()
                last = proc.lines[-1] if proc.lines else ""
                ok = proc.proc.returncode in (0, 130) and not alive and not staging_left(out)
                results.setdefault(name, []).append(round(took, 2))
                print(f"{name} run {run}: working after {ready:.1f} s; SIGINT -> exit {proc.proc.returncode} in "
                      f"{took:.2f} s; {len(alive)} process(es) left; {'ok' if ok else 'NOT OK'}; last line: {last}",
                      flush=True)  # fmt: skip
                for p in alive:
                    print(f"  left: {p.pid} {' '.join(p.cmdline())[:200]}", flush=True)
                    p.kill()
        print(json.dumps({"seconds": results, "load": os.getloadavg(), "cpus": os.cpu_count()}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
