"""Ingest one input file into a dataset shard: detect, read, validate, write atomically.

This is the library function behind the Prefect `ingest` flow; it is also what a test or a notebook
calls directly. One call handles one shard; the flow maps it over files.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from pathlib import Path
from typing import Any

from corpora.dataset.duplicates import DuplicateCheck, duplicate_producer, keeps_last
from corpora.dataset.manifest import ShardEntry
from corpora.dataset.shard_report import ShardReport, report_if_current
from corpora.dataset.store import DatasetStore, shard_name_for
from corpora.dataset.versioning import code_version
from corpora.errors import ConfigError, EmptyInputError
from corpora.formats.isolated_read import isolate_native_formats, read_records
from corpora.formats.registry import companion_files, detect_format, get_reader
from corpora.formats.textio import sha256_file
from corpora.schema import Deletion, Document
from corpora.validation import check_entity_offsets, check_relation_arguments

log = logging.getLogger(__name__)


MISMATCH_CHOICES = ("error", "skip")


def reader_options(fmt: str, on_mismatch: str) -> dict[str, str]:
    """Keyword arguments for the `fmt` reader: `mismatch` where the reader takes it and it is not
    the default. Raises ConfigError for an unknown policy."""
    if on_mismatch not in MISMATCH_CHOICES:
        raise ConfigError(f"--on-offset-mismatch must be one of {MISMATCH_CHOICES}, got {on_mismatch!r}")
    if on_mismatch == "error" or "mismatch" not in inspect.signature(get_reader(fmt)).parameters:
        return {}
    return {"mismatch": on_mismatch}


@isolate_native_formats  # XML is parsed in a child process: a native crash fails this file alone
def ingest_file(
    path: str | Path,
    out_dir: str | Path,
    fmt: str = "auto",
    force: bool = False,
    on_mismatch: str = "error",
    on_duplicate: str = "error",
) -> ShardReport:
    """Read `path` into the dataset at `out_dir` as one shard.

    Unchanged input (same content hash, same code version, same reader options) is skipped
    without reading it. Any error in the file raises an `InputError` naming the file and line; the
    shard's previous version, if any, is left untouched. `on_mismatch="skip"` lets readers that
    support it (BioC XML/JSON) drop an annotation whose text does not match its offsets, with a
    warning, instead of failing the file; other readers always fail on such an annotation.
    `on_duplicate`: a document id repeated in the file (see `corpora.dataset.duplicates`).
    """
    src = Path(path)
    store = DatasetStore(out_dir)
    shard = shard_name_for(src)
    name = detect_format(src) if fmt == "auto" else fmt
    sha = input_hash(src, name)
    version = code_version()
    options = reader_options(name, on_mismatch)
    producer = {"reader_options": options} if options else {}  # a different option redoes the shard
    producer.update(duplicate_producer(name, on_duplicate))
    producer = producer or None
    if not force and (skipped := report_if_current(store, shard, str(src), sha, version, producer)):
        log.info("%s unchanged: skipped", src)
        return skipped

    reader = functools.partial(read_records, fmt=name, options=options, isolate=False)  # MemoryError named
    deletions: list[str] = []

    def documents() -> Any:
        for record in reader(src):
            if isinstance(record, Deletion):
                deletions.append(record.document_id)
                continue
            yield record

    duplicates = DuplicateCheck(src, name, on_duplicate)

    def validate(doc: Document) -> None:
        duplicates.see(doc)
        doc.source.path = str(src)
        doc.source.sha256 = sha
        doc.source.format = name
        check_entity_offsets(doc, src)
        check_relation_arguments(doc, src)

    entry = ShardEntry(
        shard=shard, source_path=str(src), source_sha256=sha, format=name, code_version=version, producer=producer or {}
    )
    entry.deletions = deletions  # filled while the shard is written
    written = store.write_shard(
        shard,
        _non_empty(documents(), deletions, src),
        entry,
        on_document=validate,
        keep_last_duplicate=keeps_last(name, on_duplicate),
    )
    log.info(
        "%s: %d documents, %d entities, %d relations, %d deletions -> %s",
        src,
        written.rows,
        written.entities,
        written.relations,
        len(deletions),
        shard,
    )
    return ShardReport.from_entry(str(src), written, "written")


def unchanged_inputs(
    inputs: list[str], out_dir: str | Path, fmt: str = "auto", on_mismatch: str = "error", on_duplicate: str = "error"
) -> list[Path] | None:
    """The input files when every one of them is already in the dataset at `out_dir` exactly as
    `ingest_file` would write it (same bytes, code and reader options) and the last run finished
    (its manifest exists); None when any file has work to do. Reads only the files' bytes and the
    shard entries, so a command can answer "nothing to do" without starting a flow."""
    from corpora.formats.registry import expand_inputs

    store = DatasetStore(out_dir)
    if not store.manifest_path.is_file():
        return None
    files = expand_inputs(inputs)
    version = code_version()
    for src in files:
        name = detect_format(src) if fmt == "auto" else fmt
        options = reader_options(name, on_mismatch)
        producer = {"reader_options": options} if options else {}
        producer.update(duplicate_producer(name, on_duplicate))
        if not store.is_current(shard_name_for(src), input_hash(src, name), version, producer or None):
            return None
    if not store.reconciled():
        return None  # a run died before applying MEDLINE deletions and newer versions
    return files


def input_hash(path: Path, fmt: str) -> str:
    """sha256 of the file, or, when the reader also reads companion files, of all their hashes."""
    companions = companion_files(path, fmt)
    if not companions:
        return sha256_file(path)
    joined = "".join(f"{p.name}:{sha256_file(p)}\n" for p in [path, *companions])
    return hashlib.sha256(joined.encode()).hexdigest()


def _non_empty(documents: Any, deletions: list[str], src: Path) -> Any:
    """Pass documents through; a file that yields neither documents nor deletions is an error."""
    n = 0
    for doc in documents:
        n += 1
        yield doc
    if n == 0 and not deletions:
        raise EmptyInputError(src, "no documents found")
