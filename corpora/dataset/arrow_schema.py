"""The Arrow schema of the store, declared once, and the HuggingFace features derived from it.

`datasets.load_dataset("parquet", ...)` restores features from the `huggingface` key of the Parquet
schema metadata; we write that key from this one declaration (list-of-struct, never `Sequence` of
dict) so pyarrow, pandas, polars, DuckDB and `datasets` all see the same nested columns.

Tested in `tests/corpora/dataset/test_store.py`.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from corpora.schema import SCHEMA_VERSION

_offsets = pa.list_(pa.list_(pa.int32()))
_normalized = pa.list_(pa.struct([("db_name", pa.string()), ("db_id", pa.string())]))
_span = pa.struct([("start", pa.int32()), ("end", pa.int32())])

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("document_id", pa.string()),
        ("source", pa.struct([("path", pa.string()), ("sha256", pa.string()), ("format", pa.string())])),
        (
            "passages",
            pa.list_(
                pa.struct([("id", pa.string()), ("type", pa.string()), ("text", pa.string()), ("offsets", _offsets)])
            ),
        ),
        (
            "entities",
            pa.list_(
                pa.struct(
                    [
                        ("id", pa.string()),
                        ("type", pa.string()),
                        ("text", pa.list_(pa.string())),
                        ("offsets", _offsets),
                        ("normalized", _normalized),
                        ("score", pa.float32()),
                        ("annotator", pa.string()),
                    ]
                )
            ),
        ),
        (
            "relations",
            pa.list_(
                pa.struct(
                    [
                        ("id", pa.string()),
                        ("type", pa.string()),
                        ("arg1_id", pa.string()),
                        ("arg2_id", pa.string()),
                        ("normalized", _normalized),
                        ("score", pa.float32()),
                        ("annotator", pa.string()),
                    ]
                )
            ),
        ),
        ("sentences", pa.list_(_span)),
        ("tokens", pa.list_(_span)),
        (
            "abbreviations",
            pa.list_(
                pa.struct(
                    [
                        ("id", pa.string()),
                        ("short_form", pa.string()),
                        ("long_form", pa.string()),
                        ("short_offsets", pa.list_(pa.int32())),
                        ("long_offsets", pa.list_(pa.int32())),
                    ]
                )
            ),
        ),
        (
            "metadata",
            pa.struct(
                [
                    ("journal", pa.string()),
                    ("year", pa.int32()),
                    ("doi", pa.string()),
                    ("pmcid", pa.string()),
                    ("language", pa.string()),
                    ("publication_types", pa.list_(pa.string())),
                    (
                        "mesh_terms",
                        pa.list_(
                            pa.struct(
                                [
                                    ("ui", pa.string()),
                                    ("name", pa.string()),
                                    ("major_topic", pa.bool_()),
                                    ("qualifiers", pa.list_(pa.string())),
                                ]
                            )
                        ),
                    ),
                    ("keywords", pa.list_(pa.string())),
                    ("extra", pa.string()),
                ]
            ),
        ),
    ]
)


def _feature(dtype: pa.DataType) -> Any:
    """HuggingFace `datasets` feature JSON for one Arrow type (structs become dicts, lists `List`)."""
    if pa.types.is_struct(dtype):
        return {dtype.field(i).name: _feature(dtype.field(i).type) for i in range(dtype.num_fields)}
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return {"feature": _feature(dtype.value_type), "_type": "List"}
    names = {
        pa.string(): "string",
        pa.int32(): "int32",
        pa.int64(): "int64",
        pa.float32(): "float32",
        pa.bool_(): "bool",
    }
    if dtype not in names:
        raise TypeError(f"no HuggingFace feature for Arrow type {dtype}")
    return {"dtype": names[dtype], "_type": "Value"}


def huggingface_features() -> dict[str, Any]:
    return {f.name: _feature(f.type) for f in DOCUMENT_SCHEMA}


def schema_with_metadata(extra: dict[str, str] | None = None) -> pa.Schema:
    """DOCUMENT_SCHEMA plus the metadata keys every Parquet shard carries."""
    meta = {
        "huggingface": json.dumps({"info": {"features": huggingface_features()}}),
        "biomed_schema_version": SCHEMA_VERSION,
    }
    meta.update(extra or {})
    return DOCUMENT_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in meta.items()})
