"""Relation-extraction candidates: which entity pairs of a sentence are classified, and their gold labels.

Candidates (`relation_candidates`): for each sentence of a Document (`sentences` from a reader or
from preprocessing), every ordered pair (arg1, arg2) of distinct entities whose types match one of
the task's `type_pairs` (ChemProt: CHEMICAL with GENE-Y or GENE-N; BC5CDR CID: Chemical with
Disease; DDI: any two of drug, brand, group, drug_n, one candidate per unordered pair). An entity
belongs to the sentence holding its start; one that runs past that sentence's end is left out of
every candidate (counted). A discontinuous entity is marked over its outer span.

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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from corpora.errors import InputError
from corpora.schema import Document, Entity

log = logging.getLogger(__name__)

NEGATIVE_LABEL = "false"


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
    "ddi",
    tuple((a, b) for i, a in enumerate(DDI_TYPES) for b in DDI_TYPES[i:]),
    ("advise", "effect", "int", "mechanism"),
    symmetric=True,
)

# every relation task a model can be trained on, by the name recorded in its biomed.json
RELATION_TASKS: dict[str, RelationTask] = {t.name: t for t in (CHEMPROT_TASK, BC5CDR_CID_TASK, DDI_TASK)}


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


def relation_candidates(docs: Iterable[Document], task: RelationTask = CHEMPROT_TASK) -> list[RelationCandidate]:
    """Candidate pairs of every sentence of `docs` (see the module docstring); counts are logged."""
    cands, stats = generate_candidates(docs, task)
    log.info("%s candidates: %s", task.name, stats)
    if stats.cross_sentence or stats.unmatched or stats.entities_crossing_sentence or stats.label_conflicts:
        log.warning(
            "%s: %d of %d relations have no candidate (%d across sentences, %d with unconfigured types); "
            "%d entities cross a sentence end; %d label conflicts",
            task.name,
            stats.relations - stats.relations_covered,
            stats.relations,
            stats.cross_sentence,
            stats.unmatched,
            stats.entities_crossing_sentence,
            stats.label_conflicts,
        )
    return cands


def generate_candidates(
    docs: Iterable[Document], task: RelationTask = CHEMPROT_TASK
) -> tuple[list[RelationCandidate], CandidateStats]:
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
            raise InputError(
                "<documents>", f"relation {rel.id} has no concept ids and argument {arg} has no normalization"
            )
        ids.append(ent.normalized[0].db_id)
    return ids[0], ids[1]


def _concept_label(
    e1: Entity, e2: Entity, concept_labels: Mapping[tuple[str, str], str]
) -> tuple[str | None, list[tuple[str, str]]]:
    """The label of the first concept pair of (e1, e2) that is related, and every related pair
    (a composite mention such as "ocular and auditory toxicity" has several concept ids)."""
    keys = [
        (n1.db_id, n2.db_id) for n1 in e1.normalized for n2 in e2.normalized if (n1.db_id, n2.db_id) in concept_labels
    ]
    return (concept_labels[keys[0]] if keys else None), keys
