"""Relation-extraction inputs: sentence-level candidate pairs, argument marking, windowed features.

Candidates (`relation_candidates`): for each sentence of a Document (`sentences` from a reader or
from preprocessing), every ordered pair (arg1, arg2) of distinct entities whose types match one of
the task's `type_pairs` (ChemProt: CHEMICAL with GENE-Y or GENE-N; BC5CDR CID: Chemical with
Disease; DDI: any two of drug, brand, group, drug_n, one candidate per unordered pair). An entity belongs to the sentence holding its start; one that runs past that sentence's end
is left out of every candidate (counted). A discontinuous entity is marked over its outer span.

Labels: mention-level tasks (ChemProt) take the type of a document relation whose (arg1_id, arg2_id)
is the pair, when that type is one of the task's `labels`; anything else is the negative label. A
pair with several relation types (ChemProt's sample has one pair gold for both CPR:4 and CPR:3) keeps
the first in document order (a single-label classifier can give only one; counted as
`label_conflicts`).
Concept-level tasks (BC5CDR CID: relations link a chemical concept to a disease concept, the readers
keep the two concept ids in `Relation.normalized`) label a pair positive when some concept id of
arg1 and some concept id of arg2 form a relation's (concept1, concept2), so every co-occurring
mention pair of a CID concept pair in a sentence is positive; relations whose concepts never share
a sentence have no candidate (counted as `cross_sentence`).

Marking (`mark_candidate`), styles:
- `entity_markers`: "[E1] mention [/E1]" and "[E2] mention [/E2]";
- `typed_markers`: "[E1-CHEMICAL] mention [/E1-CHEMICAL]" (type aliases applied: GENE-Y -> GENE);
- `blue`: the mention replaced by "@CHEMICAL$" / "@GENE$" (BLUE benchmark), "@CHEM-GENE$" when the two
  arguments overlap;
- `bioelectra`: arg1 -> "BC6ENTC", arg2 -> "BC6ENTG", every other entity of the sentence -> "BC6OTHER"
  (the BioELECTRA / NeMo data), overlapping others merged into one mask.
The marked text keeps a per-character map to document offsets (-1 for inserted characters).

Windows (`tokenize_re`): an input longer than `max_length` is cut to a window of subwords that holds
both arguments with their markers, centred on them and widened symmetrically, never splitting a word
at its edges when that can be avoided. When the two arguments themselves span more than the window,
the candidate gets no feature and a warning names it (`missing_candidates` lists them, so an
evaluation can count them as predicted negative rather than lose them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomodels.ner_data import special_token_layout
from corpora.errors import ConfigError, InputError, MalformedInputError, ModelError
from corpora.schema import Document, Entity
from corpora.textio import iter_lines

log = logging.getLogger(__name__)

NEGATIVE_LABEL = "false"
STYLES = ("entity_markers", "typed_markers", "blue", "bioelectra")
DEFAULT_TYPE_ALIASES: Mapping[str, str] = {"GENE-Y": "GENE", "GENE-N": "GENE"}
_SHORT_TYPES: Mapping[str, str] = {"CHEMICAL": "CHEM"}  # BLUE's overlap mask is "@CHEM-GENE$"
BIOELECTRA_MASKS = ("BC6ENTC", "BC6ENTG", "BC6OTHER")


@dataclass(frozen=True)
class RelationTask:
    """Which entity pairs are candidates and which relation types are positive labels."""

    name: str
    type_pairs: tuple[tuple[str, str], ...]
    labels: tuple[str, ...] | None = None  # None: every relation type in the documents
    negative_label: str = NEGATIVE_LABEL
    concept_level: bool = False
    symmetric: bool = False  # one candidate per unordered pair; a relation in either direction counts


CHEMPROT_TASK = RelationTask(
    "chemprot", (("CHEMICAL", "GENE-Y"), ("CHEMICAL", "GENE-N")), ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")
)
BC5CDR_CID_TASK = RelationTask("bc5cdr-cid", (("Chemical", "Disease"),), ("CID",), concept_level=True)
DDI_TYPES = ("drug", "brand", "group", "drug_n")
# DDI 2013: every unordered pair of drug mentions in a sentence (the corpus lists one <pair> per such
# pair, e1 before e2), labelled with the interaction type; `symmetric` so each pair is one candidate
DDI_TASK = RelationTask(
    "ddi", tuple((a, b) for i, a in enumerate(DDI_TYPES) for b in DDI_TYPES[i:]), ("advise", "effect", "int", "mechanism"),
    symmetric=True,
)

# every relation task a model can be trained on, by the name recorded in its biomed.json
RELATION_TASKS: dict[str, "RelationTask"] = {t.name: t for t in (CHEMPROT_TASK, BC5CDR_CID_TASK, DDI_TASK)}


@dataclass(frozen=True)
class Mention:
    id: str
    type: str
    start: int  # document offsets (outer span)
    end: int


@dataclass
class RelationCandidate:
    id: str
    document_id: str
    sentence_index: int
    sentence_start: int
    sentence: str
    arg1: Mention
    arg2: Mention
    label: str | None
    others: list[Mention] = field(default_factory=list)


@dataclass
class CandidateStats:
    sentences: int = 0
    candidates: int = 0
    positives: int = 0
    relations: int = 0  # relations of the task's labels
    relations_covered: int = 0  # that became (at least one) positive candidate
    cross_sentence: int = 0  # whose arguments never share a sentence
    unmatched: int = 0  # arguments share a sentence but their types are not a configured pair
    entities_crossing_sentence: int = 0
    label_conflicts: int = 0


@dataclass
class MarkedExample:
    """A model input text with the two arguments located in it (a marked candidate, or a row of a
    masked sentence-level file)."""

    id: str
    text: str
    arg1_span: tuple[int, int] | None
    arg2_span: tuple[int, int] | None
    label: str | None
    char_map: list[int] | None = None  # per character of `text`: document offset, -1 if inserted
    arg1_inner: tuple[int, int] | None = None  # the mention text inside markers (marker styles)
    arg2_inner: tuple[int, int] | None = None
    line: int | None = None


# ---------------------------------------------------------------------------------------- candidates


def relation_candidates(docs: Iterable[Document], task: RelationTask = CHEMPROT_TASK) -> list[RelationCandidate]:
    """Candidate pairs of every sentence of `docs` (see the module docstring); counts are logged."""
    cands, stats = generate_candidates(docs, task)
    log.info("%s candidates: %s", task.name, stats)
    if stats.cross_sentence or stats.unmatched or stats.entities_crossing_sentence or stats.label_conflicts:
        log.warning(
            "%s: %d of %d relations have no candidate (%d across sentences, %d with unconfigured types); "
            "%d entities cross a sentence end; %d label conflicts",
            task.name, stats.relations - stats.relations_covered, stats.relations, stats.cross_sentence,
            stats.unmatched, stats.entities_crossing_sentence, stats.label_conflicts,
        )
    return cands


def generate_candidates(docs: Iterable[Document], task: RelationTask = CHEMPROT_TASK) -> tuple[list[RelationCandidate], CandidateStats]:
    stats = CandidateStats()
    out: list[RelationCandidate] = []
    for doc in docs:
        out.extend(_document_candidates(doc, task, stats))
    return out, stats


def _outer(ent: Entity) -> tuple[int, int]:
    return min(int(s) for s, _ in ent.offsets), max(int(e) for _, e in ent.offsets)


def _document_candidates(doc: Document, task: RelationTask, stats: CandidateStats) -> list[RelationCandidate]:
    if not doc.sentences:
        raise InputError(doc.source.path or doc.id, "document has no sentences; run preprocessing first", record=doc.id)
    text = doc.text
    sentences = sorted(doc.sentences, key=lambda s: s.start)
    stats.sentences += len(sentences)
    per_sentence: list[list[Mention]] = [[] for _ in sentences]
    sentence_of: dict[str, int] = {}
    for ent in doc.entities:
        if not ent.offsets:
            continue
        start, end = _outer(ent)
        k = next((i for i, s in enumerate(sentences) if s.start <= start < s.end), None)
        if k is None:
            continue
        if end > sentences[k].end:
            stats.entities_crossing_sentence += 1
            continue
        per_sentence[k].append(Mention(ent.id, ent.type, start, end))
        sentence_of[ent.id] = k
    for mentions in per_sentence:
        mentions.sort(key=lambda m: (m.start, m.end))

    pairs = set(task.type_pairs)
    if task.symmetric:
        pairs |= {(b, a) for a, b in pairs}
    wanted = set(task.labels) if task.labels is not None else None
    relations = [r for r in doc.relations if wanted is None or r.type in wanted]
    stats.relations += len(relations)
    by_id = {e.id: e for e in doc.entities}

    mention_labels: dict[tuple[str, str], str] = {}
    concept_labels: dict[tuple[str, str], str] = {}
    for rel in relations:
        if task.concept_level:
            c1, c2 = _relation_concepts(rel, by_id)
            for key in [(c1, c2)] + ([(c2, c1)] if task.symmetric else []):
                if concept_labels.setdefault(key, rel.type) != rel.type:
                    stats.label_conflicts += 1
        else:
            for key in [(rel.arg1_id, rel.arg2_id)] + ([(rel.arg2_id, rel.arg1_id)] if task.symmetric else []):
                if mention_labels.setdefault(key, rel.type) != rel.type:
                    stats.label_conflicts += 1

    out: list[RelationCandidate] = []
    covered: set[tuple[str, str]] = set()  # relation keys (mention ids or concept ids) with a positive
    for k, mentions in enumerate(per_sentence):
        sent = sentences[k]
        for i, m1 in enumerate(mentions):
            for j, m2 in enumerate(mentions):
                if i == j or (m1.type, m2.type) not in pairs:
                    continue
                if task.symmetric and j < i:
                    continue
                if task.concept_level:
                    label, keys = _concept_label(by_id[m1.id], by_id[m2.id], concept_labels)
                else:
                    keys = [(m1.id, m2.id)]
                    label = mention_labels.get(keys[0])
                    if label is None and task.symmetric:
                        keys = [(m2.id, m1.id)]
                        label = mention_labels.get(keys[0])
                if label is not None:
                    covered.update(keys)
                    stats.positives += 1
                others = [m for m in mentions if m.id not in (m1.id, m2.id)]
                out.append(
                    RelationCandidate(
                        id=f"{doc.id}:{m1.id}:{m2.id}",
                        document_id=doc.document_id,
                        sentence_index=k,
                        sentence_start=sent.start,
                        sentence=text[sent.start : sent.end],
                        arg1=m1,
                        arg2=m2,
                        label=label if label is not None else task.negative_label,
                        others=others,
                    )
                )
    stats.candidates += len(out)
    for rel in relations:
        if task.concept_level:
            c1, c2 = _relation_concepts(rel, by_id)
            if (c1, c2) in covered or (task.symmetric and (c2, c1) in covered):
                stats.relations_covered += 1
            else:
                stats.cross_sentence += 1
            continue
        if (rel.arg1_id, rel.arg2_id) in covered or (task.symmetric and (rel.arg2_id, rel.arg1_id) in covered):
            stats.relations_covered += 1
        elif sentence_of.get(rel.arg1_id, -1) == sentence_of.get(rel.arg2_id, -2):
            stats.unmatched += 1
        else:
            stats.cross_sentence += 1
    return out


def _relation_concepts(rel: Any, by_id: Mapping[str, Entity]) -> tuple[str, str]:
    """The (concept1, concept2) ids of a concept relation: its `normalized`, else its arguments' first ids."""
    if len(rel.normalized) == 2:
        return rel.normalized[0].db_id, rel.normalized[1].db_id
    ids = []
    for arg in (rel.arg1_id, rel.arg2_id):
        ent = by_id.get(arg)
        if ent is None or not ent.normalized:
            raise InputError("<documents>", f"relation {rel.id} has no concept ids and argument {arg} has no normalization")
        ids.append(ent.normalized[0].db_id)
    return ids[0], ids[1]


def _concept_label(e1: Entity, e2: Entity, concept_labels: Mapping[tuple[str, str], str]) -> tuple[str | None, list[tuple[str, str]]]:
    """The label of the first concept pair of (e1, e2) that is related, and every related pair
    (a composite mention such as "ocular and auditory toxicity" has several concept ids)."""
    keys = [(n1.db_id, n2.db_id) for n1 in e1.normalized for n2 in e2.normalized if (n1.db_id, n2.db_id) in concept_labels]
    return (concept_labels[keys[0]] if keys else None), keys


# ------------------------------------------------------------------------------------------- marking


def _alias(etype: str, aliases: Mapping[str, str]) -> str:
    return aliases.get(etype, etype).upper()


def mark_candidate(
    cand: RelationCandidate, style: str = "entity_markers", type_aliases: Mapping[str, str] = DEFAULT_TYPE_ALIASES
) -> MarkedExample:
    """The candidate's sentence with its arguments marked or masked (see the module docstring)."""
    if style not in STYLES:
        raise ConfigError(f"unknown relation marker style {style!r}; known: {', '.join(STYLES)}")
    base = cand.sentence_start
    a1 = (cand.arg1.start - base, cand.arg1.end - base)
    a2 = (cand.arg2.start - base, cand.arg2.end - base)
    if style in ("entity_markers", "typed_markers"):
        if style == "entity_markers":
            marks = (("[E1] ", " [/E1]"), ("[E2] ", " [/E2]"))
        else:
            t1, t2 = _alias(cand.arg1.type, type_aliases), _alias(cand.arg2.type, type_aliases)
            marks = ((f"[E1-{t1}] ", f" [/E1-{t1}]"), (f"[E2-{t2}] ", f" [/E2-{t2}]"))
        return _insert_markers(cand, a1, a2, marks)
    t1, t2 = _alias(cand.arg1.type, type_aliases), _alias(cand.arg2.type, type_aliases)
    if style == "blue":
        masks = (f"@{t1}$", f"@{t2}$", f"@{_SHORT_TYPES.get(t1, t1)}-{t2}$", None)
    else:
        masks = (*BIOELECTRA_MASKS[:2], BIOELECTRA_MASKS[0], BIOELECTRA_MASKS[2])
    return _replace_masks(cand, a1, a2, masks)


def _insert_markers(cand: RelationCandidate, a1: tuple[int, int], a2: tuple[int, int], marks) -> MarkedExample:
    # events at a position: closes before opens; inner closes first, outer opens first
    events = []
    for role, (s, e) in enumerate((a1, a2)):
        events.append((s, 1, -e, role, marks[role][0], "open"))
        events.append((e, 0, -s, role, marks[role][1], "close"))
    events.sort(key=lambda x: (x[0], x[1], x[2], x[3]))
    text = _Builder(cand.sentence, cand.sentence_start)
    opened: dict[int, tuple[int, int]] = {}
    spans: dict[int, tuple[int, int]] = {}
    inner: dict[int, tuple[int, int]] = {}
    cursor = 0
    for pos, _o, _k, role, marker, kind in events:
        text.copy(cursor, pos)
        cursor = pos
        if kind == "open":
            outer_start = len(text)
            text.insert(marker)
            opened[role] = (outer_start, len(text))
        else:
            inner[role] = (opened[role][1], len(text))
            text.insert(marker)
            spans[role] = (opened[role][0], len(text))
    text.copy(cursor, len(cand.sentence))
    return MarkedExample(cand.id, text.text(), spans[0], spans[1], cand.label, text.map, inner[0], inner[1])


def _replace_masks(cand: RelationCandidate, a1: tuple[int, int], a2: tuple[int, int], masks) -> MarkedExample:
    mask1, mask2, both, other = masks
    base = cand.sentence_start
    edits: list[tuple[int, int, str, int | None]] = []  # (start, end, replacement, role)
    if a1[0] < a2[1] and a2[0] < a1[1]:
        edits.append((min(a1[0], a2[0]), max(a1[1], a2[1]), both, -1))
    else:
        edits += [(a1[0], a1[1], mask1, 0), (a2[0], a2[1], mask2, 1)]
    if other is not None:
        taken = [(s, e) for s, e, _, _ in edits]
        spans = sorted((m.start - base, m.end - base) for m in cand.others)
        merged: list[list[int]] = []
        for s, e in spans:
            if any(s < te and ts < e for ts, te in taken):
                continue
            if merged and s < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        edits += [(s, e, other, None) for s, e in merged if not any(s < te and ts < e for ts, te in taken)]
    edits.sort()
    b = _Builder(cand.sentence, base)
    cursor = 0
    spans_out: dict[int, tuple[int, int]] = {}
    for s, e, rep, role in edits:
        b.copy(cursor, s)
        start = len(b)
        b.insert(rep)
        if role == -1:
            spans_out[0] = spans_out[1] = (start, len(b))
        elif role is not None:
            spans_out[role] = (start, len(b))
        cursor = e
    b.copy(cursor, len(cand.sentence))
    return MarkedExample(cand.id, b.text(), spans_out[0], spans_out[1], cand.label, b.map)


class _Builder:
    """Accumulates output text and, per output character, the document offset it came from."""

    def __init__(self, source: str, base: int) -> None:
        self.source, self.base = source, base
        self.parts: list[str] = []
        self.map: list[int] = []

    def __len__(self) -> int:
        return len(self.map)

    def copy(self, start: int, end: int) -> None:
        if end > start:
            self.parts.append(self.source[start:end])
            self.map.extend(range(self.base + start, self.base + end))

    def insert(self, s: str) -> None:
        self.parts.append(s)
        self.map.extend([-1] * len(s))

    def text(self) -> str:
        return "".join(self.parts)


def marker_tokens(style: str, types: Iterable[str] = (), type_aliases: Mapping[str, str] = DEFAULT_TYPE_ALIASES) -> list[str]:
    """Strings to add to a tokenizer as special tokens so each marker or mask stays one token."""
    if style == "entity_markers":
        return ["[E1]", "[/E1]", "[E2]", "[/E2]"]
    if style == "typed_markers":
        ts = sorted({_alias(t, type_aliases) for t in types})
        return [f"[{o}E{r}-{t}]" for r in (1, 2) for t in ts for o in ("", "/")]
    if style == "bioelectra":
        return list(BIOELECTRA_MASKS)
    if style == "blue":
        return []  # BLUE feeds "@CHEMICAL$" to the tokenizer as text
    raise ConfigError(f"unknown relation marker style {style!r}; known: {', '.join(STYLES)}")


# ------------------------------------------------------------------------------------------ features


def tokenize_re(
    examples: Sequence[RelationCandidate | MarkedExample],
    tokenizer: Any,
    label2id: Mapping[str, int] | None,
    max_length: int = 256,
    style: str = "entity_markers",
    type_aliases: Mapping[str, str] = DEFAULT_TYPE_ALIASES,
) -> list[dict[str, Any]]:
    """One feature per example: `input_ids`, masks, `labels` (one int, when `label2id` is given and the
    example has a label) and bookkeeping `_candidate_index`, `_example_id`, `_offset_mapping`
    (character offsets into the marked text, None for specials), `_char_window`, `_arg1_token_index`,
    `_arg2_token_index` (first position of each argument). See the module docstring for windows."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("a fast (Rust `tokenizers`) tokenizer is required: offsets come from it")
    prefix, suffix = special_token_layout(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 2:
        raise ConfigError(f"max_length {max_length} leaves no room for text")
    features: list[dict[str, Any]] = []
    skipped: list[str] = []
    for ci, ex in enumerate(examples):
        marked = mark_candidate(ex, style, type_aliases) if isinstance(ex, RelationCandidate) else ex
        enc = tokenizer(marked.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets, word_ids = enc["input_ids"], enc["offset_mapping"], enc.word_ids()
        arg_tokens = [_token_range(offsets, span) for span in (marked.arg1_span, marked.arg2_span)]
        found = [r for r in arg_tokens if r is not None]
        if not found:
            skipped.append(marked.id)
            continue
        need_lo, need_hi = min(r[0] for r in found), max(r[1] for r in found)
        if need_hi - need_lo > budget:
            skipped.append(marked.id)
            continue
        lo, hi = _window(len(ids), need_lo, need_hi, budget, word_ids)
        feat: dict[str, Any] = {
            "input_ids": prefix + list(ids[lo:hi]) + suffix,
            "_candidate_index": ci,
            "_example_id": marked.id,
            "_offset_mapping": [None] * len(prefix) + [tuple(o) for o in offsets[lo:hi]] + [None] * len(suffix),
            "_char_window": (offsets[lo][0], offsets[hi - 1][1]) if hi > lo else (0, 0),
            "_arg1_token_index": arg_tokens[0][0] - lo + len(prefix) if arg_tokens[0] else None,
            "_arg2_token_index": arg_tokens[1][0] - lo + len(prefix) if arg_tokens[1] else None,
        }
        n = len(feat["input_ids"])
        feat["attention_mask"] = [1] * n
        feat["token_type_ids"] = [0] * n
        if label2id is not None and marked.label is not None:
            if marked.label not in label2id:
                raise ConfigError(f"example {marked.id}: label {marked.label!r} is not in the label map ({', '.join(label2id)})")
            feat["labels"] = label2id[marked.label]
        features.append(feat)
    if skipped:
        log.warning("%d relation inputs got no feature (arguments farther apart than %d subwords, or not found): %s", len(skipped), budget, ", ".join(skipped[:20]))
    return features


def missing_candidates(features: Sequence[Mapping[str, Any]], n_examples: int) -> list[int]:
    """Indices of examples that `tokenize_re` could not fit (to be counted as predicted negative)."""
    have = {f["_candidate_index"] for f in features}
    return [i for i in range(n_examples) if i not in have]


def _token_range(offsets: Sequence[tuple[int, int]], span: tuple[int, int] | None) -> tuple[int, int] | None:
    """[first, last + 1) of the tokens overlapping `span` (None if none does)."""
    if span is None:
        return None
    hit = [i for i, (s, e) in enumerate(offsets) if e > span[0] and s < span[1] and e > s]
    return (hit[0], hit[-1] + 1) if hit else None


def _window(n: int, need_lo: int, need_hi: int, budget: int, word_ids: Sequence[int | None]) -> tuple[int, int]:
    """A token window of at most `budget` holding [need_lo, need_hi), centred on it, edges moved
    inwards off the middle of a word when that keeps the needed tokens inside."""
    if n <= budget:
        return 0, n
    extra = budget - (need_hi - need_lo)
    left = min(need_lo, extra // 2)
    right = min(n - need_hi, extra - left)
    left = min(need_lo, extra - right)
    lo, hi = need_lo - left, need_hi + right
    while 0 < lo < need_lo and word_ids[lo] is not None and word_ids[lo] == word_ids[lo - 1]:
        lo += 1
    while need_hi < hi < n and word_ids[hi] is not None and word_ids[hi] == word_ids[hi - 1]:
        hi -= 1
    return lo, hi


# --------------------------------------------------------------------------- masked sentence files

_BLUE_MASK = re.compile(r"@[A-Z]+(?:-[A-Z]+)*\$")
ARG1_MASKS = ("@CHEMICAL$", "BC6ENTC")
ARG2_MASKS = ("@GENE$", "@DISEASE$", "BC6ENTG")


def read_masked_re_tsv(path: str | Path) -> list[MarkedExample]:
    """Read a sentence-level masked RE file as MarkedExamples (labels kept as written).

    Two layouts, told apart by the first line: BLUE (`id<TAB>sentence<TAB>label`, no header; masks
    `@CHEMICAL$`/`@GENE$`, `@CHEM-GENE$` for overlapping arguments) and BioELECTRA (header
    `sentence<TAB>label`; masks `BC6ENTC`/`BC6ENTG`, others `BC6OTHER`; ids become `<file stem>:<line>`).
    A row with the wrong number of columns, an empty id, sentence or label, or no argument mask at all
    raises MalformedInputError naming the file and line. A repeated id is kept (BLUE's dev file has 4:
    pairs gold for two CPR groups, one row per group). A row lacking one of the two masks (24 rows
    of BioELECTRA's train.tsv) is kept with that argument's span None.
    """
    p = Path(path)
    out: list[MarkedExample] = []
    layout: str | None = None
    seen_ids: set[str] = set()
    missing = repeats = 0
    for lineno, raw in iter_lines(p):
        if not raw.strip():
            continue
        cols = raw.split("\t")
        if layout is None:
            if [c.strip().lower() for c in cols] == ["sentence", "label"]:
                layout = "bioelectra"
                continue
            if len(cols) == 3:
                layout = "blue"
            elif len(cols) == 2:
                layout = "bioelectra"
            else:
                raise MalformedInputError(p, f"expected 'id<TAB>sentence<TAB>label' or 'sentence<TAB>label', found {len(cols)} columns", line=lineno)
        expected = 3 if layout == "blue" else 2
        if len(cols) != expected:
            raise MalformedInputError(p, f"expected {expected} tab-separated columns, found {len(cols)}", line=lineno)
        if layout == "blue":
            rid, sentence, label = cols
            rid = rid.strip()
            if not rid:
                raise MalformedInputError(p, "empty id", line=lineno)
            repeats += rid in seen_ids
            seen_ids.add(rid)
        else:
            sentence, label = cols
            rid = f"{p.stem}:{lineno}"
        label = label.strip()
        if not sentence.strip() or not label:
            raise MalformedInputError(p, f"empty {'sentence' if not sentence.strip() else 'label'}", line=lineno, record=rid if layout == "blue" else None)
        spans = _mask_spans(sentence, layout)
        if spans is None:
            raise MalformedInputError(p, "no argument mask (@CHEMICAL$/@GENE$ or BC6ENTC/BC6ENTG) in the sentence", line=lineno, record=rid if layout == "blue" else None)
        a1, a2 = spans
        missing += (a1 is None) + (a2 is None)
        out.append(MarkedExample(rid, sentence, a1, a2, label, line=lineno))
    if layout is None:
        raise MalformedInputError(p, "no rows")
    if missing:
        log.warning("%s: %d argument masks missing (rows kept with one argument)", p, missing)
    if repeats:
        log.info("%s: %d rows repeat an earlier id (a pair with two relation types; all kept)", p, repeats)
    return out


def _mask_spans(sentence: str, layout: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None] | None:
    if layout == "blue":
        found = [(m.group(), m.span()) for m in _BLUE_MASK.finditer(sentence)]
    else:
        found = [(m.group(), m.span()) for m in re.finditer(r"BC6ENT[CG]", sentence)]
    if not found:
        return None
    if len(found) == 1 and "-" in found[0][0]:
        return found[0][1], found[0][1]  # overlapping arguments share one mask
    a1 = next((span for mask, span in found if mask in ARG1_MASKS), None)
    a2 = next((span for mask, span in found if mask in ARG2_MASKS), None)
    if a1 is None and a2 is None and len(found) >= 2:
        a1, a2 = found[0][1], found[1][1]  # other BLUE tasks (@DRUG$ twice): text order
    return a1, a2


__all__ = [
    "RelationTask",
    "CHEMPROT_TASK",
    "BC5CDR_CID_TASK",
    "DDI_TASK",
    "Mention",
    "RelationCandidate",
    "CandidateStats",
    "MarkedExample",
    "relation_candidates",
    "generate_candidates",
    "mark_candidate",
    "marker_tokens",
    "tokenize_re",
    "missing_candidates",
    "read_masked_re_tsv",
]
