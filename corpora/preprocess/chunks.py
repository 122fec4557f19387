"""Annotate a chunk of documents: plain values in, offsets out, and the way back onto Documents.

`annotate_tasks` takes and returns only tuples, lists, strings, ints and int arrays, which is what
crosses process boundaries in parallel preprocessing; one code path serves 1 and N processes. The
pipeline's output is turned into plain integers right after `nlp.pipe` (scispaCy keeps
abbreviations as `Span`s in `doc._`, which neither pickle nor survive a process boundary).

Offsets, precisely: a token is a non-whitespace spaCy token; a sentence starts at its first
non-whitespace token and ends after its last one, so the sentences of a passage never overlap and
together cover every token, hence every non-whitespace character. Every offset points into
`Document.text`, which is never rewritten.

Tested in `tests/corpora/preprocess/test_documents.py`.
"""

from __future__ import annotations

import gc
import logging
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from corpora.preprocess.passages import DocTask, PassageTask, passage_pieces
from corpora.preprocess.token_offsets import ChunkOffsets
from corpora.schema import Abbreviation, Deletion, Document, Span

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64  # passages per nlp.pipe batch
DOCS_PER_CHUNK = 32  # documents per unit of work (one pool task)
AbbrevTuple = tuple[str, str, int, int, int, int]  # short, long, short start/end, long start/end
# sentences and tokens as (n, 2) int64 arrays of [start, end) offsets, abbreviations, warnings
DocResult = tuple[np.ndarray, np.ndarray, list[AbbrevTuple], list[str]]


def annotate_tasks(nlp: Language, tasks: Sequence[DocTask], batch_size: int = DEFAULT_BATCH_SIZE) -> list[DocResult]:
    """Run the pipeline over every passage of `tasks` in one `nlp.pipe` stream; plain values out."""
    pieces: list[tuple[str, tuple[int, int, int]]] = []
    notes: list[list[str]] = [[] for _ in tasks]
    for t, (doc_id, passages) in enumerate(tasks):
        for p, (pid, text, start) in enumerate(passages):
            for piece, offset in passage_pieces(text, nlp.max_length, f"document {doc_id}, passage {pid}", notes[t]):
                pieces.append((piece, (t, p, start + offset)))
    offsets = ChunkOffsets(len(tasks))
    found: list[list[list[tuple[int, int, int, int]]]] = [[[] for _ in passages] for _, passages in tasks]
    with warnings.catch_warnings():
        # A scispaCy whose detector keeps spaCy's global matcher runs it empty on every text (W036).
        warnings.filterwarnings("ignore", message=r"\[W036\]")
        for doc, (t, p, offset) in nlp.pipe(pieces, as_tuples=True, batch_size=batch_size):
            offsets.add(doc, offset, t)
            _take_abbreviations(doc, offset, found[t][p])
    return [
        document_result(task, sentences, tokens, per_passage, note)
        for task, (sentences, tokens), per_passage, note in zip(tasks, offsets.results(), found, notes)
    ]


def _take_abbreviations(doc: Doc, offset: int, abbrs: list[tuple[int, int, int, int]]) -> None:
    """Append `doc`'s abbreviations (short start/end, long start/end, shifted by `offset`) and drop
    scispaCy's Spans: they live in `doc.user_data` and point back at `doc`, a cycle only the
    garbage collector would otherwise free."""
    for short in doc._.abbreviations:
        long = short._.long_form
        abbrs.append(
            (short.start_char + offset, short.end_char + offset, long.start_char + offset, long.end_char + offset)
        )
    doc.user_data.clear()


def document_result(
    task: DocTask,
    sentences: np.ndarray,
    tokens: np.ndarray,
    per_passage: list[list[tuple[int, int, int, int]]],
    notes: list[str],
) -> DocResult:
    """A document's offsets with its abbreviations resolved across passages (title uses of a short
    form defined in the abstract count too), sorted by position, with their strings."""
    _, passages = task
    definitions: dict[str, tuple[int, int]] = {}
    occurrences: set[tuple[int, int, int, int]] = set()
    texts = {}
    for (pid, text, start), abbrs in zip(passages, per_passage):
        texts[start] = text
        for ss, se, ls, le in abbrs:
            occurrences.add((ss, se, ls, le))
            short = text[ss - start : se - start]
            if short not in definitions or (ls, le) < definitions[short]:
                definitions[short] = (ls, le)
    if definitions and len(passages) > 1:
        occurrences |= _uses_in_other_passages(passages, per_passage, tokens, definitions, occurrences)
    by_start = sorted(texts)
    abbreviations = []
    for ss, se, ls, le in sorted(occurrences):
        short = _slice(texts, by_start, ss, se)
        abbreviations.append((short, _slice(texts, by_start, ls, le), ss, se, ls, le))
    return sentences, tokens, abbreviations, notes


def _uses_in_other_passages(
    passages: tuple[PassageTask, ...],
    per_passage: list[list[tuple[int, int, int, int]]],
    tokens: np.ndarray,
    definitions: dict[str, tuple[int, int]],
    known: set,
) -> set[tuple[int, int, int, int]]:
    """Occurrences, at token boundaries, of defined short forms in passages that lack them."""
    found = set()
    known_shorts = {(ss, se) for ss, se, _, _ in known}
    for (pid, text, start), abbrs in zip(passages, per_passage):
        local = {text[ss - start : se - start] for ss, se, _, _ in abbrs}
        wanted = [(short, long) for short, long in definitions.items() if short not in local and _propagates(short)]
        if not wanted:
            continue  # scispaCy already found this passage's uses (or a different definition)
        inside = tokens[(tokens[:, 0] >= start) & (tokens[:, 1] <= start + len(text))]
        token_starts, token_ends = set(inside[:, 0].tolist()), set(inside[:, 1].tolist())
        for short, (ls, le) in wanted:
            i = text.find(short)
            while i >= 0:
                ss, se = start + i, start + i + len(short)
                if ss in token_starts and se in token_ends and (ss, se) not in known_shorts:
                    found.add((ss, se, ls, le))
                i = text.find(short, i + 1)
    return found


def _propagates(short: str) -> bool:
    """Only short forms that look like abbreviations (a capital or a digit: "APC", "p53") are looked
    for in other passages; scispaCy also returns plain words ("mice (mice)"), which would spread."""
    return any(c.isupper() or c.isdigit() for c in short)


def _slice(texts: dict[int, str], by_start: list[int], s: int, e: int) -> str:
    """The document text between `s` and `e`, which lie inside one passage."""
    start = max(b for b in by_start if b <= s)
    return texts[start][s - start : e - start]


def apply_results(chunk: Sequence[Document | Deletion], results: Sequence[DocResult]) -> None:
    """Apply `results` (one per Document of `chunk`, in order) with the cyclic GC paused.

    A chunk makes tens of thousands of small acyclic objects (`Span`s); with the collector on,
    its generation scans over everything the caller holds cost about 4x the building itself.
    The pause never spans a `yield`, so callers' code always runs with the GC as they set it.
    """
    it = iter(results)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for item in chunk:
            if isinstance(item, Document):
                apply_result(item, next(it))
    finally:
        if enabled:
            gc.enable()


def apply_result(doc: Document, result: DocResult) -> Document:
    """Store one `annotate_tasks` result on `doc` as schema objects, and log its warnings."""
    sentences, tokens, abbreviations, notes = result
    for note in notes:
        logger.warning(note)
    doc.sentences = list(map(Span, sentences[:, 0].tolist(), sentences[:, 1].tolist()))
    doc.tokens = list(map(Span, tokens[:, 0].tolist(), tokens[:, 1].tolist()))
    doc.abbreviations = [
        Abbreviation(f"{doc.id}-abbr{i}", short, long, [ss, se], [ls, le])
        for i, (short, long, ss, se, ls, le) in enumerate(abbreviations)
    ]
    return doc
