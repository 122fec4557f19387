"""Readers and writers of every input format, format detection and the registry that ties them.

`read_documents(path)` streams Documents (and MEDLINE `Deletion`s) from any supported file, the
format detected from its content unless given. Each format has its own module (`pubmed_xml`,
`pubtator`, `bioc_xml`, `bioc_json`, `conll`, `chemprot`, `brat`, `ddi`); `bioc_common` and
`bioc_export` hold the BioC mapping both BioC modules share, `concept_ids` the concept identifiers
of PubTator and BioC, `textio` the opening of plain and gzip files with line numbers and hashes.
Hostile input: `limits` (the per-document size limit, enforced before memory is allocated),
`xml_safety` (lxml options, entity references refused) and `isolated_read` (native XML parsing in a
child process, so a parser crash fails one file).
"""

from corpora.formats.bioc_json import write_bioc_json
from corpora.formats.bioc_xml import write_bioc_xml
from corpora.formats.conll import write_conll
from corpora.formats.pubtator import write_pubtator
from corpora.formats.registry import FORMATS, detect_format, expand_inputs, read_documents

__all__ = [
    "FORMATS",
    "detect_format",
    "expand_inputs",
    "read_documents",
    "write_bioc_json",
    "write_bioc_xml",
    "write_conll",
    "write_pubtator",
]
