"""spaCy components `biomegatron_ner` and `biomegatron_re`, running the annotation engine inside any
spaCy pipeline (after scispaCy's tokenizer, sentence boundaries and abbreviation detector).

    nlp.add_pipe("biomegatron_ner", config={"model": "models/ncbi"})
    nlp.add_pipe("biomegatron_re", config={"model": "models/chemprot"})

Both are registered as `spacy_factories` entry points, so `add_pipe` and spaCy config files find
them without importing this package. They follow spaCy's own split: `predict(docs)` runs the
engine and leaves the docs untouched, `set_annotations(docs, predictions)` writes; `__call__` and
`pipe` call both under `self.get_error_handler()` (so `nlp.set_error_handler` can skip a bad doc
instead of stopping a run). `pipe` sends a batch of docs through the engine at once (sentences
length-sorted into padded-size batches).

NER: the words are the non-whitespace tokens of each sentence (`doc.sents`); a doc without sentence
boundaries is one sentence (long ones are windowed, so nothing is cut). It writes:
- `doc.spans[spans_key]`: the predicted spans, with `attrs["scores"]` (one score per span, in span
  order) and `attrs["annotator"]`;
- `doc.ents`: `overwrite_ents=False` keeps existing entities and adds the predictions that overlap
  none of them; `True` replaces `doc.ents` with the predictions.
RE: candidates are pairs of `doc.ents` in one sentence whose types the RE model was trained on; it
writes `doc._.<extension>` (default `biomegatron_relations`): a list of plain dicts
{"head": [start_char, end_char, label], "tail": [...], "label", "score", "annotator"}, never Spans,
so docs pickle, go through `DocBin` and cross process boundaries. `None` means RE did not run.

Settings: `model`, `batch_size` (docs per engine call), `batch_tokens`, `device`, `precision`
(as `biomed annotate --precision`) and `compile` (as `--compile`: torch.compile with frozen weights
on the first batch; worth it for long runs), plus `overwrite_ents` and `spans_key` (NER) or
`extension` (RE).

Saving goes through `spacy.util.to_disk`/`from_disk` with two parts, honouring `exclude`: `cfg`
(the component's settings, JSON) and `model` (a copy of the model directory's files: safetensors
weights, tokenizer, labels, biomed.json); `from_disk` loads them from there, so a pipeline saved with
`nlp.to_disk` loads offline with `spacy.load(path)`. Weights load lazily: a component made from a
config whose model path is gone works once `from_disk` has run (that is what `spacy.load` does).

Multiprocessing (`nlp.pipe(texts, n_process=2)`): these components pickle without their weights
(each process reloads from the model path) and store only serializable values. scispaCy's
`abbreviation_detector` by default stores Spans in `doc._.abbreviations`, which cannot cross a
process boundary: add it with `config={"make_serializable": True}` (scispaCy's own option; the
abbreviations become dicts), or leave it out, when `n_process > 1`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import srsly
from spacy import util
from spacy.attrs import IS_SPACE, ORTH
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span, SpanGroup

if TYPE_CHECKING:  # torch is imported only when a component first runs: spaCy imports this module
    from biomodels.inference.engine import AnnotationEngine  # for every pipeline it builds, via the entry points
from biomodels.models.shipped import resolve_model_path
from corpora.errors import ConfigError, ModelError
from corpora.schema import Document, Entity, Passage
from corpora.schema import Span as CharSpan

NER_FACTORY = "biomegatron_ner"
RE_FACTORY = "biomegatron_re"
DEFAULT_EXTENSION = "biomegatron_relations"
MODEL_SUBDIR = "model"
# what a model directory needs for inference (biomodels.models.model_dir layout); optional ones copied if there
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "labels.json",
    "biomed.json",
)
OPTIONAL_FILES = ("vocab.txt", "special_tokens_map.json", "added_tokens.json")


class _EngineComponent(Pipe):
    """What both components share: lazy engine, batching, the error handler, saving the model with
    the pipeline. Subclasses define `predict`, `set_annotations` and the settings in `cfg`."""

    task = ""

    def __init__(
        self,
        nlp: Language,
        name: str,
        model: str,
        batch_size: int,
        batch_tokens: int | None,
        device: str | None,
        precision: str,
        compile: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"{name}: batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.device = device
        self.precision = precision
        self.compile = compile
        # "default": the shipped model of this component's task (biomodels.models.shipped)
        resolved = resolve_model_path(model, self.task) if model else None
        self.model_path: Path | None = Path(resolved).expanduser() if resolved else None
        self._engine: AnnotationEngine | None = None
        self.cfg: dict[str, Any] = {"batch_size": batch_size}

    def _make_engine(self, path: Path) -> AnnotationEngine:
        raise NotImplementedError

    @property
    def engine(self) -> AnnotationEngine:
        if self._engine is None:
            if self.model_path is None:
                raise ConfigError(
                    f"{self.name}: no model; set the component's `model` config to a trained-model directory"
                )
            self._engine = self._make_engine(self.model_path)
        return self._engine

    @property
    def annotator(self) -> str:
        return self.engine.annotators[self.task]

    def __call__(self, doc: Doc) -> Doc:
        error_handler = self.get_error_handler()
        try:
            self.set_annotations([doc], self.predict([doc]))
        except Exception as exc:
            error_handler(self.name, self, [doc], exc)
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int | None = None) -> Iterator[Doc]:
        """Process docs in chunks of `batch_size` docs or 64k tokens, whichever comes first (the
        engine length-sorts the sentences of a chunk, so bigger chunks pad less)."""
        # torch loads when a component first runs, not when spaCy imports this module (see the top)
        from biomodels.inference.engine import DEFAULT_CHUNK_TOKENS
        from biomodels.inference.runtime import iter_chunks

        error_handler = self.get_error_handler()
        for docs in iter_chunks(iter(stream), batch_size or self.batch_size, len, DEFAULT_CHUNK_TOKENS):
            try:
                self.set_annotations(docs, self.predict(docs))
            except Exception as exc:
                error_handler(self.name, self, docs, exc)
            yield from docs

    def predict(self, docs: Iterable[Doc]) -> list[Any]:
        """One prediction per doc, computed without touching the docs."""
        raise NotImplementedError

    def set_annotations(self, docs: Iterable[Doc], predictions: list[Any]) -> None:
        """Write `predict`'s output onto the docs."""
        raise NotImplementedError

    def initialize(self, get_examples: Any = None, *, nlp: Language | None = None) -> None:
        """Nothing to train: loads the weights, so `nlp.initialize()` fails early on a bad path."""
        _ = self.engine

    # ---------------------------------------------------------------------------------- saving

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Write `cfg` and a copy of the model directory (`model`) into `path`, minus `exclude`."""
        util.to_disk(path, {"cfg": lambda p: srsly.write_json(p, self.cfg), MODEL_SUBDIR: self._save_model}, exclude)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> _EngineComponent:
        """Read what `to_disk` wrote; with "model" excluded the configured model path stays."""
        util.from_disk(path, {"cfg": self._load_cfg, MODEL_SUBDIR: self._load_model}, exclude)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        raise NotImplementedError(f"{self.name}: the model is a folder of files; save the pipeline with nlp.to_disk")

    def _load_cfg(self, path: Path) -> None:
        if path.is_file():  # pipelines saved before the settings were written have none
            self.cfg.update(srsly.read_json(path))
            self.batch_size = int(self.cfg.get("batch_size", self.batch_size))

    def _save_model(self, target: Path) -> None:
        source = self.model_path
        if source is None:
            raise ConfigError(f"{self.name}: no model to save")
        if target.resolve() == source.resolve():
            return  # saving a pipeline onto the folder it was loaded from
        missing = [f for f in MODEL_FILES if not (source / f).is_file()]
        if missing:
            raise ModelError(f"{source}: cannot save {self.name}, the model directory lacks {', '.join(missing)}")
        staging = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in MODEL_FILES + OPTIONAL_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    def _load_model(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ModelError(f"{folder}: missing; {folder.parent} was not saved by the {self.name} component")
        self.model_path = folder
        self._engine = self._make_engine(folder)

    def __reduce__(self) -> tuple[Any, ...]:
        # spaCy's Pipe is a Cython class whose own pickling would take the loaded engine along;
        # the weights reload from model_path in the receiving process instead.
        state = dict(self.__dict__)
        state["_engine"] = None
        return (_restore_component, (type(self), state))


def _restore_component(cls: type, state: dict[str, Any]) -> _EngineComponent:
    component = cls.__new__(cls)
    component.__dict__.update(state)
    return component


def _content_tokens(doc: Doc) -> list[np.ndarray]:
    """Per sentence (the whole doc without sentence boundaries), its non-whitespace token indices."""
    if len(doc) == 0:
        return []
    space = doc.to_array(IS_SPACE).astype(bool)
    bounds = [(s.start, s.end) for s in doc.sents] if doc.has_annotation("SENT_START") else [(0, len(doc))]
    out = []
    for a, b in bounds:
        idx = np.flatnonzero(~space[a:b]) + a
        if len(idx):
            out.append(idx)
    return out


def _token_texts(doc: Doc) -> list[str]:
    """Every token's text, looked up from its ORTH id (no Token objects made)."""
    if len(doc) == 0:
        return []
    strings = doc.vocab.strings
    return [strings[h] for h in doc.to_array(ORTH).tolist()]


class BiomegatronNER(_EngineComponent):
    task = "ner"

    def __init__(
        self,
        nlp: Language,
        name: str,
        model: str,
        overwrite_ents: bool,
        spans_key: str,
        batch_size: int,
        batch_tokens: int | None,
        device: str | None,
        precision: str,
        compile: bool = False,
    ) -> None:
        super().__init__(nlp, name, model, batch_size, batch_tokens, device, precision, compile)
        self.overwrite_ents = overwrite_ents
        self.spans_key = spans_key
        self.cfg.update(overwrite_ents=overwrite_ents, spans_key=spans_key)

    def _make_engine(self, path: Path) -> AnnotationEngine:
        from biomodels.inference.engine import AnnotationEngine  # torch, on first use

        return AnnotationEngine(path, None, self.device, self.batch_tokens, self.precision, compile=self.compile)

    def predict(self, docs: Iterable[Doc]) -> list[list[tuple[int, int, str, float]]]:
        """Per doc, its predicted entities as (start token, end token, label, score)."""
        docs = list(docs)
        per_doc = [_content_tokens(doc) for doc in docs]
        sentences = []
        for doc, sents in zip(docs, per_doc):
            words = _token_texts(doc)
            sentences.extend([words[i] for i in idx.tolist()] for idx in sents)
        predictions = iter(self.engine.predict_entities(sentences) if sentences else [])
        out = []
        for sents in per_doc:
            found = []
            for idx in sents:
                pos = idx.tolist()
                found.extend(
                    (pos[first], pos[end - 1] + 1, label, score) for first, end, label, score in next(predictions)
                )
            out.append(found)
        return out

    def set_annotations(self, docs: Iterable[Doc], predictions: list[list[tuple[int, int, str, float]]]) -> None:
        annotator = self.annotator
        for doc, found in zip(docs, predictions):
            spans = [Span(doc, start, end, label=label) for start, end, label, _ in found]
            scores = [score for *_, score in found]
            doc.spans[self.spans_key] = SpanGroup(
                doc, name=self.spans_key, spans=spans, attrs={"scores": scores, "annotator": annotator}
            )
            self._set_ents(doc, spans)

    def _set_ents(self, doc: Doc, spans: list[Span]) -> None:
        if self.overwrite_ents or not doc.ents:
            doc.ents = spans
            return
        taken = np.zeros(len(doc), dtype=bool)
        for ent in doc.ents:
            taken[ent.start : ent.end] = True
        fresh = [s for s in spans if not taken[s.start : s.end].any()]
        doc.set_ents(fresh, default="unmodified")


class BiomegatronRE(_EngineComponent):
    task = "re"

    def __init__(
        self,
        nlp: Language,
        name: str,
        model: str,
        extension: str,
        batch_size: int,
        batch_tokens: int | None,
        device: str | None,
        precision: str,
        compile: bool = False,
    ) -> None:
        super().__init__(nlp, name, model, batch_size, batch_tokens, device, precision, compile)
        if not extension.isidentifier():
            raise ConfigError(f"{name}: extension {extension!r} is not a valid attribute name")
        self.extension = extension
        self.cfg.update(extension=extension)
        if not Doc.has_extension(extension):
            Doc.set_extension(extension, default=None)

    def _make_engine(self, path: Path) -> AnnotationEngine:
        from biomodels.inference.engine import AnnotationEngine  # torch, on first use

        return AnnotationEngine(
            None, path, self.device, self.batch_tokens, self.precision, existing="keep", compile=self.compile
        )

    def predict(self, docs: Iterable[Doc]) -> list[list[dict[str, Any]]]:
        """Per doc, its relations (plain dicts) among the candidate pairs of its `doc.ents`."""
        engine = self.engine
        per_doc = [engine.relation_candidates(as_document(doc)) if doc.ents else [] for doc in docs]
        results = iter(engine.predict_relations([c for cands in per_doc for c in cands]))
        negative, annotator = engine.negative_label, self.annotator
        out = []
        for cands in per_doc:
            found = []
            for cand in cands:
                label, score = next(results)
                if label == negative:
                    continue
                found.append(
                    {
                        "head": [cand.arg1.start, cand.arg1.end, cand.arg1.type],
                        "tail": [cand.arg2.start, cand.arg2.end, cand.arg2.type],
                        "label": label,
                        "score": score,
                        "annotator": annotator,
                    }
                )
            out.append(found)
        return out

    def set_annotations(self, docs: Iterable[Doc], predictions: list[list[dict[str, Any]]]) -> None:
        for doc, found in zip(docs, predictions):
            doc._.set(self.extension, found)


def as_document(doc: Doc) -> Document:
    """The doc as a one-passage Document: its sentences (non-whitespace token extent) and `doc.ents`."""
    text = doc.text
    sentences = [
        CharSpan(doc[int(idx[0])].idx, doc[int(idx[-1])].idx + len(doc[int(idx[-1])])) for idx in _content_tokens(doc)
    ]
    entities = [
        Entity(f"e{i}", ent.label_, [ent.text], [[ent.start_char, ent.end_char]]) for i, ent in enumerate(doc.ents)
    ]
    return Document(
        "doc", "doc", passages=[Passage("p0", "text", text, [[0, len(text)]])], sentences=sentences, entities=entities
    )


@Language.factory(
    NER_FACTORY,
    default_config={
        "model": "",
        "overwrite_ents": False,
        "spans_key": NER_FACTORY,
        "batch_size": 1000,
        "batch_tokens": None,
        "device": None,
        "precision": "auto",
        "compile": False,
    },
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
)
def make_ner(
    nlp: Language,
    name: str,
    model: str,
    overwrite_ents: bool,
    spans_key: str,
    batch_size: int,
    batch_tokens: int | None,
    device: str | None,
    precision: str,
    compile: bool,
) -> BiomegatronNER:
    return BiomegatronNER(
        nlp, name, model, overwrite_ents, spans_key, batch_size, batch_tokens, device, precision, compile
    )


@Language.factory(
    RE_FACTORY,
    default_config={
        "model": "",
        "extension": DEFAULT_EXTENSION,
        "batch_size": 1000,
        "batch_tokens": None,
        "device": None,
        "precision": "auto",
        "compile": False,
    },
    requires=["doc.ents"],
)
def make_re(
    nlp: Language,
    name: str,
    model: str,
    extension: str,
    batch_size: int,
    batch_tokens: int | None,
    device: str | None,
    precision: str,
    compile: bool,
) -> BiomegatronRE:
    return BiomegatronRE(nlp, name, model, extension, batch_size, batch_tokens, device, precision, compile)


__all__ = [
    "BiomegatronNER",
    "BiomegatronRE",
    "DEFAULT_EXTENSION",
    "NER_FACTORY",
    "RE_FACTORY",
    "as_document",
    "make_ner",
    "make_re",
]
