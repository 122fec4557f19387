"""Hostile XML for the three XML readers: attribute and text bombs, oversized records, custom entities.

Each input is built here; the 2 GiB cases are gzip files of ~2 MB (see hostile_inputs), and the
readers must refuse them after reading about one per-document limit of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpora.errors import DocumentTooLargeError, MalformedInputError
from corpora.formats.bioc_xml import read_bioc_xml
from corpora.formats.ddi import read_ddi
from corpora.formats.limits import DOCUMENT_ENV
from corpora.formats.pubmed_xml import read_pubmed_xml
from corpora.schema import Document
from tests.corpora.formats.hostile_inputs import repeated, write_gzip_parts

PUBMED_HEAD = b"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>"
PUBMED_TAIL = b"</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
BIOC_HEAD = b"<collection><source>s</source><date>d</date><key>k</key><document><id>1</id><passage><offset>0</offset>"
BIOC_TAIL = b"</passage></document></collection>"
DDI_HEAD = b'<document id="d1"><sentence id="d1.s0" text="'
DDI_TAIL = b'"></sentence></document>'

BOMBS = {
    "pubmed-xml": (
        read_pubmed_xml,
        [
            PUBMED_HEAD + b'<Abstract><AbstractText Label="',
            repeated(b"A", 2048),
            b'">x</AbstractText></Abstract>' + PUBMED_TAIL,
        ],
    ),
    "bioc-xml": (read_bioc_xml, [BIOC_HEAD + b'<infon key="', repeated(b"A", 2048), b'">v</infon>' + BIOC_TAIL]),
    "ddi-xml": (read_ddi, [DDI_HEAD, repeated(b"A", 2048), DDI_TAIL]),
}


@pytest.mark.parametrize("fmt", sorted(BOMBS))
def test_two_gib_attribute_in_a_2_mb_gzip_is_refused_at_the_limit(fmt: str, tmp_path: Path) -> None:
    """Issue 14.1: `biomed ingest bomb.xml.gz` died with SIGSEGV inside libxml2."""
    reader, parts = BOMBS[fmt]
    bomb = write_gzip_parts(tmp_path / "bomb.xml.gz", parts)
    assert bomb.stat().st_size < 3_000_000
    with pytest.raises(DocumentTooLargeError) as info:
        list(reader(bomb))
    msg = str(info.value)
    assert msg.startswith(str(bomb))
    assert "per-document limit of 20 MB" in msg and DOCUMENT_ENV in msg


def test_text_bomb_is_refused_too(tmp_path: Path) -> None:
    bomb = write_gzip_parts(
        tmp_path / "text.xml.gz",
        [PUBMED_HEAD + b"<Abstract><AbstractText>", repeated(b"B", 2048), b"</AbstractText></Abstract>" + PUBMED_TAIL],
    )
    with pytest.raises(DocumentTooLargeError, match="one citation is larger than the per-document limit"):
        list(read_pubmed_xml(bomb))


def _pubmed(abstract: bytes) -> bytes:
    return (
        PUBMED_HEAD
        + b"<ArticleTitle>T</ArticleTitle><Abstract><AbstractText>"
        + abstract
        + b"</AbstractText></Abstract>"
        + PUBMED_TAIL
    )


def test_abstract_over_the_limit_names_the_limit_not_malformed_xml(tmp_path: Path, monkeypatch) -> None:
    """Issue 14.11: a 50 MB abstract was 'malformed XML'. Here the limit is 1 MB and the abstract 3 MB."""
    monkeypatch.setenv(DOCUMENT_ENV, "1")
    f = tmp_path / "big.xml"
    f.write_bytes(_pubmed(b"word " * 600_000))
    with pytest.raises(DocumentTooLargeError, match=r"per-document limit of 1 MB \(set BIOMED_MAX_DOCUMENT_MB"):
        list(read_pubmed_xml(f))


def test_abstract_past_libxml2s_own_10_mb_limit_is_read_whole(tmp_path: Path) -> None:
    """libxml2 alone refuses a text node over 10,000,000 bytes; ours stays under our 20 MB limit."""
    f = tmp_path / "long.xml"
    f.write_bytes(_pubmed(b"abcdefghi " * 1_100_000))
    (doc,) = list(read_pubmed_xml(f))
    assert len(doc.passages[1].text) == 11_000_000 - 1  # the trailing space is stripped
    assert doc.text == "T " + "abcdefghi " * 1_099_999 + "abcdefghi"


def test_many_small_citations_are_not_one_large_record(tmp_path: Path, monkeypatch) -> None:
    """The limit is per citation: 3,000 citations of ~1 kB pass under a 1 MB limit."""
    monkeypatch.setenv(DOCUMENT_ENV, "1")
    body = b"".join(
        b"<PubmedArticle><MedlineCitation><PMID>%d</PMID><Article><ArticleTitle>%s</ArticleTitle></Article>"
        b"</MedlineCitation></PubmedArticle>" % (i, b"t" * 1000)
        for i in range(1, 3001)
    )
    f = tmp_path / "many.xml"
    f.write_bytes(b"<PubmedArticleSet>" + body + b"</PubmedArticleSet>")
    assert f.stat().st_size > 3_000_000
    docs = list(read_pubmed_xml(f))
    assert [d.id for d in docs[:2]] == ["1", "2"] and len(docs) == 3000


ENTITY_DTD = b'<?xml version="1.0"?><!DOCTYPE %s [<!ENTITY co "X">]>'


def test_bioc_custom_entity_is_refused_not_cut(tmp_path: Path) -> None:
    """Issue 14.3: the passage was stored as "Aspirin " and the rest lost."""
    f = tmp_path / "ent.xml"
    f.write_bytes(ENTITY_DTD % b"collection" + BIOC_HEAD + b"<text>Aspirin &co; helps.</text>" + BIOC_TAIL)
    with pytest.raises(MalformedInputError, match=r"line 1, record document #1: uses the entity &co; declared"):
        list(read_bioc_xml(f))


def test_pubmed_custom_entity_in_a_title_is_refused_not_kept_literally(tmp_path: Path) -> None:
    f = tmp_path / "ent.xml"
    f.write_bytes(
        ENTITY_DTD % b"PubmedArticleSet" + PUBMED_HEAD + b"<ArticleTitle>A &co; B</ArticleTitle>" + PUBMED_TAIL
    )
    with pytest.raises(MalformedInputError, match="uses the entity &co; declared in the file's DTD"):
        list(read_pubmed_xml(f))


def test_ddi_custom_entity_in_sentence_content_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "ent.xml"
    f.write_bytes(
        ENTITY_DTD % b"document" + b'<document id="d1"><sentence id="d1.s0" text="x">&co;</sentence></document>'
    )
    with pytest.raises(MalformedInputError, match="uses the entity &co;"):
        list(read_ddi(f))


def test_xml_entities_and_character_references_are_plain_text(tmp_path: Path) -> None:
    f = tmp_path / "ok.xml"
    f.write_bytes(ENTITY_DTD % b"collection" + BIOC_HEAD + b"<text>a &amp; b &lt;c&gt; &#65;&#x42;</text>" + BIOC_TAIL)
    (doc,) = list(read_bioc_xml(f))
    assert isinstance(doc, Document) and doc.text == "a & b <c> AB"


def test_billion_laughs_is_still_refused(tmp_path: Path) -> None:
    lol = (
        b'<!DOCTYPE collection [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&" + bytes([97 + i]) + b";") * 10) for i in range(9))
        + b"]>"
    )
    f = tmp_path / "lol.xml"
    f.write_bytes(lol + BIOC_HEAD + b"<text>&j;</text>" + BIOC_TAIL)
    with pytest.raises(MalformedInputError, match="entity amplification factor exceeded"):
        list(read_bioc_xml(f))
