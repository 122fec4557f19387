"""Training and evaluation data for ner|re|qa from whatever the user has: files in any format the
readers know, folders, globs, a Parquet dataset folder, masked RE TSV files, or SQuAD JSON.

Documents that lack what a task needs (sentences for RE; sentences and tokens for NER) are run
through scispaCy preprocessing here; documents that have them (CoNLL files, preprocessed datasets)
keep their gold sentences and tokens. Every file read is listed with its sha256 (`DataFiles`) so the
model directory can record exactly what it was trained on.

Tested in `tests/biomodels/training/test_api.py`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from biomodels.data.ner import NerExample, ner_examples
from biomodels.data.qa import QAExample, read_squad
from biomodels.data.re_candidates import RELATION_TASKS, RelationCandidate, RelationTask, relation_candidates
from biomodels.data.re_marking import MarkedExample
from biomodels.data.re_masked_tsv import read_masked_re_tsv
from corpora.dataset.store import DatasetStore
from corpora.errors import ConfigError, InputError
from corpora.formats.registry import companion_files, detect_format, expand_inputs, read_documents
from corpora.formats.textio import head_bytes, sha256_file
from corpora.preprocess.documents import preprocess_documents
from corpora.preprocess.shard import cached_pipeline
from corpora.schema import Document

log = logging.getLogger(__name__)

_MASK_HINT = re.compile(rb"@[A-Z]+(?:-[A-Z]+)*\$|BC6ENT[CG]")


@dataclass
class DataFiles:
    """Every file a data set was read from, with its content hash (for biomed.json)."""

    files: list[dict[str, str]] = field(default_factory=list)

    def add(self, path: Path, kind: str, origin: dict[str, str] | None = None) -> None:
        record = {"path": str(Path(path).resolve()), "sha256": sha256_file(path), "kind": kind}
        if origin:
            record["origin"] = origin
        self.files.append(record)


def shard_origin(store: DatasetStore, shard: str) -> dict[str, str] | None:
    """The raw input a dataset shard was made from (through derived datasets: preprocessed from
    ingested), as the manifests record it: `{path, sha256, format}`; None when not recorded."""
    for _ in range(4):  # raw -> ingested -> preprocessed -> annotated at most
        entry = store.entry(shard)
        if entry is None:
            return None
        source = Path(entry.source_path)
        parent = source.parent.parent  # <dataset>/data/<shard>.parquet
        if source.suffix == ".parquet" and source.parent.name == "data" and DatasetStore(parent).exists():
            store, shard = DatasetStore(parent), source.stem
            continue
        return {"path": entry.source_path, "sha256": entry.source_sha256, "format": entry.format}
    return None


def is_dataset_dir(path: Path) -> bool:
    """A Parquet dataset folder made by `biomed ingest`/`preprocess` (a data/ folder of shards)."""
    store = DatasetStore(path)
    return path.is_dir() and store.exists() and bool(store.shard_files())


def looks_like_masked_re(path: Path) -> bool:
    """A sentence-level masked RE file (BLUE `id<TAB>sentence<TAB>label` or BioELECTRA
    `sentence<TAB>label`): tab-separated rows holding @CHEMICAL$-style or BC6ENT masks."""
    if path.suffix.lower() not in (".tsv", ".txt") or path.name.endswith("_abstracts.tsv"):
        return False
    lines = [ln for ln in head_bytes(path, 8192).splitlines()[:20] if ln.strip()]
    if not lines:
        return False
    if lines[0].strip().lower() == b"sentence\tlabel":
        return True
    return all(len(ln.split(b"\t")) in (2, 3) for ln in lines[:-1] or lines) and any(
        _MASK_HINT.search(ln) for ln in lines
    )


def _needs(doc: Document, tokens: bool) -> bool:
    return not doc.sentences or (tokens and not doc.tokens)


def read_input_documents(
    inputs: Sequence[str | Path], fmt: str = "auto", files: DataFiles | None = None
) -> list[Document]:
    """Documents of every input (file, folder, glob, or dataset folder); Deletions are skipped."""
    docs: list[Document] = []
    for item in inputs:
        p = Path(item)
        if is_dataset_dir(p):
            store = DatasetStore(p)
            for shard in store.shard_files():
                if files is not None:
                    files.add(shard, "parquet", shard_origin(store, shard.stem))
            docs.extend(store.iter_documents())
            continue
        for path in expand_inputs([item]):
            name = detect_format(path) if fmt == "auto" else fmt
            if files is not None:
                files.add(path, name)
                for companion in companion_files(path, name):
                    files.add(companion, f"{name} companion")
            docs.extend(r for r in read_documents(path, name) if isinstance(r, Document))
    return docs


def ensure_preprocessed(docs: list[Document], tokens: bool, spacy_model: str | None = None) -> list[Document]:
    """Add sentences and tokens (scispaCy) to the documents that lack them; others are untouched."""
    missing = [d for d in docs if _needs(d, tokens)]
    if not missing:
        return docs

    log.info(
        "preprocessing %d of %d documents with scispaCy (they have no %s)",
        len(missing),
        len(docs),
        "sentences/tokens" if tokens else "sentences",
    )
    done = {id(d): d for d in preprocess_documents(missing, cached_pipeline(spacy_model))}
    return [done.get(id(d), d) for d in docs]


def load_documents(
    inputs: Sequence[str | Path],
    fmt: str = "auto",
    *,
    tokens: bool = True,
    spacy_model: str | None = None,
    files: DataFiles | None = None,
) -> list[Document]:
    """Documents with sentences (and tokens when `tokens`) from any inputs; an empty result is an error."""
    docs = read_input_documents(inputs, fmt, files)
    if not docs:
        raise InputError(", ".join(map(str, inputs)), "no documents in these inputs")
    return ensure_preprocessed(docs, tokens, spacy_model)


# ----------------------------------------------------------------------------------------------- NER


def filter_entity_types(docs: Iterable[Document], types: Sequence[str] | None) -> list[Document]:
    """Keep only entities of `types` (all when None); names not present in any document are an error."""
    docs = list(docs)
    if not types:
        return docs
    present = Counter(e.type for d in docs for e in d.entities)
    unknown = [t for t in types if t not in present]
    if unknown:
        raise ConfigError(
            f"entity_types {unknown} do not occur in the data (types present: {', '.join(sorted(present)) or 'none'})"
        )
    wanted = set(types)
    for d in docs:
        d.entities = [e for e in d.entities if e.type in wanted]
        d.relations = [r for r in d.relations if {r.arg1_id, r.arg2_id} <= {e.id for e in d.entities}]
    return docs


def load_ner_examples(
    inputs: Sequence[str | Path],
    *,
    fmt: str = "auto",
    entity_types: Sequence[str] | None = None,
    discontinuous: str = "first",
    spacy_model: str | None = None,
    files: DataFiles | None = None,
) -> list[NerExample]:
    docs = load_documents(inputs, fmt, tokens=True, spacy_model=spacy_model, files=files)
    examples = ner_examples(filter_entity_types(docs, entity_types), discontinuous=discontinuous)  # type: ignore[arg-type]
    if not examples:
        raise InputError(", ".join(map(str, inputs)), "no sentences with tokens to train or evaluate NER on")
    return examples


# ------------------------------------------------------------------------------------------------ RE


def choose_relation_task(docs: Sequence[Document], name: str) -> RelationTask:
    """The candidate/label rules: named, or (`auto`) recognised from the entity types in `docs`."""
    if name != "auto":
        if name not in RELATION_TASKS:
            raise ConfigError(f"relation_task {name!r} is not one of auto, {', '.join(RELATION_TASKS)}")
        return RELATION_TASKS[name]
    types = {e.type for d in docs for e in d.entities}
    for task in RELATION_TASKS.values():
        if any(a in types and b in types for a, b in task.type_pairs):
            return task
    raise ConfigError(
        f"cannot tell the relation task from the entity types {sorted(types)}; set relation_task to one of "
        f"{', '.join(RELATION_TASKS)}"
    )


@dataclass
class RelationData:
    """RE inputs: candidates from documents, or pre-masked sentence rows (never both)."""

    examples: list[RelationCandidate | MarkedExample]
    kind: str  # "documents" | "masked-tsv"
    task: RelationTask | None
    negative_label: str


def load_re_examples(
    inputs: Sequence[str | Path],
    *,
    fmt: str = "auto",
    relation_task: str = "auto",
    spacy_model: str | None = None,
    files: DataFiles | None = None,
    task: RelationTask | None = None,
) -> RelationData:
    """Candidates (documents of any format; sentences added when missing) or masked TSV rows.

    `task` fixes the candidate rules (evaluation uses the ones the model was trained with).
    """
    masked: list[MarkedExample] = []
    doc_inputs: list[str | Path] = []
    for item in inputs:
        p = Path(item)
        if is_dataset_dir(p):
            doc_inputs.append(item)
            continue
        for path in expand_inputs([item]):
            if fmt in ("auto", "masked-tsv") and (fmt == "masked-tsv" or looks_like_masked_re(path)):
                if files is not None:
                    files.add(path, "masked-re-tsv")
                masked.extend(read_masked_re_tsv(path))
            else:
                doc_inputs.append(path)
    if masked and doc_inputs:
        raise ConfigError(
            f"RE inputs mix masked sentence files with documents ({', '.join(map(str, doc_inputs[:3]))}); use one kind"
        )
    if masked:
        return RelationData(list(masked), "masked-tsv", None, task.negative_label if task else "false")
    docs = load_documents(
        doc_inputs, "auto" if fmt == "masked-tsv" else fmt, tokens=False, spacy_model=spacy_model, files=files
    )
    rel_task = task or choose_relation_task(docs, relation_task)
    cands = relation_candidates(docs, rel_task)
    if not cands:
        raise InputError(
            ", ".join(map(str, inputs)), f"no {rel_task.name} candidate pairs (no sentence holds both argument types)"
        )
    return RelationData(list(cands), "documents", rel_task, rel_task.negative_label)


def re_label_list(data: RelationData) -> list[str]:
    """Labels in id order: the negative label first, then the positive labels sorted."""
    if data.task is not None and data.task.labels is not None:
        positives = sorted(data.task.labels)
    else:
        positives = sorted({ex.label for ex in data.examples if ex.label is not None} - {data.negative_label})
    if not positives:
        raise InputError("<relation data>", "no positive relation labels in the training data")
    return [data.negative_label, *positives]


# ------------------------------------------------------------------------------------------------ QA


def load_qa_examples(inputs: Sequence[str | Path], files: DataFiles | None = None) -> list[QAExample]:
    """Questions of SQuAD v1.1 JSON files; ids must be unique across files."""
    examples: list[QAExample] = []
    seen: dict[str, Path] = {}
    for path in expand_inputs(inputs):
        if files is not None:
            files.add(path, "squad-json")
        for ex in read_squad(path):
            if ex.id in seen:
                raise InputError(path, f"question id also in {seen[ex.id]}", record=ex.id)
            seen[ex.id] = path
            examples.append(ex)
    return examples


__all__ = [
    "DataFiles",
    "RelationData",
    "choose_relation_task",
    "ensure_preprocessed",
    "filter_entity_types",
    "is_dataset_dir",
    "load_documents",
    "load_ner_examples",
    "load_qa_examples",
    "load_re_examples",
    "looks_like_masked_re",
    "re_label_list",
    "read_input_documents",
]
