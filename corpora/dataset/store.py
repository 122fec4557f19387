"""The Parquet store: one file per input shard, a manifest, atomic writes, deletions applied.

Layout of a dataset folder::

    data/<shard>.parquet     the documents of one input shard (DOCUMENT_SCHEMA, HF features in metadata)
    _shards/<shard>.json     that shard's manifest entry (source hash, code version, counts)
    manifest.json            all entries, consolidated after each run
    .staging/                files being written; never read as part of the dataset

A shard is written to `.staging/`, validated by reading it back, then renamed into `data/`, so a run
killed at any moment leaves the previous dataset intact and readable. Everything under `data/` is
readable by pyarrow.dataset, pandas, polars, DuckDB and `datasets.load_dataset("parquet")`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from corpora.dataset.arrow_schema import DOCUMENT_SCHEMA, schema_with_metadata
from corpora.dataset.fault_points import fault_point
from corpora.dataset.manifest import ShardEntry, read_entry, utc_now, write_json_atomic
from corpora.dataset.manifest_repair import WRITE_ID_KEY, table_counts
from corpora.errors import StoreError
from corpora.schema import SCHEMA_VERSION, Document

log = logging.getLogger(__name__)

ROWS_PER_GROUP = 2000
RECONCILED_FILE = "reconciled.json"  # which write of each shard the last `reconcile` saw
_KNOWN_SUFFIXES = (
    ".xml.gz",
    ".xml",
    ".json",
    ".jsonl",
    ".txt",
    ".tsv",
    ".conll",
    ".ann",
    ".gz",
    ".parquet",
    ".iob2",
    ".bioc",
)


def shard_name_for(source: str | Path) -> str:
    """A stable, readable shard name: the file stem plus 8 hex digits of its absolute path."""
    p = Path(source)
    name = p.name
    for suffix in _KNOWN_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "shard"
    digest = hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:8]
    return f"{stem}-{digest}"


class DatasetStore:
    """A dataset folder of Parquet shards; see the module docstring for the layout and guarantees."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.entries_dir = self.root / "_shards"
        self.staging_dir = self.root / ".staging"
        self.manifest_path = self.root / "manifest.json"

    # ---- reading -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.data_dir.is_dir()

    def shard_path(self, shard: str) -> Path:
        return self.data_dir / f"{shard}.parquet"

    def shard_files(self) -> list[Path]:
        return sorted(self.data_dir.glob("*.parquet")) if self.data_dir.is_dir() else []

    def entries(self) -> dict[str, ShardEntry]:
        """Manifest entries of the shards present in `data/` (an entry without its file is stale)."""
        out: dict[str, ShardEntry] = {}
        if not self.entries_dir.is_dir():
            return out
        for path in sorted(self.entries_dir.glob("*.json")):
            entry = read_entry(path)
            if self.shard_path(entry.shard).exists():
                out[entry.shard] = entry
        return out

    def entry(self, shard: str) -> ShardEntry | None:
        path = self.entries_dir / f"{shard}.json"
        if not path.exists() or not self.shard_path(shard).exists():
            return None
        return read_entry(path)

    def is_current(self, shard: str, source_sha256: str, code_version: str, producer: dict | None = None) -> bool:
        """True when the shard was written from the same source bytes by the same code (and producer)."""
        entry = self.entry(shard)
        return (
            entry is not None
            and entry.source_sha256 == source_sha256
            and entry.code_version == code_version
            and entry.producer == (producer or {})
        )

    def dataset(self) -> pads.Dataset:
        if not self.exists():
            raise StoreError(f"{self.root}: no dataset here (missing {self.data_dir})")
        return pads.dataset(str(self.data_dir), format="parquet", schema=DOCUMENT_SCHEMA)

    def iter_documents(self, shard: str | None = None, batch_size: int = 256) -> Iterator[Document]:
        """Stream Documents shard by shard (memory bounded by `batch_size` rows)."""
        files = [self.shard_path(shard)] if shard else self.shard_files()
        for path in files:
            try:
                pf = pq.ParquetFile(path)
                for batch in pf.iter_batches(batch_size=batch_size):
                    for row in batch.to_pylist():
                        yield Document.from_dict(row)
            except (OSError, pa.ArrowInvalid) as exc:
                raise StoreError(f"{path}: cannot read shard ({exc})") from exc

    def count_rows(self) -> int:
        return sum(pq.read_metadata(p).num_rows for p in self.shard_files())

    # ---- writing -------------------------------------------------------------------------
    def write_shard(
        self,
        shard: str,
        documents: Iterable[Document],
        entry: ShardEntry,
        on_document: Callable[[Document], None] | None = None,
        keep_last_duplicate: bool = False,
    ) -> ShardEntry:
        """Write `documents` as the shard `shard`, atomically, and record `entry` with counts filled in.

        If iterating `documents` raises (bad input), nothing is renamed: the previous version of the
        shard, if any, stays as it was, and the exception propagates. `keep_last_duplicate`: of
        documents with the same `id`, only the last is kept (a MEDLINE file's revised record). An
        OSError while writing (a full disk, a read-only folder) becomes a StoreError naming the
        input (`entry.source_path`), the dataset and what to do.
        """
        tmp = self.staging_dir / f"{shard}.{uuid.uuid4().hex[:8]}.parquet"
        entry.write_id = uuid.uuid4().hex
        schema = schema_with_metadata(
            {"biomed_shard": shard, "biomed_source_sha256": entry.source_sha256, WRITE_ID_KEY.decode(): entry.write_id}
        )
        entity_types: Counter[str] = Counter()
        relation_types: Counter[str] = Counter()
        rows = passages = 0
        seen: set[str] = set()
        duplicated = False
        try:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                buffer: list[dict] = []
                for doc in documents:
                    if on_document is not None:
                        on_document(doc)
                    if keep_last_duplicate:
                        duplicated = duplicated or doc.id in seen
                        seen.add(doc.id)
                    rows += 1
                    passages += len(doc.passages)
                    entity_types.update(e.type for e in doc.entities)
                    relation_types.update(r.type for r in doc.relations)
                    buffer.append(doc.to_dict())
                    if len(buffer) >= ROWS_PER_GROUP:
                        writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                        buffer.clear()
                if buffer:
                    writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
            counts = None
            if duplicated:
                counts = self._keep_last_of_each_id(tmp)
                rows = counts["rows"]
            self._validate(tmp, rows)
            fault_point("after-staging-write")
            os.replace(tmp, self.shard_path(shard))
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if not self._is_write_failure(exc):
                raise  # reading the input failed: the reader's error is the one to report
            raise write_error(exc, self.root, entry.source_path) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fault_point("after-shard-replace")
        entry.shard = shard
        if counts is not None:
            for key, value in counts.items():
                setattr(entry, key, value)
        else:
            entry.rows = rows
            entry.passages = passages
            entry.entities = sum(entity_types.values())
            entry.relations = sum(relation_types.values())
            entry.entity_types = dict(sorted(entity_types.items()))
            entry.relation_types = dict(sorted(relation_types.items()))
        entry.written_at = utc_now()
        self._write_entry(entry)
        fault_point("after-entry-write")
        return entry

    def _keep_last_of_each_id(self, tmp: Path) -> dict:
        """Rewrite the staged file `tmp` keeping, of rows with the same `id`, the last; its counts."""
        table = pq.read_table(tmp, schema=DOCUMENT_SCHEMA)
        ids = table["id"].to_pylist()
        last = {doc_id: i for i, doc_id in enumerate(ids)}
        keep = [last[doc_id] == i for i, doc_id in enumerate(ids)]
        kept = table.filter(pa.array(keep)).replace_schema_metadata(pq.read_schema(tmp).metadata)
        dropped = len(ids) - len(last)
        log.info("%s: %d earlier copies of repeated document ids dropped (the last is kept)", tmp.name, dropped)
        pq.write_table(kept, tmp, compression="zstd", row_group_size=ROWS_PER_GROUP)
        return table_counts(kept)

    def _is_write_failure(self, exc: OSError) -> bool:
        """An OSError about a file of this dataset (or without a file name: pyarrow's writer)."""
        if not exc.filename:
            return True
        root = self.root.resolve()
        return Path(exc.filename).resolve() == root or root in Path(exc.filename).resolve().parents

    def _write_entry(self, entry: ShardEntry) -> None:
        try:
            write_json_atomic(self.entries_dir / f"{entry.shard}.json", entry.__dict__)
        except OSError as exc:
            raise write_error(exc, self.root, entry.source_path) from exc

    def _validate(self, path: Path, expected_rows: int) -> None:
        """Read the staged file back: footer, schema and every row group must decode."""
        try:
            meta = pq.read_metadata(path)
            table = pq.read_table(path, columns=["id"])
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"{path}: written shard cannot be read back ({exc})") from exc
        if meta.num_rows != expected_rows or table.num_rows != expected_rows:
            raise StoreError(f"{path}: wrote {expected_rows} rows but read back {meta.num_rows}")
        if not pq.read_schema(path).remove_metadata().equals(DOCUMENT_SCHEMA):
            raise StoreError(f"{path}: written schema differs from the document schema")

    def remove_documents(self, shard: str, document_ids: set[str]) -> int:
        """Drop rows whose `document_id` is in `document_ids` from one shard (atomic rewrite)."""
        path = self.shard_path(shard)
        if not document_ids or not path.exists():
            return 0
        wanted = pa.array(sorted(document_ids), pa.string())
        # The id column alone answers whether anything goes; most shards then need no rewrite.
        if not pc.any(pc.is_in(pq.read_table(path, columns=["document_id"])["document_id"], value_set=wanted)).as_py():
            return 0
        table = pq.read_table(path, schema=DOCUMENT_SCHEMA)
        kept = table.filter(pc.invert(pc.is_in(table["document_id"], value_set=wanted)))
        removed = table.num_rows - kept.num_rows
        if removed == 0:
            return 0
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.staging_dir / f"{shard}.{uuid.uuid4().hex[:8]}.parquet"
        try:
            pq.write_table(
                kept.replace_schema_metadata(pq.read_schema(path).metadata),
                tmp,
                compression="zstd",
                row_group_size=ROWS_PER_GROUP,
            )
            self._validate(tmp, kept.num_rows)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise write_error(exc, self.root, str(path)) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fault_point("after-removal-replace")
        entry = self.entry(shard)
        if entry is not None:
            entry.removed_later += removed
            for key, value in table_counts(kept).items():  # rows, and the entity and passage counts with them
                setattr(entry, key, value)
            self._write_entry(entry)
        return removed

    def reconcile(self) -> dict[str, int]:
        """Apply MEDLINE semantics across the pubmed-xml shards, oldest first by source file name,
        and the same "later wins" across the shards of each other format ingested with
        `--on-duplicate last` (`supersede_groups`).

        A `DeleteCitation` recorded by a shard removes that PMID from every shard whose source sorts
        before it; a citation that appears again in a later pubmed-xml shard (a revised record in an
        update file) replaces the earlier copy. Baseline and update files are named so that their
        names sort in publication order (pubmed25n0001 ... pubmed25n1275 ...). Returns the number
        of documents removed per shard.

        Incremental: `reconciled.json` records which write of each shard the last reconcile saw, and
        only what changed since is applied. A shard written since then is checked against every
        later shard; an unchanged shard only against the ids and deletions of later shards written
        since. A nightly update file therefore costs one id-column read per earlier shard and a
        rewrite only of the shards it touches, and memory holds the new files' ids, not the
        baseline's tens of millions. Without the record (older datasets) everything is checked.
        """
        seen = self._reconciled_writes()
        removed: dict[str, int] = {}
        record: dict[str, list[str]] = {}
        for entries in supersede_groups(self.entries().values()):
            removed.update(self._reconcile_group(entries, seen))
            record.update({e.shard: _write_key(e) for e in entries})
        try:
            write_json_atomic(self.root / RECONCILED_FILE, {"writes": record})
        except OSError as exc:
            raise write_error(exc, self.root, str(self.root / RECONCILED_FILE)) from exc
        return removed

    def _reconcile_group(self, entries: list[ShardEntry], seen: dict[str, list[str]]) -> dict[str, int]:
        """`reconcile` over one group of shards, sorted oldest first."""
        changed = [_write_key(e) != seen.get(e.shard) for e in entries]
        removed: dict[str, int] = {}
        if any(changed):
            first_changed = changed.index(True)
            later_all: set[str] = set()  # ids and deletions of every later shard (only while needed)
            later_changed: set[str] = set()  # ... of later shards written since the last reconcile
            for i in range(len(entries) - 1, -1, -1):
                entry = entries[i]
                drop = later_all if changed[i] else later_changed
                if drop and (n := self.remove_documents(entry.shard, drop)):
                    removed[entry.shard] = n
                    log.info("removed %d deleted or superseded documents from %s", n, entry.shard)
                    fault_point("after-reconcile-shard")
                if i <= first_changed:
                    later_all = set()  # no earlier shard is new: nothing needs all ids any more
                    if not changed[i]:
                        continue
                ids = set(entry.deletions)
                ids.update(
                    pq.read_table(self.shard_path(entry.shard), columns=["document_id"])["document_id"].to_pylist()
                )
                if i > first_changed:
                    later_all |= ids
                if changed[i]:
                    later_changed |= ids
        return removed

    def reconciled(self) -> bool:
        """True when `reconcile` has seen the current write of every shard it applies to (nothing to do)."""
        seen = self._reconciled_writes()
        groups = supersede_groups(self.entries().values())
        return all(_write_key(e) == seen.get(e.shard) for group in groups for e in group)

    def _reconciled_writes(self) -> dict[str, list[str]]:
        path = self.root / RECONCILED_FILE
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("writes", {})
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s): reconciling every shard", path, exc)
            return {}

    def write_manifest(self, extra: dict | None = None) -> dict:
        """Consolidate the shard entries into manifest.json (atomic) and return it; called once all
        shards of a run are written, so an empty staging folder is removed here."""
        with contextlib.suppress(OSError):  # absent, or holding a file of a run still writing
            self.staging_dir.rmdir()
        entries = self.entries()
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "updated_at": utc_now(),
            "rows": sum(e.rows for e in entries.values()),
            "shards": {name: e.__dict__ for name, e in entries.items()},
        }
        manifest.update(extra or {})
        fault_point("before-manifest")
        try:
            write_json_atomic(self.manifest_path, manifest)
        except OSError as exc:
            raise write_error(exc, self.root, str(self.manifest_path)) from exc
        return manifest

    def prune(self, keep: set[str]) -> list[str]:
        """Remove shards (and their entries) whose names are not in `keep`: their input is gone."""
        removed = []
        for path in self.shard_files():
            if path.stem not in keep:
                path.unlink()
                fault_point("after-prune-unlink")
                (self.entries_dir / f"{path.stem}.json").unlink(missing_ok=True)
                removed.append(path.stem)
        return removed

    def shard_names(self) -> list[str]:
        return [p.stem for p in self.shard_files()]

    def clear_staging(self) -> None:
        """Remove leftovers of killed runs (call at the start of a run, not while one is writing)."""
        if self.staging_dir.exists():
            shutil.rmtree(self.staging_dir, ignore_errors=True)


_ADVICE = {
    errno.ENOSPC: "free disk space there, then rerun (shards already written are kept and skipped)",
    errno.EDQUOT: "free space in your quota there, then rerun (shards already written are kept and skipped)",
    errno.EROFS: "the file system is read-only: choose another --out, or remount it writable, then rerun",
    errno.EACCES: "make the folder writable for this user (or choose another --out), then rerun",
    errno.EPERM: "make the folder writable for this user (or choose another --out), then rerun",
}


def write_error(exc: OSError, root: Path, source: str) -> StoreError:
    """A StoreError for a failed write: names the input being written, the dataset, the cause and the
    remedy (a full disk or a read-only folder is the user's to fix, not a bug to report)."""
    what = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    advice = _ADVICE.get(exc.errno or 0, "check the folder and the disk, then rerun")
    return StoreError(f"{source}: cannot write into the dataset {root}: {what}{where}; {advice}")


SUPERSEDE_FORMATS = ("pubmed-xml",)  # formats whose later records replace earlier ones by definition


def supersede_groups(entries: Iterable[ShardEntry]) -> list[list[ShardEntry]]:
    """The groups of shards within which a later document replaces an earlier one with the same
    `document_id`, each sorted oldest first (by source file name): all MEDLINE shards, and per
    other format the shards ingested with `--on-duplicate last`."""
    groups: dict[str, list[ShardEntry]] = {}
    for e in entries:
        if e.format in SUPERSEDE_FORMATS:
            groups.setdefault(e.format, []).append(e)
        elif e.producer.get("on_duplicate") == "last":
            groups.setdefault(f"{e.format}+last", []).append(e)
    return [sorted(g, key=lambda e: (Path(e.source_path).name, e.shard)) for _, g in sorted(groups.items())]


def _write_key(entry: ShardEntry) -> list[str]:
    """What identifies one write of a shard (entries written before `write_id` existed use the rest)."""
    return [entry.source_sha256, entry.code_version, entry.written_at, entry.write_id]


def open_dataset(root: str | Path) -> DatasetStore:
    """Open an existing dataset folder for reading; raises StoreError when there is none."""
    store = DatasetStore(root)
    if not store.exists():
        raise StoreError(f"{root}: not a biomed dataset (no data/ folder); create one with `biomed ingest`")
    return store
