"""Worker processes for preprocessing: identical output, reuse across inputs, failures that say what happened."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys

import psutil
import pytest

from corpora.errors import ConfigError, WorkerError
from corpora.preprocess.documents import preprocess_documents
from corpora.preprocess.pipeline import build_pipeline, pipeline_fingerprint
from corpora.preprocess.pool import PreprocessPool
from corpora.schema import Deletion, Document
from tests.helpers.documents import mixed_subset
from tests.helpers.paths import ROOT


@pytest.fixture(scope="module")
def nlp():
    return build_pipeline()


def _workers_of(pool: PreprocessPool) -> list[psutil.Process]:
    """The pool's worker processes: children of the forkserver this test process started."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "forkserver" in " ".join(child.parent().cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_two_workers_give_identical_output(nlp):
    one = [d.to_dict() for d in preprocess_documents(mixed_subset(), nlp, docs_per_chunk=3)]
    assert sum(len(d["tokens"]) for d in one) > 10_000
    two = [d.to_dict() for d in preprocess_documents(mixed_subset(), nlp, workers=2, docs_per_chunk=3)]
    assert two == one
    expected = pipeline_fingerprint(nlp)["hash"]
    with PreprocessPool(None, 2, docs_per_chunk=3, expected=expected) as pool:
        # one pool for many inputs, a Deletion passing through in place
        items: list = mixed_subset()[:20]
        items.insert(5, Deletion("12345"))
        again = list(pool.preprocess(items))
        third = [d.to_dict() for d in preprocess_documents(mixed_subset()[:10], nlp, pool=pool)]
    assert again[5] == Deletion("12345")
    assert [d.to_dict() for d in again if isinstance(d, Document)] == one[:20]
    assert third == one[:10]


def test_bad_worker_count(nlp):
    with pytest.raises(ConfigError, match="at least 1"):
        list(preprocess_documents(mixed_subset()[:2], nlp, workers=0))
    with pytest.raises(ConfigError, match="at least 1 process"):
        PreprocessPool(None, 0)


def test_pipeline_not_from_build_pipeline_cannot_go_parallel():
    import spacy

    with pytest.raises(ConfigError, match="build_pipeline"):
        list(preprocess_documents(mixed_subset()[:2], spacy.blank("en"), workers=2))


def test_pool_survives_a_caller_that_stops_early(nlp):
    one = [d.to_dict() for d in preprocess_documents(mixed_subset(), nlp, docs_per_chunk=3)]
    with PreprocessPool(None, 1, docs_per_chunk=3) as pool:
        stream = pool.preprocess(mixed_subset())
        first = [next(stream).to_dict() for _ in range(4)]
        stream.close()  # chunks still queued are cancelled
        assert first == one[:4]
        assert [d.to_dict() for d in pool.preprocess(mixed_subset())] == one


def test_worker_exception_is_raised_in_the_caller_with_its_traceback(nlp):
    bad = mixed_subset()[:3]
    bad[1].passages[0].text = 12345  # not a string: the pipeline fails on it inside the worker
    with PreprocessPool(None, 1, docs_per_chunk=1) as pool:
        with pytest.raises(AttributeError) as info:
            list(pool.preprocess(bad))
        assert "Traceback" in str(info.value.__cause__) and "annotate_tasks" in str(info.value.__cause__)
        # the pool still works afterwards
        good = [d.to_dict() for d in pool.preprocess(mixed_subset()[:2])]
    assert good == [d.to_dict() for d in preprocess_documents(mixed_subset()[:2], nlp)]


def test_killed_worker_raises_worker_error():
    with PreprocessPool(None, 1, docs_per_chunk=1) as pool:
        assert len(list(pool.preprocess(mixed_subset()[:2]))) == 2  # the worker is up
        (worker,) = _workers_of(pool)
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match="preprocessing worker .* died or could not start"):
            list(pool.preprocess(mixed_subset()))


def test_worker_that_cannot_start_says_why():
    # A main program read from stdin cannot be imported again by a new process (forkserver/spawn).
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from corpora.preprocess.pool import PreprocessPool\n"
        "from corpora.schema import Document, passages_from_texts\n"
        "docs = [Document(id='1', document_id='1', passages=passages_from_texts([('t', 'A text.')]))]\n"
        "with PreprocessPool(None, 1) as pool:\n"
        "    list(pool.preprocess(docs))\n"
    )
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "WorkerError" in done.stderr and "could not start" in done.stderr and "stdin" in done.stderr


def test_daemon_process_cannot_start_workers(monkeypatch):
    class Daemon:
        daemon = True

    monkeypatch.setattr(multiprocessing, "current_process", lambda: Daemon())
    with pytest.raises(ConfigError, match="daemon .* --workers 1"):
        PreprocessPool(None, 1)
