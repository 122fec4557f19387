"""MEDLINE/PubMed XML reader, checked against an independent regex reading of the raw sample bytes.

The oracle below never uses lxml: it cuts each citation out of the decompressed bytes with regular
expressions, removes inline tags and unescapes entities, so a wrong child walk, a lost <sup> text or
a DOI taken from a reference would show up as a difference.
"""

from __future__ import annotations

import functools
import gzip
import html
import re
from pathlib import Path

import pytest

from corpora.errors import EmptyInputError, EncodingError, InputError, MalformedInputError
from corpora.formats.pubmed_xml import read_pubmed_xml
from corpora.formats.registry import detect_format, get_reader
from corpora.schema import Deletion, Document
from tests.helpers.paths import ROOT

PUBMED = ROOT / "corpora" / "samples" / "pubmed"
SAMPLE_FILES = sorted(p for p in PUBMED.iterdir() if p.name.endswith((".xml", ".xml.gz")))
MEDLINE16 = PUBMED / "medline16n0902.xml.gz"
CURRENT = PUBMED / "test_current_medline.xml.gz"


@functools.cache
def raw_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def flatten(fragment: str) -> str:
    """Inner XML -> text: drop tags, unescape entities, strip the ends (what the reader promises)."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


_CITATION = re.compile(r"<(PubmedArticle|MedlineCitation)[\s>].*?</\1>", re.S)


@functools.cache
def oracle(path: Path) -> list[dict]:
    """Per citation, the fields the reader must produce, read with regexes from the raw text."""
    out = []
    for m in _CITATION.finditer(raw_text(path)):
        seg = m.group(0)
        medline = re.search(r"<MedlineCitation[\s>].*?</MedlineCitation>", seg, re.S).group(0)
        pmid = re.search(r"<MedlineCitation[^>]*>\s*<PMID[^>]*>(\d+)</PMID>", medline).group(1)
        title_m = re.search(r"<ArticleTitle>(.*?)</ArticleTitle>", medline, re.S)
        title = flatten(title_m.group(1)) if title_m else ""
        sections = []
        abstract = re.search(r"<Abstract>(.*?)</Abstract>", medline, re.S)
        if abstract:
            for attrs, inner in re.findall(r"<AbstractText(\s[^>]*)?>(.*?)</AbstractText>", abstract.group(1), re.S):
                label = re.search(r'\bLabel="([^"]*)"', attrs or "")
                category = re.search(r'\bNlmCategory="([^"]*)"', attrs or "")
                kind = (label and label.group(1)) or (category and category.group(1)) or "abstract"
                if flatten(inner):
                    sections.append((html.unescape(kind), flatten(inner)))
        own_data = seg.split("<ReferenceList", 1)[0]
        data_part = own_data.split("</MedlineCitation>", 1)[1] if "</MedlineCitation>" in own_data else ""
        doi_m = re.search(r'<ArticleId IdType="doi">([^<]*)</ArticleId>', data_part) or re.search(
            r'<ELocationID EIdType="doi"[^>]*>([^<]*)</ELocationID>', medline
        )
        year_m = re.search(r"<PubDate>\s*<Year>(\d{4})</Year>", medline) or re.search(
            r"<PubDate>\s*<MedlineDate>\D*(\d{4})", medline
        )
        journal_m = re.search(r"<Journal>.*?<Title>([^<]*)</Title>", medline, re.S)
        out.append(
            {
                "pmid": pmid,
                "title": title,
                "sections": sections,
                "doi": doi_m.group(1).strip() if doi_m else None,
                "year": int(year_m.group(1)) if year_m else None,
                "journal": html.unescape(journal_m.group(1)) if journal_m else None,
                "mesh": medline.count("<MeshHeading>"),
            }
        )
    return out


def deleted_pmids(path: Path) -> list[str]:
    blocks = re.findall(r"<DeleteCitation>(.*?)</DeleteCitation>", raw_text(path), re.S)
    return [pmid for block in blocks for pmid in re.findall(r"<PMID[^>]*>(\d+)</PMID>", block)]


def read(path: Path) -> tuple[list[Document], list[Deletion]]:
    """Read a file, splitting Documents from Deletions."""
    docs, deletions = [], []
    for rec in read_pubmed_xml(path):
        (deletions if isinstance(rec, Deletion) else docs).append(rec)
    return docs, deletions


@functools.cache
def sample(path: Path) -> tuple[list[Document], list[Deletion]]:
    """A bundled file read once per test run (tests only read the Documents)."""
    return read(path)


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[list[Document], list[Deletion]]]:
    return {p.name: sample(p) for p in SAMPLE_FILES}


def by_pmid(docs: list[Document], pmid: str) -> Document:
    (doc,) = [d for d in docs if d.document_id == pmid]
    return doc


# --- counts and ids -----------------------------------------------------------------------------


def test_known_counts_of_the_bundled_files(parsed):
    raw = raw_text(MEDLINE16)
    assert len(re.findall(r"<MedlineCitation ", raw)) == 604
    docs, deletions = parsed[MEDLINE16.name]
    assert len(docs) == 604
    assert deletions == [Deletion("26432306")]
    docs, deletions = parsed[CURRENT.name]
    assert [d.id for d in docs] == ["36400559", "2930949", "11446611", "28786991"]
    assert deletions == []


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_citation_and_deletion_in_file_order(parsed, path):
    docs, deletions = parsed[path.name]
    expected = oracle(path)
    assert len(expected) == len(re.findall(r"<MedlineCitation[\s>]", raw_text(path)))
    assert [d.id for d in docs] == [e["pmid"] for e in expected]
    assert all(d.id == d.document_id for d in docs)
    assert [x.document_id for x in deletions] == deleted_pmids(path)


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_title_and_abstract_sections_match_the_raw_xml(parsed, path):
    docs, _ = parsed[path.name]
    for doc, exp in zip(docs, oracle(path), strict=True):
        assert doc.passages[0].type == "title"
        if exp["title"]:
            assert doc.passages[0].text == exp["title"], doc.id
        assert [(p.type, p.text) for p in doc.passages[1:]] == exp["sections"], doc.id


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_passage_offsets_select_their_text(parsed, path):
    docs, _ = parsed[path.name]
    for doc in docs:
        text = doc.text
        assert text == " ".join(p.text for p in doc.passages)
        for p in doc.passages:
            ((start, end),) = p.offsets
            assert text[start:end] == p.text
            assert p.text == p.text.strip()
        assert doc.source.path == str(path)
        assert doc.source.format == "pubmed-xml"


def test_structured_abstract_labels():
    doc = by_pmid(sample(MEDLINE16)[0], "17942999")
    assert doc.passages[0].text == (
        "Neuroplasticity in the processing of pitch dimensions: a multidimensional scaling analysis "
        "of the mismatch negativity."
    )
    assert [p.type for p in doc.passages] == ["title", "PURPOSE", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert doc.passages[1].text == (
        "An auditory electrophysiological study was conducted to explore the influence of language "
        "experience on the saliency of dimensions underlying cortical pitch processing."
    )
    assert doc.passages[1].offsets == [
        [len(doc.passages[0].text) + 1, len(doc.passages[0].text) + 1 + len(doc.passages[1].text)]
    ]


def test_unstructured_abstract_is_one_passage_without_copyright():
    doc = by_pmid(sample(CURRENT)[0], "36400559")
    assert [p.type for p in doc.passages] == ["title", "abstract"]
    assert doc.passages[0].text == "Back Pain: Differential Diagnosis and Management."
    abstract = doc.passages[1].text
    assert abstract.startswith("Back pain is a common condition affecting millions of individuals each year.")
    assert "greater than 6\u00a0weeks, imaging" in abstract  # &#xa0; kept as the character it names
    assert abstract.endswith("a specialist referral may be indicated.")
    assert "Copyright" not in doc.text


def test_inline_markup_is_flattened_without_losing_characters():
    doc = sample(PUBMED / "pubmed4.xml")[0][0]
    assert doc.passages[0].text == (
        "Leucocyte telomere length, genetic variants at the TERT gene region and risk of pancreatic cancer."
    )
    results = next(p for p in doc.passages if p.type == "RESULTS")
    assert (
        "(comparing extreme quintiles of telomere length, OR 1.72; 95% CI 1.07 to 2.78; ptrend=0.048)" in results.text
    )
    quote = sample(PUBMED / "pubmed6.xml")[0][0]
    assert quote.passages[0].text.startswith('A "Blood Relationship" Between the Overlooked Minimum Lactate')


def test_inner_whitespace_is_kept_as_in_the_xml():
    doc = sample(PUBMED / "pubmed-29768149.xml")[0][0]
    background = doc.passages[1]
    assert background.type == "BACKGROUND"
    assert background.text == (
        "In patients with mild asthma, as-needed use of an inhaled glucocorticoid plus a fast-acting \u03b2\n"
        "\t\t\t\t\t\t2-agonist may be an alternative to conventional treatment strategies."
    )


@pytest.mark.parametrize("name", ["pubmed6.xml", "pubmed7.xml"])
def test_mathml_leaf_text_is_kept_in_order(name):
    raw = raw_text(PUBMED / name)
    leaves = [html.unescape(t) for t in re.findall(r"<mml:m[ionst]+>([^<]*)</mml:m[ionst]+>", raw)]
    assert len(leaves) > 10
    text = sample(PUBMED / name)[0][0].text
    at = 0
    for leaf in leaves:
        at = text.index(leaf, at) + len(leaf)  # raises ValueError if a leaf is lost or out of order
    assert "<mml" not in text and "MathML" not in text


def test_title_only_citation_and_vernacular_fallback(tmp_path):
    raw = raw_text(MEDLINE16)
    before = raw[: raw.index("<ArticleTitle>[Vaccines are drugs].</ArticleTitle>")]
    pmid = re.match(r'<PMID Version="1">(\d+)</PMID>', before[before.rindex("<PMID ") :]).group(1)
    vaccine = by_pmid(sample(MEDLINE16)[0], pmid)
    assert [(p.type, p.text) for p in vaccine.passages] == [("title", "[Vaccines are drugs].")]
    broken = raw.replace("<ArticleTitle>[Vaccines are drugs].</ArticleTitle>", "<ArticleTitle></ArticleTitle>")
    path = tmp_path / "vernacular.xml"
    path.write_text(broken, encoding="utf-8")
    doc = by_pmid(read(path)[0], vaccine.id)
    assert doc.passages[0].text == "I vaccini sono farmaci."


# --- metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_metadata_matches_the_raw_xml(parsed, path):
    docs, _ = parsed[path.name]
    for doc, exp in zip(docs, oracle(path), strict=True):
        md = doc.metadata
        assert md.doi == exp["doi"], doc.id
        assert md.year == exp["year"], doc.id
        assert md.journal == exp["journal"], doc.id
        assert len(md.mesh_terms) == exp["mesh"], doc.id


def test_metadata_of_one_known_citation():
    md = by_pmid(sample(CURRENT)[0], "36400559").metadata
    assert md.journal == "Neurologic clinics"
    assert md.year == 2023
    assert md.doi == "10.1016/j.ncl.2022.07.002"
    assert md.language == "eng"
    assert md.publication_types == ["Journal Article", "Review"]
    assert md.keywords == ["Back pain", "Diagnosis", "Management", "Outpatient"]
    assert [m.ui for m in md.mesh_terms] == ["D006801", "D017116", "D003937", "D001416", "D000894", "D015928"]
    low_back = md.mesh_terms[1]
    assert (low_back.name, low_back.major_topic, low_back.qualifiers) == (
        "Low Back Pain",
        True,
        ["diagnosis", "etiology", "therapy"],
    )
    assert md.mesh_terms[0].major_topic is False and md.mesh_terms[0].qualifiers == []


def test_doi_is_the_articles_own_not_a_references():
    doc = by_pmid(sample(CURRENT)[0], "28786991")
    raw = raw_text(CURRENT)
    seg = raw[raw.index('<PMID Version="1">28786991</PMID>') :]
    own = re.search(
        r'<ArticleId IdType="doi">([^<]*)</ArticleId>',
        seg.split("<ReferenceList", 1)[0].split("</MedlineCitation>", 1)[1],
    )
    assert doc.metadata.doi == own.group(1)
    assert seg.count('IdType="doi"') > 2  # the references carry DOIs of their own


def test_pmcid_from_pubmed_data_and_from_legacy_other_id():
    assert sample(PUBMED / "pubmed4.xml")[0][0].metadata.pmcid == "PMC5442267"
    legacy = by_pmid(sample(MEDLINE16)[0], "17942999")
    raw = raw_text(MEDLINE16)
    seg = raw[raw.index('<PMID Version="1">17942999</PMID>') :]
    seg = seg[: seg.index("</MedlineCitation>")]
    other = re.search(r'<OtherID Source="NLM">(PMC\d+)', seg)
    assert legacy.metadata.pmcid == (other.group(1) if other else None)


def test_year_from_medline_date():
    doc = by_pmid(sample(MEDLINE16)[0], "18621939")  # <MedlineDate>2008 Jul-Aug</MedlineDate>
    assert doc.metadata.year == 2008
    assert doc.metadata.journal == "Psychosomatics"


def test_registry_and_detection_lead_here():
    assert get_reader("pubmed-xml") is read_pubmed_xml
    for path in SAMPLE_FILES:
        assert detect_format(path) == "pubmed-xml"


BOOK = """<?xml version="1.0" encoding="UTF-8"?>
<PubmedArticleSet>
<PubmedBookArticle>
  <BookDocument>
    <PMID Version="1">20301295</PMID>
    <ArticleIdList><ArticleId IdType="bookaccession">NBK1116</ArticleId></ArticleIdList>
    <Book>
      <Publisher><PublisherName>University of Washington, Seattle</PublisherName></Publisher>
      <BookTitle book="gene">GeneReviews<sup>®</sup></BookTitle>
      <PubDate><Year>1993</Year></PubDate>
    </Book>
    <ArticleTitle book="gene" part="alzheimer">Alzheimer Disease Overview</ArticleTitle>
    <Language>eng</Language>
    <Abstract>
      <AbstractText Label="CLINICAL CHARACTERISTICS" NlmCategory="BACKGROUND">\
Alzheimer disease (AD) is characterized by dementia.</AbstractText>
      <AbstractText Label="DIAGNOSIS/TESTING" NlmCategory="METHODS">\
The diagnosis of AD is made clinically.</AbstractText>
      <CopyrightInformation>Copyright 1993-2024, University of Washington.</CopyrightInformation>
    </Abstract>
    <PublicationType UI="D016454">Review</PublicationType>
  </BookDocument>
  <PubmedBookData>
    <ArticleIdList>
      <ArticleId IdType="pubmed">20301295</ArticleId>
      <ArticleId IdType="doi">10.1000/example.book</ArticleId>
    </ArticleIdList>
  </PubmedBookData>
</PubmedBookArticle>
<DeleteCitation><PMID Version="1">111</PMID><PMID Version="1">222</PMID></DeleteCitation>
</PubmedArticleSet>
"""


def test_book_article_and_deletions_in_a_current_file(tmp_path):
    path = tmp_path / "book.xml"
    path.write_text(BOOK, encoding="utf-8")
    docs, deletions = read(path)
    (doc,) = docs
    assert doc.id == "20301295"
    assert [(p.type, p.text) for p in doc.passages] == [
        ("title", "Alzheimer Disease Overview"),
        ("CLINICAL CHARACTERISTICS", "Alzheimer disease (AD) is characterized by dementia."),
        ("DIAGNOSIS/TESTING", "The diagnosis of AD is made clinically."),
    ]
    assert doc.text == (
        "Alzheimer Disease Overview Alzheimer disease (AD) is characterized by dementia. "
        "The diagnosis of AD is made clinically."
    )
    assert (doc.metadata.journal, doc.metadata.year, doc.metadata.doi) == ("GeneReviews®", 1993, "10.1000/example.book")
    assert doc.metadata.publication_types == ["Review"]
    assert deletions == [Deletion("111"), Deletion("222")]


# --- bad input ----------------------------------------------------------------------------------


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_malformed_xml_names_file_and_line(tmp_path):
    raw = raw_text(PUBMED / "pubmed4.xml")
    bad = raw.replace("</ArticleTitle>", "</ArticleTitl>", 1)
    path = tmp_path / "broken.xml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(MalformedInputError) as err:
        read(path)
    assert err.value.path == str(path)
    assert err.value.line == line_of(bad, "</ArticleTitl>")
    assert str(path) in str(err.value) and f"line {err.value.line}" in str(err.value)


def test_xml_cut_in_the_middle_streams_what_came_before_then_fails(tmp_path):
    raw = raw_text(MEDLINE16)
    cut = raw[: len(raw) // 2]
    path = tmp_path / "cut.xml"
    path.write_text(cut, encoding="utf-8")
    got = []
    with pytest.raises(MalformedInputError) as err:
        for rec in read_pubmed_xml(path):
            got.append(rec.document_id)
    complete = len(re.findall(r"</MedlineCitation>", cut))
    assert 0 < len(got) <= complete
    assert got == [e["pmid"] for e in oracle(MEDLINE16)][: len(got)]
    assert err.value.line is not None and err.value.line >= cut.count("\n") - 1


def test_truncated_gzip(tmp_path):
    data = MEDLINE16.read_bytes()
    path = tmp_path / "truncated.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MalformedInputError, match="gzip") as err:
        read(path)
    assert err.value.path == str(path)


@pytest.mark.parametrize("content", [b"", b" \n\n", gzip.compress(b"")], ids=["empty", "blank", "empty-gzip"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.xml"
    path.write_bytes(content)
    with pytest.raises(EmptyInputError) as err:
        read(path)
    assert err.value.path == str(path)


def test_root_without_citations_is_empty(tmp_path):
    path = tmp_path / "none.xml"
    path.write_text('<?xml version="1.0"?>\n<PubmedArticleSet>\n</PubmedArticleSet>\n', encoding="utf-8")
    with pytest.raises(EmptyInputError):
        read(path)


def test_latin1_bytes_in_a_utf8_file(tmp_path):
    raw = raw_text(MEDLINE16).encode("utf-8")
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    needle = b"Neuroplasticity in the processing"
    bad = raw.replace(needle, b"Neuroplasticit\xe9 in the processing", 1)
    path = tmp_path / "latin1.xml"
    path.write_bytes(bad)
    with pytest.raises(EncodingError) as err:
        read(path)
    assert err.value.path == str(path)
    assert err.value.line == bad[: bad.index(b"\xe9")].count(b"\n") + 1


def test_control_character_is_malformed_not_an_encoding_error(tmp_path):
    path = tmp_path / "control.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n<x>a\x01b</x></PubmedArticleSet>\n')
    with pytest.raises(MalformedInputError) as err:
        read(path)
    assert not isinstance(err.value, EncodingError)
    assert err.value.line == 3


def test_unsupported_declared_encoding(tmp_path):
    path = tmp_path / "enc.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="no-such-encoding"?>\n<PubmedArticleSet/>\n')
    with pytest.raises(EncodingError, match="unsupported encoding"):
        read(path)


def test_latin1_file_that_declares_latin1_is_read(tmp_path):
    raw = raw_text(PUBMED / "pubmed1.xml")
    path = tmp_path / "declared.xml"
    text = raw.replace('<?xml version="1.0" ?>', '<?xml version="1.0" encoding="ISO-8859-1"?>', 1)
    text = text.replace("The treatment of AIDS", "The tr\u00e9atment of AIDS", 1)
    path.write_bytes(text.encode("latin-1", errors="xmlcharrefreplace"))
    doc = read(path)[0][0]
    assert doc.passages[0].text.startswith("The tr\u00e9atment of AIDS")


@pytest.mark.parametrize(
    "root",
    [
        "<collection><document><id>1</id></document></collection>",
        "<Foo><MedlineCitation><PMID>1</PMID></MedlineCitation></Foo>",
    ],
)
def test_wrong_root_element(tmp_path, root):
    path = tmp_path / "other.xml"
    path.write_text('<?xml version="1.0"?>\n' + root + "\n", encoding="utf-8")
    with pytest.raises(MalformedInputError, match="root element") as err:
        read(path)
    assert err.value.path == str(path)
    assert err.value.line == 2


@pytest.mark.parametrize("element", ["PubmedArticle", "MedlineCitation"])
def test_a_single_record_without_a_set_is_one_document(tmp_path, element):
    raw = raw_text(PUBMED / "pubmed4.xml")
    start = re.search(rf"<{element}[\s>]", raw).start()
    end = raw.index(f"</{element}>") + len(f"</{element}>")
    path = tmp_path / "one.xml"
    path.write_text('<?xml version="1.0" ?>\n' + raw[start:end] + "\n", encoding="utf-8")
    assert detect_format(path) == "pubmed-xml"
    (doc,), deletions = read(path)
    (from_set,) = [d for d in read(PUBMED / "pubmed4.xml")[0] if d.document_id == "27797938"]
    assert deletions == [] and doc.document_id == "27797938"
    assert doc.passages == from_set.passages
    if element == "PubmedArticle":  # the DOI and PMCID live in <PubmedData>, outside MedlineCitation
        assert doc.metadata == from_set.metadata


def test_citation_without_pmid(tmp_path):
    raw = raw_text(CURRENT)
    bad = raw.replace('<PMID Version="1">2930949</PMID>', "", 1)
    path = tmp_path / "nopmid.xml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(MalformedInputError, match="PMID") as err:
        read(path)
    assert err.value.line == line_of(bad, '<MedlineCitation Status="MEDLINE" Owner="NLM"><DateCompleted>')


def test_errors_are_input_errors_naming_the_file(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text("<PubmedArticleSet><PubmedArticle>", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read(path)
    assert str(err.value).startswith(str(path))
