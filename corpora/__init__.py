"""Format readers and writers, the document schema, the Parquet store, preprocessing, samples.

Library code only: no torch, no Prefect.
"""

from corpora.schema import Document

__all__ = ["Document"]
