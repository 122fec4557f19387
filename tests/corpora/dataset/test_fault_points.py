"""kill -9 at every write point of ingest, reconcile, preprocess and annotate, then rerun: the dataset
equals a clean run's, row for row (every column, tables sorted by id), with the same manifest.

Each killed run is a child process started with BIOMED_FAULT_AT naming the point (it dies by
SIGKILL there: no `finally`, no clean-up); the rerun and the clean run happen in this process. The
steps are those of the flows (`write_run`, the shard step per shard, reconcile or prune, the
manifest) without Prefect, whose server would cost seconds per run; `test_cli_rerun_after_kill`
goes through the real command once.

This module is also the child's entry point: `python -m tests.corpora.dataset.test_fault_points
STEP JSON-ARGS`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpora.dataset.fault_points import FAULT_ENV, FAULT_POINTS
from corpora.dataset.lock import DATASET_LOCK
from corpora.dataset.store import DatasetStore
from tests.helpers.paths import ROOT, SAMPLES

PUBTATOR = SAMPLES / "bc5cdr" / "CDR_dev_sample.PubTator.txt"


# ---------------------------------------------------------------------------------- the steps


def ingest_run(files: list[str], out: str) -> None:
    """What `ingest_flow` does, without Prefect."""
    from corpora.dataset.ingest import ingest_file
    from corpora.dataset.write_run import write_run

    with write_run(out) as run:
        for path in files:
            ingest_file(path, out)
        run.store.reconcile()
        run.store.write_manifest()


def preprocess_run(dataset: str, out: str) -> None:
    """What `preprocess_flow` does, without Prefect (the rule pipeline, one process)."""
    from corpora.dataset.write_run import write_run
    from corpora.preprocess.shard import preprocess_producer, preprocess_shard

    shards = DatasetStore(dataset).shard_names()
    with write_run(out) as run:
        for shard in shards:
            preprocess_shard(dataset, shard, out)
        run.store.prune(set(shards))
        run.store.write_manifest({"pipeline": preprocess_producer()["preprocess"]})


def annotate_run(dataset: str, out: str, ner: str) -> None:
    """What `annotate_flow` does on a preprocessed dataset, without Prefect (and without its report)."""
    from biomodels.inference.annotate_shard import annotate_producer, annotate_shard
    from corpora.dataset.write_run import write_run

    shards = DatasetStore(dataset).shard_names()
    with write_run(out) as run:
        for shard in shards:
            annotate_shard(dataset, shard, out, ner)
        run.store.prune(set(shards))
        run.store.write_manifest({"annotators": annotate_producer(ner)["annotate"]})


STEPS = {"ingest": ingest_run, "preprocess": preprocess_run, "annotate": annotate_run}


def killed_runs(step: str, runs: dict[str, tuple[object, ...]], parallel: int = 4) -> None:
    """Run `step` once per fault point of `runs` (point -> step arguments), each in a child process
    that SIGKILLs itself at its point, a few at a time; every one must die there."""
    pending = list(runs.items())
    running: list[tuple[str, subprocess.Popen]] = []
    failures = []
    while pending or running:
        while pending and len(running) < parallel:
            point, args = pending.pop(0)
            env = {**os.environ, FAULT_ENV: point, "PYTHONPATH": str(ROOT)}
            argv = [sys.executable, "-m", "tests.corpora.dataset.test_fault_points", step]
            proc = subprocess.Popen(
                [*argv, json.dumps([str(a) for a in args])],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # the fault point kills its process group: never ours
            )
            running.append((point, proc))
        point, proc = running.pop(0)
        _, err = proc.communicate(timeout=180)
        for counter in Path(tempfile.gettempdir()).glob(f"biomed-fault-{proc.pid}-*"):
            counter.unlink()  # the pass counts of that run (its process group id is its pid)
        if proc.returncode != -signal.SIGKILL:
            failures.append(f"{step} did not reach {point}: rc {proc.returncode}\n{err[-2000:]}")
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------------- comparisons


def rows(root: Path) -> list[dict]:
    """Every row of the dataset, every column, sorted by (id, source file)."""
    table_rows = []
    for path in DatasetStore(root).shard_files():
        table_rows += pq.read_table(path).to_pylist()
    return sorted(table_rows, key=lambda r: (r["id"], r["source"]["path"]))


ENTRY_FIELDS = ("rows", "passages", "entities", "relations", "entity_types", "relation_types", "deletions")


def manifest_view(root: Path) -> dict:
    """What must agree between a recovered and a clean dataset: per-shard counts and the totals."""
    manifest = json.loads((root / "manifest.json").read_text())
    shards = {name: {k: e[k] for k in (*ENTRY_FIELDS, "source_sha256")} for name, e in manifest["shards"].items()}
    entries = {
        name: {k: getattr(e, k) for k in (*ENTRY_FIELDS, "source_sha256")}
        for name, e in DatasetStore(root).entries().items()
    }
    assert shards == entries, "manifest.json disagrees with the shard entries"
    return {"rows": manifest["rows"], "shards": shards}


def assert_same_dataset(recovered: Path, clean: Path) -> None:
    assert rows(recovered) == rows(clean)
    assert manifest_view(recovered) == manifest_view(clean)
    assert (
        sum(pq.read_metadata(p).num_rows for p in DatasetStore(recovered).shard_files())
        == json.loads((recovered / "manifest.json").read_text())["rows"]
    )
    assert not (recovered / ".staging").exists()
    assert not (recovered / DATASET_LOCK).exists()


# ---------------------------------------------------------------------------------- fixtures


def citation(pmid: int, title: str) -> str:
    return (
        f'<MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID><Article>'
        f"<ArticleTitle>{title}</ArticleTitle><Abstract><AbstractText>Aspirin reduces fever in adults with "
        f"influenza (n={pmid}).</AbstractText></Abstract></Article></MedlineCitation>"
    )


def medline(path: Path, citations: list[str], deletions: tuple[int, ...] = ()) -> Path:
    dels = "".join(f'<DeleteCitation><PMID Version="1">{d}</PMID></DeleteCitation>' for d in deletions)
    body = "\n".join(citations)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<MedlineCitationSet>\n{body}\n{dels}\n</MedlineCitationSet>\n'
    )
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A MEDLINE baseline (with a PMID repeated: the later copy wins), an update file that revises one
    citation and deletes another, and a PubTator file."""
    raw = tmp_path_factory.mktemp("raw")
    base = medline(
        raw / "m1.xml",
        [citation(11, "First"), citation(12, "Second"), citation(13, "Third"), citation(11, "First, again")],
    )
    update = medline(raw / "m2.xml", [citation(12, "Second, revised"), citation(14, "Fourth")], deletions=(13,))
    pubtator = raw / "p.txt"
    shutil.copy(PUBTATOR, pubtator)
    return {"base": base, "update": update, "pubtator": pubtator}


@pytest.fixture(scope="module")
def clean(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clean runs: v1 = base + PubTator, v2 = v1 updated in place (the update file; the PubTator
    shard's input gone, so v2 lacks it), and preprocess / annotate outputs of each."""
    from tests.helpers.annotation_models import ner_model_dir, sample_vocab

    root = tmp_path_factory.mktemp("clean")
    v1, v2 = root / "v1", root / "v2"
    ingest_run([str(inputs["base"]), str(inputs["pubtator"])], str(v1))
    shutil.copytree(v1, v2)
    ingest_run([str(inputs["base"]), str(inputs["update"])], str(v2))
    DatasetStore(v2).prune({s for s in DatasetStore(v2).shard_names() if not s.startswith("p-")})
    DatasetStore(v2).write_manifest()
    ingest_v2 = root / "ingest-v2"  # the same update, ingested into a fresh folder in one run
    ingest_run([str(inputs["base"]), str(inputs["pubtator"])], str(ingest_v2))
    ingest_run([str(inputs["base"]), str(inputs["pubtator"]), str(inputs["update"])], str(ingest_v2))
    pre1, pre2 = root / "pre1", root / "pre2"
    preprocess_run(str(v1), str(pre1))
    preprocess_run(str(v2), str(pre2))
    synced = root / "pre2-synced"  # pre1 brought to v2 in place: its m1 shard follows by removals
    shutil.copytree(pre1, synced)
    preprocess_run(str(v2), str(synced))
    ner = ner_model_dir(root / "ner", sample_vocab(root / "vocab.txt"))
    ann1, ann2 = root / "ann1", root / "ann2"
    annotate_run(str(pre1), str(ann1), str(ner))
    annotate_run(str(synced), str(ann2), str(ner))
    return {
        "v1": v1,
        "v2": v2,
        "ingest-v2": ingest_v2,
        "pre1": pre1,
        "pre2": pre2,
        "pre2-synced": synced,
        "ann1": ann1,
        "ann2": ann2,
        "ner": ner,
    }


# -------------------------------------------------------------------------------------- tests


def test_every_fault_point_in_the_code_is_listed_and_tried() -> None:
    """A point added to the write path without a fault test fails here."""
    used = set()
    for path in [*(ROOT / "corpora").rglob("*.py"), *(ROOT / "biomodels").rglob("*.py")]:
        used |= set(re.findall(r'fault_point\("([a-z-]+)"\)', path.read_text(encoding="utf-8")))
    assert used == set(FAULT_POINTS)
    tried = {p.split(":")[0] for p in INGEST_POINTS + PREPROCESS_POINTS + ANNOTATE_POINTS}
    assert tried == set(FAULT_POINTS)


# the second run over an existing dataset (v1 -> v2 with the update) passes every ingest point;
# ":2" is the second pass (the second shard written)
INGEST_POINTS = [
    "after-lock",
    "after-staging-write",
    "after-shard-replace",
    "after-entry-write",
    "after-removal-replace",
    "after-reconcile-shard",
    "before-manifest",
]
# a first run into an empty folder writes three shards: kill at the second and third too
FIRST_RUN_POINTS = ["after-staging-write:2", "after-shard-replace:2", "after-entry-write:3", "after-removal-replace"]


INGEST_CASES = [("v1", p) for p in INGEST_POINTS] + [("empty", p) for p in FIRST_RUN_POINTS]


@pytest.fixture(scope="module")
def killed_ingests(inputs: dict[str, Path], clean: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each ingest case killed at its point: `v1`, the update run over an existing dataset;
    `empty`, all three files in one first run."""
    root = tmp_path_factory.mktemp("killed-ingest")
    files = json.dumps([str(inputs["base"]), str(inputs["pubtator"]), str(inputs["update"])])
    outs = {}
    for start, point in INGEST_CASES:
        out = root / f"{start}-{point.replace(':', '-')}"
        if start == "v1":
            shutil.copytree(clean["v1"], out)
        outs[(start, point)] = out
    # a point may appear for both starts: the two groups run one after the other
    for group in ("v1", "empty"):
        killed_runs("ingest", {p: (files, outs[(s, p)]) for s, p in INGEST_CASES if s == group})
    return outs


@pytest.mark.parametrize(("start", "point"), INGEST_CASES)
def test_ingest_killed_then_rerun_equals_clean(
    start: str, point: str, inputs: dict[str, Path], clean: dict[str, Path], killed_ingests: dict
) -> None:
    out = killed_ingests[(start, point)]
    ingest_run([str(inputs["base"]), str(inputs["pubtator"]), str(inputs["update"])], str(out))
    assert_same_dataset(out, clean["ingest-v2"])


PREPROCESS_POINTS = [
    "after-lock",
    "after-staging-write",
    "after-shard-replace",
    "after-entry-write",
    "after-removal-replace",
    "after-prune-unlink",
    "before-manifest",
]


@pytest.fixture(scope="module")
def killed_preprocesses(clean: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("killed-preprocess")
    outs = {p: root / p for p in PREPROCESS_POINTS}
    for out in outs.values():
        shutil.copytree(clean["pre1"], out)
    killed_runs("preprocess", {p: (clean["v2"], out) for p, out in outs.items()})
    return outs


@pytest.mark.parametrize("point", PREPROCESS_POINTS)
def test_preprocess_killed_then_rerun_equals_clean(
    point: str, clean: dict[str, Path], killed_preprocesses: dict
) -> None:
    """From v1's preprocessed output to v2's: a new shard, removals synced, a shard pruned."""
    out = killed_preprocesses[point]
    preprocess_run(str(clean["v2"]), str(out))
    assert_same_dataset(out, clean["pre2"])


ANNOTATE_POINTS = PREPROCESS_POINTS  # a derived dataset: the same write points as preprocess


@pytest.fixture(scope="module")
def killed_annotations(clean: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("killed-annotate")
    outs = {p: root / p for p in ANNOTATE_POINTS}
    for out in outs.values():
        shutil.copytree(clean["ann1"], out)
    killed_runs("annotate", {p: (clean["pre2-synced"], out, clean["ner"]) for p, out in outs.items()})
    return outs


@pytest.mark.parametrize("point", ANNOTATE_POINTS)
def test_annotate_killed_then_rerun_equals_clean(point: str, clean: dict[str, Path], killed_annotations: dict) -> None:
    """From the annotations of pre1 to those of pre1 brought to v2 (a new shard, removals, a pruned shard)."""
    out = killed_annotations[point]
    annotate_run(str(clean["pre2-synced"]), str(out), str(clean["ner"]))
    assert_same_dataset(out, clean["ann2"])


if __name__ == "__main__":
    step, args = sys.argv[1], json.loads(sys.argv[2])
    if step == "ingest":
        args[0] = json.loads(args[0])
    STEPS[step](*args)
