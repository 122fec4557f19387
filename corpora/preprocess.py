"""scispaCy preprocessing: sentences, tokens and abbreviations as exact character offsets.

Each passage goes through the pipeline on its own (no sentence crosses a passage boundary) and its
offsets are shifted by the passage start, so every offset points into `Document.text` and the text
itself is never rewritten. The pipeline's output is turned into plain integers right after
`nlp.pipe` (scispaCy keeps abbreviations as `Span`s in `doc._`, which neither pickle nor survive a
process boundary): `annotate_tasks` takes and returns only tuples, lists, strings, ints and int
arrays, which is what `corpora.parallel_preprocess` ships between processes. One code path serves 1 and N workers.

Offsets, precisely: a token is a non-whitespace spaCy token; a sentence starts at its first
non-whitespace token and ends after its last one, so the sentences of a passage never overlap and
together cover every token, hence every non-whitespace character.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
import scispacy.abbreviation  # noqa: F401  (registers the "abbreviation_detector" factory)
import spacy
from scispacy.custom_tokenizer import combined_rule_tokenizer
from scispacy.version import VERSION as SCISPACY_VERSION

from corpora.abbreviation_matchers import use_array_matchers
from corpora.errors import ConfigError, MalformedInputError
from corpora.schema import Abbreviation, Deletion, Document, Span
from corpora.sentence_segmentation import COMPONENT_NAME, RULES_VERSION
from corpora.token_offsets import ChunkOffsets

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

    from corpora.parallel_preprocess import PreprocessPool

logger = logging.getLogger(__name__)

# Bump when what `annotate_tasks` produces changes: part of the fingerprint the cache keys on.
PREPROCESS_VERSION = "1"
DEFAULT_BATCH_SIZE = 64
DOCS_PER_CHUNK = 32
SCISPACY_MODELS = ("en_core_sci_sm", "en_core_sci_md", "en_core_sci_lg", "en_core_sci_scibert")
_MODEL_URL = "https://s3-us-west-2.amazonaws.com/ai2-s2-scispacy/releases/v0.5.4/{name}-0.5.4.tar.gz"
_SPEC_KEY = "biomed_preprocess"  # nlp.meta entry recording how build_pipeline made the pipeline
_MODEL_KEEP = ("tok2vec", "transformer", "parser", "senter")  # what sentence boundaries need
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
_SAFE_CUTS = (re.compile(r"\n[^\S\n]*\n"), re.compile(r"\n"), re.compile(r"[.!?][)\]\"']*\s"), re.compile(r"\s"))

# Plain values that cross process boundaries.
PassageTask = tuple[str, str, int]  # passage id, text, start offset in the document text
DocTask = tuple[str, tuple[PassageTask, ...]]  # document id, passages in text order
AbbrevTuple = tuple[str, str, int, int, int, int]  # short, long, short start/end, long start/end
# sentences and tokens as (n, 2) int64 arrays of [start, end) offsets, abbreviations, warnings
DocResult = tuple[np.ndarray, np.ndarray, list[AbbrevTuple], list[str]]


def build_pipeline(spacy_model: str | None = None) -> Language:
    """The preprocessing pipeline: tokenizer, sentence boundaries, abbreviation detector.

    Without `spacy_model`: `spacy.blank("en")` with scispaCy's combined-rule tokenizer and our
    rule-based `biomed_sentence_segmenter`. With it: that installed spaCy/scispaCy model (package
    name or directory), keeping only what its parser needs for sentence boundaries. Raises
    ConfigError when the model is not installed or gives no sentence boundaries.
    """
    if spacy_model is None:
        nlp = spacy.blank("en")
        with warnings.catch_warnings():
            # scispaCy's suffix pattern trips a harmless "Possible set union" FutureWarning in `re`.
            warnings.filterwarnings("ignore", message="Possible set union", category=FutureWarning)
            nlp.tokenizer = combined_rule_tokenizer(nlp)
        nlp.add_pipe(COMPONENT_NAME)
    else:
        nlp = _load_model(spacy_model)
    use_array_matchers(nlp.add_pipe("abbreviation_detector"))
    nlp.meta[_SPEC_KEY] = {"spacy_model": spacy_model}
    return nlp


def _load_model(name: str) -> Language:
    try:
        nlp = spacy.load(name)
    except (OSError, ImportError, ValueError) as exc:
        if name in SCISPACY_MODELS:
            how = f"pip install {_MODEL_URL.format(name=name)}"
        else:
            how = f"pip install the package that provides {name!r} (python -m spacy download {name} for spaCy's own models), or pass a model directory"
        raise ConfigError(f"--spacy-model {name}: the model is not installed ({exc}). Install it with: {how}") from exc
    if "parser" not in nlp.pipe_names and "senter" not in nlp.pipe_names:
        raise ConfigError(f"--spacy-model {name}: the model has no parser or senter to give sentence boundaries (components: {nlp.pipe_names})")
    for pipe in list(nlp.pipe_names):
        if pipe not in _MODEL_KEEP:
            nlp.disable_pipe(pipe)
    return nlp


def pipeline_spec(nlp: Language) -> str | None:
    """The `spacy_model` argument `build_pipeline` made `nlp` with (workers rebuild it from this)."""
    if _SPEC_KEY not in nlp.meta:
        raise ConfigError("the pipeline was not made by corpora.preprocess.build_pipeline, so worker processes cannot rebuild it")
    return nlp.meta[_SPEC_KEY]["spacy_model"]


def pipeline_fingerprint(nlp: Language) -> dict[str, object]:
    """Components, versions and a stable `hash` of everything that decides the output.

    The manifest records it and the Prefect cache keys on `hash`; the tokenizer's serialized rules
    are hashed too, so a scispaCy upgrade that changes tokenization changes the hash.
    """
    spec = nlp.meta.get(_SPEC_KEY, {}).get("spacy_model")
    info: dict[str, object] = {
        "components": list(nlp.pipe_names),
        "spacy": spacy.__version__,
        "scispacy": SCISPACY_VERSION,
        "model": {"name": f"{nlp.meta.get('lang', 'en')}_{nlp.meta.get('name')}", "version": nlp.meta.get("version")}
        if spec is not None
        else {"name": f"blank:{nlp.lang}", "version": None},
        "tokenizer_sha256": hashlib.sha256(nlp.tokenizer.to_bytes(exclude=["vocab"])).hexdigest(),
        "sentence_rules": RULES_VERSION if COMPONENT_NAME in nlp.pipe_names else None,
        "preprocess": PREPROCESS_VERSION,
        "max_length": nlp.max_length,
    }
    info["hash"] = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]
    return info


def preprocess_documents(
    docs: Iterable[Document | Deletion],
    nlp: Language,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 1,
    docs_per_chunk: int = DOCS_PER_CHUNK,
    pool: PreprocessPool | None = None,
) -> Iterator[Document | Deletion]:
    """Add `sentences`, `tokens` and `abbreviations` to each Document (in place) and yield it.

    Order is kept; `Deletion`s pass through untouched. With `workers > 1`, `workers` processes
    annotate: this one and `workers - 1` pool processes that each rebuild `nlp` from its spec
    (`corpora.parallel_preprocess`); the output is identical. A started pool costs seconds, so
    callers with many inputs can pass one `pool` (`PreprocessPool(spec, workers - 1, nlp=nlp)`)
    for all of them instead (`workers` is then ignored). Warnings about skipped or split
    passages are logged here, in the calling process.
    """
    if pool is not None:
        yield from pool.preprocess(docs)
        return
    if workers > 1:
        from corpora.parallel_preprocess import preprocess_parallel

        spec = pipeline_spec(nlp)
        yield from preprocess_parallel(docs, spec, workers, batch_size=batch_size, docs_per_chunk=docs_per_chunk, nlp=nlp)
        return
    items = iter(docs)
    while chunk := list(islice(items, docs_per_chunk)):
        tasks = [document_task(d) for d in chunk if isinstance(d, Document)]
        apply_results(chunk, annotate_tasks(nlp, tasks, batch_size))
        yield from chunk


def document_task(doc: Document) -> DocTask:
    """The plain values of `doc` that preprocessing needs: its passages in text order."""
    for p in doc.passages:
        if not p.offsets:
            raise MalformedInputError(doc.source.path or "<document>", f"passage {p.id!r} has no offsets", record=doc.id)
    ordered = sorted(doc.passages, key=lambda p: p.offsets[0][0])
    return doc.id, tuple((p.id, p.text, p.offsets[0][0]) for p in ordered)


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


def annotate_tasks(nlp: Language, tasks: Sequence[DocTask], batch_size: int = DEFAULT_BATCH_SIZE) -> list[DocResult]:
    """Run the pipeline over every passage of `tasks` in one `nlp.pipe` stream; plain values out."""
    pieces: list[tuple[str, tuple[int, int, int]]] = []
    notes: list[list[str]] = [[] for _ in tasks]
    for t, (doc_id, passages) in enumerate(tasks):
        for p, (pid, text, start) in enumerate(passages):
            for piece, offset in _pieces(text, nlp.max_length, f"document {doc_id}, passage {pid}", notes[t]):
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
        _document_result(task, sentences, tokens, per_passage, note)
        for task, (sentences, tokens), per_passage, note in zip(tasks, offsets.results(), found, notes)
    ]


def _pieces(text: str, max_length: int, where: str, notes: list[str]) -> Iterator[tuple[str, int]]:
    """The text(s) to run the pipeline on for one passage, with their offsets in the passage.

    Whitespace-only passages are skipped; lone surrogates (which spaCy cannot hash) are replaced by
    U+FFFD one for one, so offsets stay valid; passages longer than `max_length` are cut at blank
    lines, newlines, sentence ends or whitespace. Each such event adds a note.
    """
    if not text:
        return
    if text.isspace():
        notes.append(f"{where}: only whitespace ({len(text)} characters), skipped")
        return
    if _SURROGATE.search(text):
        notes.append(f"{where}: lone UTF-16 surrogates replaced by U+FFFD for tokenization (offsets unchanged)")
        text = _SURROGATE.sub("\ufffd", text)
    if m := _CONTROL.search(text):
        notes.append(f"{where}: control character U+{ord(m.group()):04X} at {m.start()} (kept inside tokens)")
    if len(text) <= max_length:
        yield text, 0
        return
    cuts = _cut_points(text, max_length)
    mid_word = [c for c in cuts if not text[c].isspace() and not text[c - 1].isspace()]
    notes.append(
        f"{where}: {len(text)} characters, more than the pipeline's max_length {max_length}: "
        f"processed in {len(cuts) + 1} pieces cut at {cuts}; sentences do not cross those cuts"
        + (f"; no whitespace to cut at, so words are split at {mid_word}" if mid_word else "")
    )
    bounds = [0, *cuts, len(text)]
    for a, b in zip(bounds, bounds[1:]):
        yield text[a:b], a


def _cut_points(text: str, max_length: int) -> list[int]:
    """Offsets at which to cut `text` into pieces of at most `max_length` characters.

    Each cut is the last blank line, else newline, else sentence end, else whitespace in the second
    half of the window (the whitespace starts the next piece, which is harmless: whitespace is never
    part of a token); only text without any whitespace is cut mid-word.
    """
    cuts: list[int] = []
    pos = 0
    while len(text) - pos > max_length:
        lo, hi = pos + max_length // 2, pos + max_length
        cut = hi
        for pattern in _SAFE_CUTS:
            last = None
            for last in pattern.finditer(text, lo, hi):
                pass
            if last is not None:
                cut = last.end() - 1 if pattern is _SAFE_CUTS[2] else last.start()
                break
        cut = max(cut, pos + 1)
        cuts.append(cut)
        pos = cut
    return cuts


def _take_abbreviations(doc: Doc, offset: int, abbrs: list[tuple[int, int, int, int]]) -> None:
    """Append `doc`'s abbreviations (short start/end, long start/end, shifted by `offset`) and drop
    scispaCy's Spans: they live in `doc.user_data` and point back at `doc`, a cycle only the
    garbage collector would otherwise free."""
    for short in doc._.abbreviations:
        long = short._.long_form
        abbrs.append((short.start_char + offset, short.end_char + offset, long.start_char + offset, long.end_char + offset))
    doc.user_data.clear()


def _document_result(
    task: DocTask, sentences: np.ndarray, tokens: np.ndarray, per_passage: list[list[tuple[int, int, int, int]]], notes: list[str]
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
