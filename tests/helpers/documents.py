"""Small mixed sets of bundled documents for preprocessing tests."""

from __future__ import annotations

from corpora.formats.pubmed_xml import read_pubmed_xml
from corpora.formats.pubtator import read_pubtator
from corpora.schema import Document
from tests.helpers.paths import SAMPLES

NCBI = SAMPLES / "ncbi-disease" / "NCBI_train_sample.PubTator.txt"
MEDLINE = SAMPLES / "pubmed" / "medline16n0902.xml.gz"


def mixed_subset() -> list[Document]:
    """24 NCBI-disease PubTator abstracts and 40 MEDLINE citations, fresh objects on every call."""
    docs = list(read_pubtator(NCBI))[:24]
    docs += [d for d in read_pubmed_xml(MEDLINE) if isinstance(d, Document)][:40]
    return docs
