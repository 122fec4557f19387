"""MEDLINE/PubMed XML reader: baseline and update files, plain or gzip, streamed.

A baseline file holds ~30k citations (hundreds of MB uncompressed), so the reader never builds the
whole tree: `lxml.etree.iterparse` reports only the citation-level elements, each is turned into a
`Document` by walking its direct children (cheaper than XPath per field), then it and everything
before it is dropped, keeping memory flat whatever the file size.

Document text follows the PubTator convention: the title, then each abstract section, joined by
single spaces. Inline markup (<i>, <sup>, MathML ...) is flattened with its text kept as is; only the
ends of each passage are stripped.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from corpora.errors import EmptyInputError, EncodingError, MalformedInputError
from corpora.formats.textio import head_bytes, open_limited
from corpora.formats.xml_safety import PARSE_OPTIONS, refuse_entity_references
from corpora.schema import Deletion, Document, MeshTerm, Metadata, Source, passages_from_texts

FORMAT = "pubmed-xml"
ROOTS = ("PubmedArticleSet", "MedlineCitationSet")
# A saved single record (efetch output trimmed to one article, an editor's copy) has no set around
# it; format detection already sends such files here, so the reader takes them as one record.
SINGLE_RECORD_ROOTS = ("PubmedArticle", "MedlineCitation", "PubmedBookArticle")
_EVENT_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")
_YEAR = re.compile(r"\d{4}")
_PMC = re.compile(r"PMC\d+")
_ENCODING_ERRORS = {
    etree.ErrorTypes.ERR_INVALID_ENCODING,
    etree.ErrorTypes.ERR_UNKNOWN_ENCODING,
    etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING,
}


def read_pubmed_xml(path: Path) -> Iterator[Document | Deletion]:
    """Stream one Document per citation and one Deletion per `DeleteCitation/PMID` of `path`.

    Raises MalformedInputError (bad XML, truncated gzip, wrong root, citation without PMID),
    EncodingError (bytes invalid for the declared encoding) and EmptyInputError, each naming the
    file and, where lxml knows it, the line.
    """
    path = Path(path)
    source_path = str(path)
    count = 0
    checked_root = False
    stream = open_limited(path, "one citation")
    try:
        context = etree.iterparse(stream, events=("end",), tag=_EVENT_TAGS, collect_ids=False, **PARSE_OPTIONS)
        try:
            for _, elem in context:
                parent = elem.getparent()
                if not checked_root:
                    _check_root(path, elem.getroottree().getroot())
                    checked_root = True
                tag = elem.tag
                if tag == "MedlineCitation" and parent is not None and parent.tag == "PubmedArticle":
                    continue  # handled with its PubmedArticle (which holds the DOI/PMCID)
                if stream.other_entities:
                    refuse_entity_references(path, elem)
                stream.mark()
                if tag == "MedlineCitation":
                    yield _citation(path, source_path, elem, None)
                elif tag == "PubmedArticle":
                    medline = pubmed_data = None
                    for child in elem:
                        ctag = child.tag
                        if ctag == "MedlineCitation":
                            medline = child
                        elif ctag == "PubmedData":
                            pubmed_data = child
                    if medline is None:
                        raise MalformedInputError(
                            path, "<PubmedArticle> has no <MedlineCitation>", line=elem.sourceline
                        )
                    yield _citation(path, source_path, medline, pubmed_data)
                elif tag == "PubmedBookArticle":
                    yield _book(path, source_path, elem)
                else:  # DeleteCitation
                    for pmid_el in elem.iterchildren("PMID"):
                        pmid = (pmid_el.text or "").strip()
                        if not pmid:
                            raise MalformedInputError(path, "DeleteCitation has an empty PMID", line=pmid_el.sourceline)
                        yield Deletion(pmid)
                        count += 1
                    _release(elem, parent)
                    continue
                count += 1
                _release(elem, parent)
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(path, exc) from exc
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise MalformedInputError(
                path, f"gzip stream is truncated or corrupt after {count} records ({exc})"
            ) from exc
        if not checked_root:
            root = context.root
            if root is not None:
                _check_root(path, root)
        if count == 0:
            raise EmptyInputError(path, "no citations and no deletions in the file")
    finally:
        stream.close()


def _release(elem: etree._Element, parent: etree._Element | None) -> None:
    """Drop a processed element and every earlier sibling so the tree never grows."""
    elem.clear(keep_tail=False)
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _check_root(path: Path, root: etree._Element) -> None:
    if root.tag not in ROOTS and root.tag not in SINGLE_RECORD_ROOTS:
        raise MalformedInputError(
            path,
            f"root element is <{root.tag}>, expected <PubmedArticleSet> or <MedlineCitationSet> "
            "(or one <PubmedArticle>, <MedlineCitation> or <PubmedBookArticle> on its own)",
            line=root.sourceline,
        )


def _syntax_error(path: Path, exc: etree.XMLSyntaxError) -> Exception:
    line = exc.lineno or None
    if exc.code == etree.ErrorTypes.ERR_INVALID_ENCODING:
        return EncodingError(
            path, f"bytes not valid in the declared encoding, UTF-8 when none is declared ({exc.msg})", line=line
        )
    if exc.code in _ENCODING_ERRORS:
        return EncodingError(path, f"unsupported encoding declared ({exc.msg})", line=line)
    if not head_bytes(path, 1 << 16).strip(b" \t\r\n\xef\xbb\xbf"):
        return EmptyInputError(path, "file is empty")
    return MalformedInputError(path, f"malformed XML ({exc.msg})", line=line)


def _child(elem: etree._Element, tag: str, path: Path | None = None) -> etree._Element | None:
    """First direct child called `tag` (a plain loop: cheaper in lxml than find/iterchildren(tag))."""
    for child in elem:
        if child.tag == tag:
            return child
    if path is not None:
        raise MalformedInputError(path, f"<{elem.tag}> has no <{tag}>", line=elem.sourceline)
    return None


def _text(elem: etree._Element | None) -> str:
    """All text inside `elem` (inline markup flattened), its own tail excluded."""
    if elem is None:
        return ""
    if len(elem) == 0:
        return elem.text or ""
    return "".join(elem.itertext())


def _abstract_items(abstract: etree._Element | None) -> list[tuple[str, str]]:
    """(type, text) per AbstractText: its Label, else NlmCategory, else "abstract"; empty ones skipped."""
    if abstract is None:
        return []
    items = []
    for section in abstract:
        if section.tag != "AbstractText":
            continue  # CopyrightInformation
        text = _text(section).strip()
        if text:
            items.append((section.get("Label") or section.get("NlmCategory") or "abstract", text))
    return items


def _citation(path: Path, source_path: str, medline: etree._Element, pubmed_data: etree._Element | None) -> Document:
    """One MedlineCitation (with the PubmedData of its PubmedArticle, if any) as a Document."""
    pmid = ""
    article = None
    journal_ta = None
    mesh: list[MeshTerm] = []
    keywords: list[str] = []
    pmcid = None
    for child in medline:
        tag = child.tag
        if tag == "PMID":
            pmid = (child.text or "").strip()
        elif tag == "Article":
            article = child
        elif tag == "MedlineJournalInfo":
            journal_ta = child
        elif tag == "MeshHeadingList":
            mesh = _mesh_terms(child)
        elif tag == "KeywordList":
            keywords.extend(t for t in (_text(k).strip() for k in child) if t)
        elif tag == "OtherID" and pmcid is None and child.get("Source") == "NLM":
            m = _PMC.match(child.text or "")
            pmcid = m.group(0) if m else None
    if not pmid:
        raise MalformedInputError(path, "citation without a PMID", line=medline.sourceline)
    if article is None:
        raise MalformedInputError(path, "citation has no <Article>", line=medline.sourceline, record=pmid)

    title = vernacular = ""
    abstract = None
    journal_el = None
    doi = language = None
    pub_types: list[str] = []
    article_date = None
    for child in article:
        tag = child.tag
        if tag == "ArticleTitle":
            title = _text(child).strip()
        elif tag == "Abstract":
            abstract = child
        elif tag == "Journal":
            journal_el = child
        elif tag == "ELocationID":
            if doi is None and child.get("EIdType") == "doi":
                doi = (child.text or "").strip() or None
        elif tag == "Language":
            if language is None:
                language = (child.text or "").strip() or None
        elif tag == "PublicationTypeList":
            pub_types = [(p.text or "").strip() for p in child]
        elif tag == "VernacularTitle":
            vernacular = _text(child).strip()
        elif tag == "ArticleDate":
            if article_date is None:
                article_date = _year_of(child)

    journal, year = _journal(journal_el)
    if not journal and journal_ta is not None:
        journal = (_text(_child(journal_ta, "MedlineTA")).strip()) or None
    if year is None:
        year = article_date

    if pubmed_data is not None:
        doi, pmcid = _article_ids(_child(pubmed_data, "ArticleIdList"), doi, pmcid)
    metadata = Metadata(
        journal=journal,
        year=year,
        doi=doi,
        pmcid=pmcid,
        language=language,
        publication_types=pub_types,
        mesh_terms=mesh,
        keywords=keywords,
    )
    return _document(pmid, source_path, title or vernacular, abstract, metadata)


def _article_ids(ids: etree._Element | None, doi: str | None, pmcid: str | None) -> tuple[str | None, str | None]:
    """DOI and PMCID from an ArticleIdList (the record's own ids, not its references'), else the given ones."""
    if ids is not None:
        for aid in ids:
            kind = aid.get("IdType")
            if kind == "doi":
                doi = (aid.text or "").strip() or doi
            elif kind == "pmc":
                pmcid = (aid.text or "").strip() or pmcid
    return doi, pmcid


def _document(pmid: str, source_path: str, title: str, abstract: etree._Element | None, metadata: Metadata) -> Document:
    """Title, then the abstract's sections, laid out PubTator-style (single spaces between)."""
    items = [("title", title)]
    items.extend(_abstract_items(abstract))
    return Document(
        id=pmid,
        document_id=pmid,
        source=Source(path=source_path, format=FORMAT),
        passages=passages_from_texts(items, separator=" "),
        metadata=metadata,
    )


def _journal(journal: etree._Element | None) -> tuple[str | None, int | None]:
    """Journal title and publication year (PubDate/Year, else the first year in MedlineDate)."""
    if journal is None:
        return None, None
    name = None
    year = None
    for child in journal:
        tag = child.tag
        if tag == "Title":
            name = (child.text or "").strip() or None
        elif tag == "JournalIssue":
            pubdate = _child(child, "PubDate")
            if pubdate is not None:
                year = _year_of(pubdate)
    return name, year


def _year_of(date: etree._Element) -> int | None:
    """Year of a PubDate/ArticleDate/Book PubDate: <Year>, else the first 4-digit run of <MedlineDate>."""
    for child in date:
        tag = child.tag
        if tag == "Year":
            text = (child.text or "").strip()
            if text.isdigit():
                return int(text)
        elif tag == "MedlineDate":
            m = _YEAR.search(child.text or "")
            if m:
                return int(m.group(0))
    return None


def _mesh_terms(heading_list: etree._Element) -> list[MeshTerm]:
    """MeshHeading -> MeshTerm(descriptor UI, name, descriptor MajorTopicYN, qualifier names)."""
    terms = []
    for heading in heading_list:
        descriptor = None
        qualifiers = []
        for part in heading:
            if part.tag == "DescriptorName":
                descriptor = part
            elif part.tag == "QualifierName":
                qualifiers.append((part.text or "").strip())
        if descriptor is not None:
            terms.append(
                MeshTerm(
                    ui=descriptor.get("UI", ""),
                    name=(descriptor.text or "").strip(),
                    major_topic=descriptor.get("MajorTopicYN") == "Y",
                    qualifiers=qualifiers,
                )
            )
    return terms


def _book(path: Path, source_path: str, elem: etree._Element) -> Document:
    """A PubmedBookArticle (NCBI Bookshelf chapter or book): BookDocument plus PubmedBookData ids."""
    doc = _child(elem, "BookDocument", path)
    pmid = ""
    title = vernacular = ""
    abstract = None
    journal = None
    year = None
    language = None
    pub_types: list[str] = []
    keywords: list[str] = []
    doi = pmcid = None
    for child in doc:
        tag = child.tag
        if tag == "PMID":
            pmid = (child.text or "").strip()
        elif tag == "ArticleTitle":
            title = _text(child).strip()
        elif tag == "VernacularTitle":
            vernacular = _text(child).strip()
        elif tag == "Book":
            for part in child:
                if part.tag == "BookTitle":
                    journal = _text(part).strip() or None
                    if not title and not vernacular:
                        vernacular = journal or ""
                elif part.tag == "PubDate":
                    year = _year_of(part)
        elif tag == "Abstract":
            abstract = child
        elif tag == "Language":
            if language is None:
                language = (child.text or "").strip() or None
        elif tag == "PublicationType":
            pub_types.append((child.text or "").strip())
        elif tag == "KeywordList":
            keywords.extend(t for t in (_text(k).strip() for k in child) if t)
        elif tag == "ArticleIdList":
            for aid in child:
                if aid.get("IdType") == "doi":
                    doi = (aid.text or "").strip() or None
    if not pmid:
        raise MalformedInputError(path, "book citation without a PMID", line=doc.sourceline)
    data = _child(elem, "PubmedBookData")
    doi, pmcid = _article_ids(_child(data, "ArticleIdList") if data is not None else None, doi, pmcid)
    metadata = Metadata(
        journal=journal,
        year=year,
        doi=doi,
        pmcid=pmcid,
        language=language,
        publication_types=pub_types,
        keywords=keywords,
    )
    return _document(pmid, source_path, title or vernacular, abstract, metadata)


__all__ = ["read_pubmed_xml"]
