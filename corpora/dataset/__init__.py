"""The Arrow/Parquet store: one Parquet file per input shard, a manifest, atomic writes.

`store` (the `DatasetStore` and `open_dataset`), `arrow_schema` (the Arrow schema and the HuggingFace
features, declared once), `manifest` (per-shard entries), `versioning` (the code version a shard
was made with), `shard_report` (what one shard job did), `ingest` (one input file into one shard)
and `derived_shards` (keeping preprocessed and annotated shards in step with their source).
"""

from corpora.dataset.ingest import ingest_file
from corpora.dataset.shard_report import ShardReport
from corpora.dataset.store import DatasetStore, open_dataset

__all__ = ["DatasetStore", "ShardReport", "ingest_file", "open_dataset"]
