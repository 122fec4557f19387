"""README's Python examples, run as written, each as a script in its own process from a folder that
holds the bundled samples: they must finish, print what they promise, and leave no process behind
(Prefect's temporary API server, preprocessing workers)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from tests.helpers.paths import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def python_block_with(marker: str) -> str:
    found = [b for b in BLOCKS if marker in b]
    assert len(found) == 1, f"expected one README python block with {marker!r}, found {len(found)}"
    return found[0]


def processes_marked(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries `marker` (children inherit it)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("BIOMED_README_RUN") == marker:
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def run_example(code: str, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `code` as a script (or `args` as a command when given) in `folder`; fail when it fails
    or when any process it started is still alive afterwards."""
    marker = uuid.uuid4().hex
    env = {**os.environ, "BIOMED_README_RUN": marker}
    if args:
        argv = list(args)
    else:
        script = folder / f"readme_example_{marker[:8]}.py"
        script.write_text(code, encoding="utf-8")
        argv = [sys.executable, str(script)]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    leftovers = processes_marked(marker)
    for proc in leftovers:
        proc.kill()
    assert not leftovers, [" ".join(p.cmdline()) for p in leftovers]
    return done


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "corpora").symlink_to(ROOT / "corpora")
    return tmp_path


@pytest.mark.timeout(900)
def test_python_training_example_finds_entities(workdir: Path) -> None:
    """A small scratch model on the bundled BC5CDR train split, then annotating."""
    code = python_block_with("out = train(")
    code += "\nprint('PREDICTED', sum(1 for d in annotated for e in d.entities if e.annotator))\n"
    done = run_example(code, workdir)
    printed = next(line for line in done.stdout.splitlines() if line.startswith("{"))  # print(evaluate(...))
    metrics = ast.literal_eval(printed)
    assert metrics["f1"] > 0.3, metrics
    assert int(done.stdout.split("PREDICTED ")[1].split()[0]) > 0


@pytest.mark.timeout(900)
def test_api_overview_example_runs_its_flows_and_workers_and_leaves_nothing(workdir: Path) -> None:
    run_example(python_block_with("def main() -> None:"), workdir)
    assert len(list((workdir / "out" / "ds" / "data").glob("*.parquet"))) == 9  # one shard per bundled PubMed file


@pytest.mark.timeout(900)
def test_reading_and_spacy_examples_on_an_annotated_dataset(workdir: Path) -> None:
    pubmed = str(workdir / "corpora" / "samples" / "pubmed" / "pubmed1.xml")
    annotate = [sys.executable, "-m", "pipelines.cli", "annotate", pubmed, "--ner", "default", "--re", "default"]
    run_example("", workdir, *annotate, "--out", "out/annotated", "--no-progress")
    reading = run_example(python_block_with("import duckdb"), workdir).stdout
    assert reading.splitlines()[0] == "2"  # pubmed1.xml holds two citations
    assert re.search(r"│ (Chemical|Disease)\s+│\s+\d+ │", reading)  # DuckDB's counts by type
    run_example(python_block_with('nlp.add_pipe("biomegatron_ner"'), workdir)
    assert (workdir / "my_pipeline" / "biomegatron_ner" / "model" / "model.safetensors").is_file()


@pytest.mark.timeout(900)
def test_pretrain_example_after_ingest_and_preprocess(workdir: Path) -> None:
    """README's `biomed pretrain` example, on the dataset that `biomed ingest` and `biomed
    preprocess` make of the bundled PubMed samples; no command leaves a process behind."""
    example = re.search(r"Example: `(biomed pretrain [^`]+)`", README)
    assert example, "README's pretrain example is gone"
    argv = re.sub(r"\s+", " ", example.group(1)).split(" ")
    cli = [sys.executable, "-m", "pipelines.cli"]
    run_example("", workdir, *cli, "ingest", "corpora/samples/pubmed", "--out", "out/dataset", "--no-progress")
    run_example("", workdir, *cli, "preprocess", "out/dataset", "--out", "out/preprocessed", "--no-progress")
    # fewer steps than the example's 200 (the last --max-steps wins): the same code runs, in less time
    done = run_example("", workdir, *cli, *argv[1:], "--max-steps", "50", "--no-progress")
    assert "pretrained encoder: models/encoder" in done.stdout
    assert (workdir / "models" / "encoder" / "model.safetensors").is_file()
