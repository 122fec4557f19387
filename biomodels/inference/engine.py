"""The annotation engine: Documents in, Documents with scored entities and relations out.

`AnnotationEngine(ner_dir, re_dir)` loads trained-model directories (`biomodels.models.model_dir`) and
streams Documents through NER and then RE, a chunk of documents at a time (about 64k document
tokens, `chunk_tokens`), so memory stays flat on corpora of any size while the length-sorted batches
of a chunk pad little.

Rules, in the order a document meets them:

- Input words are the document's `tokens` inside its `sentences` (scispaCy preprocessing adds
  both). A document whose text is empty or only whitespace passes through with no predictions. A
  document with text but no sentences or no tokens raises InputError naming it, unless the engine
  was made with `preprocess=True`, which runs `corpora.preprocess.pipeline` (the same scispaCy pipeline as
  `biomed preprocess`) on such documents first.
- Every document of a chunk is checked before any model runs, and a chunk's documents are changed
  only after all its predictions exist, so an error never leaves a half-annotated document.
- NER: see `biomodels.inference.entities` (windows for long sentences, first-subword labels, IOB2 repair,
  entity score = mean over its words of the predicted label's softmax probability). Entity offsets
  run from the first word's start to the last word's end, exact character offsets into
  `Document.text`.
- RE: candidates are pairs of predicted entities in one sentence whose types the RE model was trained
  on (`biomodels.inference.relations`); negative predictions are dropped. When the NER model can produce
  none of the RE model's type pairs the engine refuses to start (ModelError); when it can produce
  some but not all, a warning names the types RE will never see.
- `existing="replace"` (default) swaps the document's entities and relations for the predictions;
  `"keep"` keeps them and adds the predictions beside them (RE then runs on the predicted entities
  only). Without an NER model (`ner_dir=None`), RE runs on the document's own entities and
  `existing` must be "keep".
- Every prediction records its `annotator`, e.g. "ner:ncbi-tiny@3f2a9c0d1e2b" (task, model name from
  biomed.json's `name` or else the folder name, first 12 hex digits of the sha256 of
  `model.safetensors`); `annotators` gives them as {"ner": ..., "re": ...} for manifests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from biomodels.data.ner import NerExample, convert_documents
from biomodels.data.re_candidates import RelationCandidate, RelationTask, generate_candidates
from biomodels.inference.entities import NerPredictor, WordEntity
from biomodels.inference.relations import RePredictor, type_coverage
from biomodels.inference.runtime import default_batch_tokens, iter_chunks, load_task_model, resolve_device
from corpora.errors import ConfigError, InputError, ModelError
from corpora.preprocess.documents import preprocess_documents
from corpora.preprocess.pipeline import build_pipeline
from corpora.schema import Document, Entity, Relation

log = logging.getLogger(__name__)

EXISTING = ("replace", "keep")
DEFAULT_DOCS_PER_CHUNK = 4096
# Document tokens per chunk: sentences are length-sorted within a chunk, so a chunk must hold many
# of them for batches to pad little (64k tokens is about 2,000 sentences or 250 abstracts).
DEFAULT_CHUNK_TOKENS = 65536


@dataclass
class EngineStats:
    """Running counts over everything annotated so far."""

    documents: int = 0
    empty_documents: int = 0
    preprocessed_documents: int = 0
    sentences: int = 0
    words: int = 0
    entities: int = 0
    candidates: int = 0
    relations: int = 0
    entity_types: dict[str, int] = field(default_factory=dict)
    relation_types: dict[str, int] = field(default_factory=dict)


@dataclass
class _Work:
    doc: Document
    examples: list[NerExample]
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)


class AnnotationEngine:
    """NER (+ RE) over Documents; see the module docstring for the rules."""

    def __init__(
        self,
        ner_dir: str | Path | None,
        re_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        batch_tokens: int | None = None,
        precision: str = "auto",
        *,
        existing: str = "replace",
        preprocess: bool = False,
        docs_per_chunk: int = DEFAULT_DOCS_PER_CHUNK,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        stride: int | None = None,
        re_task: RelationTask | None = None,
        compile: bool = False,
    ) -> None:
        if ner_dir is None and re_dir is None:
            raise ConfigError("AnnotationEngine needs an NER model directory, an RE model directory, or both")
        if existing not in EXISTING:
            raise ConfigError(f"existing must be one of {', '.join(EXISTING)}, not {existing!r}")
        if ner_dir is None and existing != "keep":
            raise ConfigError("without an NER model, RE runs on the documents' own entities: use existing='keep'")
        dev = resolve_device(device)
        batch_tokens = default_batch_tokens(dev) if batch_tokens is None else batch_tokens
        if batch_tokens < 1 or docs_per_chunk < 1 or chunk_tokens < 1:
            raise ConfigError(
                f"batch_tokens ({batch_tokens}), docs_per_chunk ({docs_per_chunk}) "
                f"and chunk_tokens ({chunk_tokens}) must be >= 1"
            )
        self.batch_tokens = batch_tokens
        self.existing = existing
        self.preprocess = preprocess
        self.docs_per_chunk = docs_per_chunk
        self.chunk_tokens = chunk_tokens
        self.ner = (
            None
            if ner_dir is None
            else NerPredictor(load_task_model(ner_dir, "ner", dev, precision, compile), batch_tokens, stride)
        )
        self.re = (
            None
            if re_dir is None
            else RePredictor(load_task_model(re_dir, "re", dev, precision, compile), batch_tokens, re_task)
        )
        if self.ner is not None and self.re is not None:
            self._check_types(self.ner, self.re)
        self.stats = EngineStats()
        self._nlp: Any = None

    @staticmethod
    def _check_types(ner: NerPredictor, re: RePredictor) -> None:
        usable, missing = type_coverage(re.entity_types, re.task.type_pairs, ner.entity_types)
        where = f"RE model {re.task_model.path} (task {re.task.name}, pairs {list(re.task.type_pairs)})"
        if not usable:
            raise ModelError(
                f"{where} needs entity types the NER model {ner.task_model.path} never produces "
                f"(it produces {ner.entity_types}); no relation could ever be predicted"
            )
        if missing:
            log.warning(
                "%s: the NER model %s never produces %s; only the pairs %s can get relations",
                where,
                ner.task_model.path,
                missing,
                usable,
            )

    @property
    def precision(self) -> str:
        """The precision the models run in ("fp32", "bf16", "fp16"), as resolved for the device."""
        model = self.ner if self.ner is not None else self.re
        return model.task_model.precision.name

    @property
    def annotators(self) -> dict[str, str]:
        """{"ner": "ner:<name>@<hash>", "re": ...} for the models this engine runs."""
        out = {}
        if self.ner is not None:
            out["ner"] = self.ner.annotator
        if self.re is not None:
            out["re"] = self.re.annotator
        return out

    # ------------------------------------------------------------------------------ lower level

    def predict_entities(self, sentences: Sequence[Sequence[str]]) -> list[list[WordEntity]]:
        """Per sentence (a list of words), its entities as (first word, end word, type, score)."""
        if self.ner is None:
            raise ConfigError("this engine has no NER model")
        return self.ner.predict(sentences)

    def predict_relations(self, candidates: Sequence[RelationCandidate]) -> list[tuple[str, float]]:
        """Per candidate pair, (label, probability); the negative label is included here."""
        if self.re is None:
            raise ConfigError("this engine has no RE model")
        return self.re.predict(candidates)

    def relation_candidates(self, doc: Document) -> list[RelationCandidate]:
        """Candidate pairs of `doc`'s entities (sentences needed) under the RE model's type pairs."""
        if self.re is None:
            raise ConfigError("this engine has no RE model")
        bare = replace(doc, relations=[])
        return generate_candidates([bare], self.re.task)[0]

    @property
    def negative_label(self) -> str | None:
        return self.re.negative_label if self.re is not None else None

    # ------------------------------------------------------------------------------- documents

    def annotate(self, docs: Iterable[Document]) -> Iterator[Document]:
        """Annotate `docs` in place, chunk by chunk (`chunk_tokens` document tokens or
        `docs_per_chunk` documents, whichever comes first), yielding each in input order."""
        weight = lambda d: max(1, len(d.tokens))  # noqa: E731
        for chunk in iter_chunks(iter(docs), self.docs_per_chunk, weight, self.chunk_tokens):
            yield from self._annotate_chunk(chunk)

    def _annotate_chunk(self, docs: list[Document]) -> list[Document]:
        self._preprocess_missing(docs)
        work = [self._prepare(doc) for doc in docs]
        if self.ner is not None:
            self._run_ner(work)
        if self.re is not None:
            self._run_re(work)
        for w in work:
            self._apply(w)
        return docs

    def _needs_preprocessing(self, doc: Document) -> bool:
        return bool(doc.text.strip()) and (not doc.sentences or (self.ner is not None and not doc.tokens))

    def _preprocess_missing(self, docs: list[Document]) -> None:
        todo = [d for d in docs if self._needs_preprocessing(d)]
        if not todo:
            return
        if not self.preprocess:
            d = todo[0]
            lacking = "sentences" if not d.sentences else "tokens"
            raise InputError(
                d.source.path or d.id,
                f"document has text but no {lacking}; run preprocessing first (`biomed preprocess`, "
                "corpora.preprocess.documents.preprocess_documents) or make the engine with preprocess=True",
                record=d.id,
            )

        if self._nlp is None:
            self._nlp = build_pipeline()
        for _ in preprocess_documents(todo, self._nlp):
            pass
        self.stats.preprocessed_documents += len(todo)

    def _prepare(self, doc: Document) -> _Work:
        if not doc.text.strip():
            return _Work(doc, [])
        if self.ner is None:
            return _Work(doc, [])
        examples, stats = convert_documents([replace(doc, entities=[], relations=[])])
        if stats.tokens_outside_sentences:
            log.warning(
                "document %s: %d tokens lie outside every sentence and get no prediction",
                doc.id,
                stats.tokens_outside_sentences,
            )
        return _Work(doc, examples)

    def _run_ner(self, work: list[_Work]) -> None:
        assert self.ner is not None
        sentences = [ex.words for w in work for ex in w.examples]
        predictions = iter(self.ner.predict(sentences))
        annotator = self.ner.annotator
        for w in work:
            text = w.doc.text if w.examples else ""
            taken = {e.id for e in w.doc.entities} if self.existing == "keep" else set()
            spans = []
            for ex in w.examples:
                for first, end, etype, score in next(predictions):
                    spans.append((ex.offsets[first][0], ex.offsets[end - 1][1], etype, score))
            spans.sort(key=lambda s: (s[0], s[1]))
            ids = _fresh_ids("ner", len(spans), taken)
            w.entities = [
                Entity(id=i, type=t, text=[text[s:e]], offsets=[[s, e]], score=sc, annotator=annotator)
                for i, (s, e, t, sc) in zip(ids, spans)
            ]

    def _run_re(self, work: list[_Work]) -> None:
        assert self.re is not None
        per_doc: list[list[RelationCandidate]] = []
        for w in work:
            if not w.doc.text.strip():
                per_doc.append([])
                continue
            entities = w.entities if self.ner is not None else w.doc.entities
            bare = replace(w.doc, entities=entities, relations=[])
            per_doc.append(generate_candidates([bare], self.re.task)[0])
        flat = [c for cands in per_doc for c in cands]
        results = iter(self.re.predict(flat))
        annotator, negative = self.re.annotator, self.re.negative_label
        for w, cands in zip(work, per_doc):
            taken = {r.id for r in w.doc.relations} if self.existing == "keep" else set()
            found = [(c, *next(results)) for c in cands]
            positive = [(c, label, score) for c, label, score in found if label != negative]
            ids = _fresh_ids("re", len(positive), taken)
            w.relations = [
                Relation(id=i, type=label, arg1_id=c.arg1.id, arg2_id=c.arg2.id, score=score, annotator=annotator)
                for i, (c, label, score) in zip(ids, positive)
            ]
            self.stats.candidates += len(cands)

    def _apply(self, w: _Work) -> None:
        doc, s = w.doc, self.stats
        if self.existing == "replace":
            doc.entities = list(w.entities)
            doc.relations = list(w.relations)
        else:
            doc.entities = list(doc.entities) + w.entities
            doc.relations = list(doc.relations) + w.relations
        s.documents += 1
        s.empty_documents += not doc.text.strip()
        s.sentences += len(w.examples)
        s.words += sum(len(ex.words) for ex in w.examples)
        s.entities += len(w.entities)
        s.relations += len(w.relations)
        for e in w.entities:
            s.entity_types[e.type] = s.entity_types.get(e.type, 0) + 1
        for r in w.relations:
            s.relation_types[r.type] = s.relation_types.get(r.type, 0) + 1


def _fresh_ids(prefix: str, n: int, taken: set[str]) -> list[str]:
    """`n` ids "<prefix>-0", "<prefix>-1", ... skipping any already in `taken`."""
    out: list[str] = []
    k = 0
    while len(out) < n:
        candidate = f"{prefix}-{k}"
        if candidate not in taken:
            out.append(candidate)
        k += 1
    return out


def annotate_documents(
    docs: Iterable[Document], ner_dir: str | Path, re_dir: str | Path | None = None, **options: Any
) -> Iterator[Document]:
    """One-call form of `AnnotationEngine(ner_dir, re_dir, **options).annotate(docs)`."""
    yield from AnnotationEngine(ner_dir, re_dir, **options).annotate(docs)


__all__ = ["AnnotationEngine", "DEFAULT_CHUNK_TOKENS", "EngineStats", "annotate_documents"]
