"""The format registry: detection from content (not names), and the expansion of inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corpora.formats.registry import detect_format, expand_inputs


def test_detect_format_from_content(samples: Path, tmp_path: Path) -> None:
    expected = {
        "pubmed/medline16n0902.xml.gz": "pubmed-xml",
        "pubmed/pubmed4.xml": "pubmed-xml",
        "ncbi-disease/NCBI_train_sample.PubTator.txt": "pubtator",
        "ncbi-disease/train_sample.tsv": "conll",
        "jnlpba-conll/devel_sample.tsv": "conll",
        "bc5cdr/CDR_train_sample.BioC.xml": "bioc-xml",
        "bioc/everything.json": "bioc-json",
        "chemprot/chemprot_sample_abstracts.tsv": "chemprot",
        "brat/example1.ann": "brat",
    }
    for rel, fmt in expected.items():
        assert detect_format(samples / rel) == fmt, rel
    # names do not decide: a PubTator file called .xml and a gzip without .gz are still recognised
    disguised = tmp_path / "pubtator.xml"
    shutil.copy(samples / "ncbi-disease/NCBI_devel_sample.PubTator.txt", disguised)
    assert detect_format(disguised) == "pubtator"
    plain = tmp_path / "medline"
    shutil.copy(samples / "pubmed/test_current_medline.xml.gz", plain)
    assert detect_format(plain) == "pubmed-xml"


def test_expand_inputs_skips_companions_and_docs(samples: Path) -> None:
    files = {p.relative_to(samples).as_posix() for p in expand_inputs([samples])}
    assert "chemprot/chemprot_sample_abstracts.tsv" in files
    assert not any(f.endswith(("_entities.tsv", "_relations.tsv", "_gold_standard.tsv")) for f in files)
    assert "brat/example1.ann" in files and "brat/example1.txt" not in files
    assert not any(Path(f).name.upper().startswith(("LICENSE", "README", "SOURCE")) for f in files)
    with pytest.raises(Exception, match="no such file"):
        expand_inputs([samples / "nothing-*.xml"])
