"""Preprocess benchmark: `preprocess_documents` with N worker processes against three peers.

Every side uses the same pipeline (`corpora.preprocess.build_pipeline()`: scispaCy tokenizer, our
sentence segmenter, scispaCy's abbreviation detector) on the same documents, and produces the same
Document fields (sentences, tokens and abbreviations as character offsets, title uses of
abstract-defined short forms included); the run checks that all outputs are identical.

* ours: `preprocess_documents(docs, nlp, workers=N)` (default N=2 worker processes; the caller
  applies their results), timed from the call to the last document, pool start-up included
  ("cold"); then once through a `PreprocessPool` that is already up ("warm": what every shard
  after the first sees in `biomed preprocess --workers 2`, which starts one pool per run), and
  with `workers=1`;
* peer: a single-process loop calling `nlp(passage.text)` per passage and reading the offsets off
  each spaCy Doc in plain Python (tokens, trimmed sentences, `doc._.abbreviations`);
* spaCy's own `nlp.pipe(texts, n_process=N)` (scispaCy's detector in `make_serializable` mode), the
  offsets read in the caller with our vectorized code;
* a plain `multiprocessing.Pool(N).imap` over chunks of passage texts, each worker returning
  offsets (`annotate_tasks`).

Documents: the bundled abstracts (PubMed XML samples and the NCBI-disease / BC5CDR PubTator
samples, 777 documents) replicated under new ids to --docs documents (default 5,000), built before
any timing. Every side runs --repeat times, interleaved, and the fastest run of each counts (other
jobs share the cores). The last stdout line is a JSON object with each side's documents/s, the
ratios, every run's seconds and the machine load.

    .venv/bin/python benchmarks/bench_preprocess.py                # 5,000 documents, 2 workers
    .venv/bin/python benchmarks/bench_preprocess.py --docs 1000    # quick run while developing
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT / "corpora" / "samples"


def bundled_abstracts() -> list:
    """The PubMed XML and PubTator sample documents (title + abstract passages)."""
    from corpora.formats.pubmed_xml import read_pubmed_xml
    from corpora.formats.pubtator import read_pubtator
    from corpora.schema import Document

    docs: list[Document] = []
    for path in sorted((SAMPLES / "pubmed").iterdir()):
        if path.name.endswith((".xml", ".xml.gz")):
            docs += [d for d in read_pubmed_xml(path) if isinstance(d, Document)]
    for path in sorted(SAMPLES.glob("*/*.PubTator.txt")):
        docs += list(read_pubtator(path))
    return docs


def replicate(docs: list, n: int) -> list:
    """`n` fresh Document objects cycling through `docs`, each under its own id."""
    from corpora.schema import Document

    rows = [d.to_dict() for d in docs]
    out = []
    for i in range(n):
        row = dict(rows[i % len(rows)])
        row["id"] = f"{row['id']}-r{i // len(rows)}"
        out.append(Document.from_dict(row))
    return out


def peer_preprocess(docs: list, nlp) -> list:
    """The plain way: `nlp(text)` per passage, offsets read off the spaCy Doc in Python."""
    from corpora.schema import Abbreviation, Span

    for doc in docs:
        text = doc.text
        sentences, tokens, found = [], [], []
        passages = sorted(doc.passages, key=lambda p: p.offsets[0][0])
        per_passage = []
        for p in passages:
            off = p.offsets[0][0]
            if not p.text or p.text.isspace():
                per_passage.append((p.text, off, set(), set()))
                continue
            sdoc = nlp(p.text)
            toks = [(t.idx + off, t.idx + len(t.text) + off) for t in sdoc if not t.is_space]
            tokens += toks
            for sent in sdoc.sents:
                words = [t for t in sent if not t.is_space]
                if words:
                    sentences.append(Span(words[0].idx + off, words[-1].idx + len(words[-1].text) + off))
            shorts = set()
            for short in sdoc._.abbreviations:
                long = short._.long_form
                found.append((short.start_char + off, short.end_char + off, long.start_char + off, long.end_char + off))
                shorts.add(short.text)
            per_passage.append((p.text, off, shorts, toks))
        # Uses of a short form in passages where scispaCy did not see its definition.
        definitions = {}
        for ss, se, ls, le in found:
            short = text[ss:se]
            if short not in definitions or (ls, le) < definitions[short]:
                definitions[short] = (ls, le)
        known = {(ss, se) for ss, se, _, _ in found}
        extra = set()
        if len(passages) > 1:
            for ptext, off, shorts, toks in per_passage:
                starts, ends = {a for a, _ in toks}, {b for _, b in toks}
                for short, (ls, le) in definitions.items():
                    if short in shorts or not any(c.isupper() or c.isdigit() for c in short):
                        continue
                    i = ptext.find(short)
                    while i >= 0:
                        if (
                            off + i in starts
                            and off + i + len(short) in ends
                            and (off + i, off + i + len(short)) not in known
                        ):
                            extra.add((off + i, off + i + len(short), ls, le))
                        i = ptext.find(short, i + 1)
        doc.sentences = sentences
        doc.tokens = [Span(a, b) for a, b in tokens]
        doc.abbreviations = [
            Abbreviation(f"{doc.id}-abbr{i}", text[ss:se], text[ls:le], [ss, se], [ls, le])
            for i, (ss, se, ls, le) in enumerate(sorted(set(found) | extra))
        ]
    return docs


# --- the two library ways of running the same pipeline in 2 processes --------------------------


def _abbreviation_offsets(sdoc, shift: int) -> list[tuple[int, int, int, int]]:
    """scispaCy's serializable abbreviations (token indices) as character offsets + `shift`."""
    out = []
    for a in sdoc._.abbreviations:
        s, e = sdoc[a["short_start"] : a["short_end"]], sdoc[a["long_start"] : a["long_end"]]
        out.append((s.start_char + shift, s.end_char + shift, e.start_char + shift, e.end_char + shift))
    return out


def spacy_n_process_preprocess(docs: list, n_process: int, batch_size: int = 64) -> list:
    """spaCy's own multiprocessing: one `nlp.pipe(texts, n_process=N)` stream over every passage,
    with scispaCy's detector in `make_serializable` mode (its default keeps Spans in `doc._`,
    which cannot cross processes: E871). Workers send whole Docs back (`Doc.to_bytes`); the caller
    reads the offsets with the same vectorized code as ours and resolves abbreviations the same way."""
    from corpora.preprocess.chunks import apply_results, document_result
    from corpora.preprocess.passages import document_task
    from corpora.preprocess.token_offsets import ChunkOffsets

    nlp = _serializable_pipeline()
    tasks = [document_task(d) for d in docs]
    pieces = [
        (text, (t, p, start))
        for t, (_, passages) in enumerate(tasks)
        for p, (_, text, start) in enumerate(passages)
        if text and not text.isspace()
    ]
    offsets = ChunkOffsets(len(tasks))
    found = [[[] for _ in passages] for _, passages in tasks]
    for sdoc, (t, p, start) in nlp.pipe(pieces, as_tuples=True, batch_size=batch_size, n_process=n_process):
        offsets.add(sdoc, start, t)
        found[t][p] = _abbreviation_offsets(sdoc, start)
    results = [document_result(task, s, tk, per, []) for task, (s, tk), per in zip(tasks, offsets.results(), found)]
    apply_results(docs, results)
    return docs


def _serializable_pipeline():
    """`build_pipeline()` with scispaCy's detector in `make_serializable` mode (and our array
    matchers, as in ours), so Docs cross process boundaries."""
    from corpora.preprocess.abbreviation_matchers import use_array_matchers
    from corpora.preprocess.pipeline import build_pipeline

    nlp = build_pipeline()
    nlp.remove_pipe("abbreviation_detector")
    use_array_matchers(nlp.add_pipe("abbreviation_detector", config={"make_serializable": True}))
    return nlp


_POOL_NLP: list = []


def _pool_init() -> None:
    import sys as _sys

    _sys.modules["torch"] = None  # the rule-based pipeline never uses torch; ours hides it too
    from corpora.preprocess.pipeline import build_pipeline

    del _sys.modules["torch"]
    _POOL_NLP.append(build_pipeline())


def _pool_annotate(tasks: list) -> list:
    from corpora.preprocess.chunks import annotate_tasks

    return annotate_tasks(_POOL_NLP[0], tasks)


def mp_pool_preprocess(docs: list, processes: int, docs_per_chunk: int = 32) -> list:
    """The plain multiprocessing way: `multiprocessing.Pool(N).imap` over chunks of passage texts
    (forkserver, as ours), each worker building the pipeline once and returning plain offsets
    (`annotate_tasks`); the caller applies each chunk's results as it comes back, in order."""
    import multiprocessing

    from corpora.preprocess.chunks import apply_results
    from corpora.preprocess.passages import document_task

    chunks = [docs[i : i + docs_per_chunk] for i in range(0, len(docs), docs_per_chunk)]
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(processes, initializer=_pool_init) as pool:
        for chunk, results in zip(chunks, pool.imap(_pool_annotate, ([document_task(d) for d in c] for c in chunks))):
            apply_results(chunk, results)
    return docs


def _cpu() -> float:
    """CPU seconds of this process (workers are children of the forkserver, not counted here)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _autogroup() -> bool | None:
    """Whether Linux groups CPU time per session: then other sessions' jobs cap this whole session
    (caller and workers together) at one fair share, so worker processes only add speed when the
    machine is otherwise idle."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def _machine_busy() -> float:
    """CPU seconds all processes on the machine have spent so far (/proc/stat, Linux)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


BUSY: list[tuple[str, float, float]] = []  # (run, cores busy machine-wide, cores busy in this process)


def _timed(label: str, fn):
    gc.collect()
    load = os.getloadavg()[0]
    cpu, busy, wall = _cpu(), _machine_busy(), time.perf_counter()
    out = fn()
    wall, cpu, busy = time.perf_counter() - wall, _cpu() - cpu, _machine_busy() - busy
    BUSY.append((label.split(" (")[0], round(busy / wall, 2), round(cpu / wall, 2)))
    print(
        f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU in the calling process; machine-wide "
        f"{busy / wall:.2f} cores busy (load before {load:.2f})",
        flush=True,
    )
    return out, wall, cpu


_CAL: dict = {}


def _calibration_init() -> None:
    """A calibration process: the pipeline and the documents, vocabulary warmed (untimed)."""
    from corpora.preprocess.pipeline import build_pipeline

    warnings.filterwarnings("ignore", message=r".*\[W036\]")  # after spaCy's own filter
    base = bundled_abstracts()
    _CAL.update(nlp=build_pipeline(), base=base)
    peer_preprocess(replicate(base, len(base)), _CAL["nlp"])


def _calibration_run(n: int) -> tuple[float, float]:
    docs = replicate(_CAL["base"], n)
    t, c = time.perf_counter(), time.process_time()
    peer_preprocess(docs, _CAL["nlp"])
    return time.perf_counter() - t, time.process_time() - c


def machine_scaling(n_docs: int, peer_wall: float) -> dict:
    """The peer loop in 2 processes at once, n_docs/2 each: how much faster 2 processes finish the
    work than one (`peer_wall`) on this machine, with no pool start-up or IPC in the way."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=_calibration_init) as ex:
        list(ex.map(_calibration_run, [1, 1]))  # both processes started and warmed
        t = time.perf_counter()
        runs = list(ex.map(_calibration_run, [n_docs // 2, n_docs - n_docs // 2]))
        wall = time.perf_counter() - t
    print(
        f"calibration: the peer loop in 2 processes at once, {n_docs // 2} documents each: "
        f"{wall:.2f} s wall (process CPU {[round(c, 2) for _, c in runs]})",
        flush=True,
    )
    return {"two_process_wall_s": round(wall, 2), "two_process_speedup": round(peer_wall / wall, 2)}


def _summary(docs: list) -> list:
    return [
        (
            d.id,
            [(s.start, s.end) for s in d.sentences],
            [(t.start, t.end) for t in d.tokens],
            [vars(a) for a in d.abbreviations],
        )
        for d in docs
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=5000, help="documents after replication (default 5000)")
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes for ours and the peers that use several (default 2)",
    )
    ap.add_argument(
        "--repeat", type=int, default=2, help="runs of each side, interleaved; the fastest counts (default 2)"
    )
    ap.add_argument("--skip-extra", action="store_true", help="only the cold runs of ours and the peer")
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="also time the peer loop in 2 processes at once (the machine's own 2-process speed-up)",
    )
    args = ap.parse_args()
    from corpora.preprocess.documents import preprocess_documents

    # After spaCy's import, which installs its own "once" filter for this warning: scispaCy runs an
    from corpora.preprocess.pipeline import build_pipeline, pipeline_fingerprint
    from corpora.preprocess.pool import PreprocessPool

    # empty matcher on every text without abbreviations.
    warnings.filterwarnings("ignore", message=r".*\[W036\]")

    base = bundled_abstracts()
    nlp = build_pipeline()
    # Every bundled document once through both code paths, so the shared pipeline's vocabulary
    # already holds every word before any timing (a fresh pool process still starts cold).
    list(preprocess_documents(replicate(base, len(base)), nlp))
    peer_preprocess(replicate(base, len(base)), nlp)
    # Inputs are built before any timing; re-annotating a Document overwrites its fields.
    # Start the forkserver once, so that no side pays for it (it imports this script's module).
    import multiprocessing

    server_start = multiprocessing.get_context("forkserver").Process(target=time.sleep, args=(0,))
    server_start.start()
    server_start.join()
    peer_docs, ours_docs = replicate(base, args.docs), replicate(base, args.docs)
    spacy_docs, mp_docs = replicate(base, args.docs), replicate(base, args.docs)
    n_passages = sum(len(d.passages) for d in ours_docs)
    print(
        f"{args.docs} documents ({len(base)} bundled, replicated), {n_passages} passages; cpus={os.cpu_count()}",
        flush=True,
    )
    load_start = os.getloadavg()

    peer_walls, peer_cpus, ours_walls, ours_cpus, loads = [], [], [], [], []
    spacy_walls: list[float] = []
    mp_walls: list[float] = []
    for _ in range(args.repeat):
        loads.append(round(os.getloadavg()[0], 2))
        _, wall, peer_cpu = _timed("peer (nlp(text) per passage, 1 process)", lambda: peer_preprocess(peer_docs, nlp))
        peer_walls.append(wall)
        peer_cpus.append(peer_cpu)
        _, wall, cpu = _timed(
            f"ours (preprocess_documents, workers={args.workers}, cold: pool start-up included)",
            lambda: list(preprocess_documents(ours_docs, nlp, workers=args.workers)),
        )
        ours_walls.append(wall)
        ours_cpus.append(cpu)
        _, wall, _ = _timed(
            f"spaCy nlp.pipe(n_process={args.workers}), serializable abbreviations",
            lambda: spacy_n_process_preprocess(spacy_docs, args.workers),
        )
        spacy_walls.append(wall)
        _, wall, _ = _timed(
            f"multiprocessing.Pool({args.workers}).imap over chunks", lambda: mp_pool_preprocess(mp_docs, args.workers)
        )
        mp_walls.append(wall)
    ours_summary = _summary(ours_docs)
    identical = ours_summary == _summary(peer_docs) == _summary(spacy_docs) == _summary(mp_docs)
    peer_wall, ours_wall = min(peer_walls), min(ours_walls)
    result = {
        "docs": args.docs,
        "passages": n_passages,
        "tokens": sum(len(d.tokens) for d in ours_docs),
        "workers": args.workers,
        "ours_per_s": round(args.docs / ours_wall, 1),
        "peer_per_s": round(args.docs / peer_wall, 1),
        "ratio": round(peer_wall / ours_wall, 2),
        # each peer run against the ours run that followed it (the machine's speed drifts)
        "ratio_per_pair": [round(p / o, 2) for p, o in zip(peer_walls, ours_walls)],
        "spacy_n_process_per_s": round(args.docs / min(spacy_walls), 1),
        "mp_pool_per_s": round(args.docs / min(mp_walls), 1),
        # ours against the better of the two library ways of using 2 processes (best against best)
        "ratio_vs_best_library_pool": round(min(min(spacy_walls), min(mp_walls)) / ours_wall, 2),
        "ours_runs_s": [round(w, 2) for w in ours_walls],
        "spacy_n_process_runs_s": [round(w, 2) for w in spacy_walls],
        "mp_pool_runs_s": [round(w, 2) for w in mp_walls],
        "peer_runs_s": [round(w, 2) for w in peer_walls],
        "ours_caller_cpu_s": round(min(ours_cpus), 2),
        "peer_cpu_s": round(peer_cpus[peer_walls.index(peer_wall)], 2),
        "outputs_identical": identical,
    }
    if not args.skip_extra:
        with PreprocessPool(None, args.workers, expected=pipeline_fingerprint(nlp)["hash"]) as pool:
            # Start the workers and show them every bundled document once (warm vocabulary).
            list(pool.preprocess(replicate(base, len(base))))
            _, warm_wall, warm_cpu = _timed(
                f"ours (PreprocessPool already up, workers={args.workers})", lambda: list(pool.preprocess(ours_docs))
            )
        _, one_wall, _ = _timed("ours (workers=1)", lambda: list(preprocess_documents(ours_docs, nlp)))
        result.update(
            ours_warm_per_s=round(args.docs / warm_wall, 1),
            ratio_warm=round(peer_wall / warm_wall, 2),
            ours_warm_caller_cpu_s=round(warm_cpu, 2),
            peer_cores_used=round(peer_cpus[peer_walls.index(peer_wall)] / peer_wall, 2),
            ours_1worker_per_s=round(args.docs / one_wall, 1),
        )
    if args.calibrate:
        result["machine"] = machine_scaling(args.docs, peer_wall)
    result.update(
        cpus=os.cpu_count(),
        sched_autogroup=_autogroup(),
        load_start=[round(x, 2) for x in load_start],
        load_before_runs=loads,
        load_end=[round(x, 2) for x in os.getloadavg()],
        pipeline_hash=pipeline_fingerprint(nlp)["hash"],
        machine_cores_busy_per_run=[b for _, b, _ in BUSY],
    )
    if not identical:
        print("ERROR: ours and the peer produced different annotations", file=sys.stderr)
    print(json.dumps(result), flush=True)
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
