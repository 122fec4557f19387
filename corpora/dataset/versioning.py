"""The code version recorded in manifests and used to decide whether a shard must be redone.

A package version alone misses edits to a reader during development, and hashing only the task
source misses changes in the helpers it calls, so the version carries a hash of the source of every
module of the library packages.

Tested in `tests/corpora/dataset/test_ingest.py`.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path

from corpora.schema import SCHEMA_VERSION


def package_version() -> str:
    try:
        return metadata.version("biomed-pipelines")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@cache
def source_hash(package: str = "corpora") -> str:
    """First 12 hex digits of a hash over the package's Python sources (sorted by path)."""
    root = Path(__file__).resolve().parent.parent / package
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def code_version(package: str = "corpora") -> str:
    """E.g. `0.1.0+schema1.src3f2a9c0d1e2b`: changes when the version, schema or any source changes."""
    return f"{package_version()}+schema{SCHEMA_VERSION}.src{source_hash(package)}"
