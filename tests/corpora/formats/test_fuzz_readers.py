"""Fuzzing every reader with hypothesis: random bytes, truncations and mutations of the bundled samples.

Whatever the bytes, a reader either yields Documents whose every entity span selects exactly the
entity's text, or raises one of the project's own errors (`BiomedError`); anything else (TypeError,
IndexError, RecursionError, UnicodeEncodeError, a crash) is a bug. The per-document limit is set to
1 MB here, which bounds memory per case, and hypothesis' deadline bounds its time. Examples are
derandomized and their number fixed, so CI sees the same cases every run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpora.errors import BiomedError
from corpora.formats.limits import DOCUMENT_ENV
from corpora.formats.registry import get_reader
from corpora.schema import Document
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
DDI_SAMPLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<document id="DDI-DrugBank.d1">\n'
    b'<sentence id="DDI-DrugBank.d1.s0" text="Aspirin may increase the effect of warfarin.">\n'
    b'<entity id="DDI-DrugBank.d1.s0.e0" charOffset="0-6" type="drug" text="Aspirin"/>\n'
    b'<entity id="DDI-DrugBank.d1.s0.e1" charOffset="35-42" type="drug" text="warfarin"/>\n'
    b'<pair id="DDI-DrugBank.d1.s0.p0" e1="DDI-DrugBank.d1.s0.e0" e2="DDI-DrugBank.d1.s0.e1" ddi="true" '
    b'type="effect"/>\n</sentence>\n</document>\n'
)


def _head_lines(path: Path, n: int) -> bytes:
    return b"".join(path.read_bytes().splitlines(keepends=True)[:n])


CHEMPROT_ABSTRACTS = _head_lines(SAMPLES / "chemprot" / "chemprot_sample_abstracts.tsv", 3)
_CHEMPROT_PMIDS = {line.split(b"\t", 1)[0] for line in CHEMPROT_ABSTRACTS.splitlines()}
CHEMPROT_ENTITIES = b"".join(
    line
    for line in (SAMPLES / "chemprot" / "chemprot_sample_entities.tsv").read_bytes().splitlines(keepends=True)
    if line.split(b"\t", 1)[0] in _CHEMPROT_PMIDS
)


# format -> (file name, sample bytes, companion files written beside it)
CASES: dict[str, tuple[str, bytes, dict[str, bytes]]] = {
    "pubmed-xml": ("in.xml", (SAMPLES / "pubmed" / "pubmed1.xml").read_bytes(), {}),
    "bioc-xml": ("in.xml", (SAMPLES / "bioc" / "everything.xml").read_bytes(), {}),
    "bioc-json": ("in.json", (SAMPLES / "bioc" / "everything.json").read_bytes(), {}),
    "pubtator": ("in.txt", _head_lines(SAMPLES / "ncbi-disease" / "NCBI_devel_sample.PubTator.txt", 12), {}),
    "conll": ("in.tsv", _head_lines(SAMPLES / "bc5cdr" / "BC5CDR-IOB_train_sample.tsv", 60), {}),
    "ddi-xml": ("in.xml", DDI_SAMPLE, {}),
    "brat": (
        "example1.ann",
        (SAMPLES / "brat" / "example1.ann").read_bytes() + b"\n",
        {"example1.txt": (SAMPLES / "brat" / "example1.txt").read_bytes()},
    ),
    "chemprot": ("set_abstracts.tsv", CHEMPROT_ABSTRACTS, {"set_entities.tsv": CHEMPROT_ENTITIES}),
}
FORMATS = sorted(CASES)

FUZZ = settings(
    max_examples=25,
    deadline=3000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def _input(fmt: str, data: bytes) -> Iterator[Path]:
    """A temporary folder holding `data` under the format's file name, with its companions."""
    name, _, companions = CASES[fmt]
    old = os.environ.get(DOCUMENT_ENV)
    os.environ[DOCUMENT_ENV] = "1"
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        folder = Path(tmp)
        for comp_name, comp_data in companions.items():
            (folder / comp_name).write_bytes(comp_data)
        path = folder / name
        path.write_bytes(data)
        try:
            yield path
        finally:
            if old is None:
                os.environ.pop(DOCUMENT_ENV, None)
            else:
                os.environ[DOCUMENT_ENV] = old


def _check(fmt: str, data: bytes) -> None:
    """Read `data` as `fmt`: our own error, or documents whose entities match their offsets."""
    with _input(fmt, data) as path:
        try:
            records = list(get_reader(fmt)(path))
        except BiomedError:
            return
    for doc in records:
        if not isinstance(doc, Document):
            continue
        text = doc.text
        for ent in doc.entities:
            assert len(ent.offsets) == len(ent.text), (doc.id, ent.id)
            for (start, end), frag in zip(ent.offsets, ent.text):
                assert 0 <= start <= end <= len(text), (doc.id, ent.id, start, end)
                assert text[start:end] == frag, (doc.id, ent.id, text[start:end], frag)


def _mutate(sample: bytes, edits: list[tuple[float, int, bytes]]) -> bytes:
    """Apply (where, what, bytes) edits: 0 replaces a byte, 1 inserts, 2 deletes a run, 3 doubles a run."""
    data = bytearray(sample)
    for where, what, chunk in edits:
        at = int(where * len(data)) if data else 0
        if what == 0 and data:
            data[min(at, len(data) - 1)] = chunk[0] if chunk else 0
        elif what == 1:
            data[at:at] = chunk
        elif what == 2:
            del data[at : at + 1 + len(chunk)]
        else:
            data[at:at] = data[at : at + 1 + 8 * len(chunk)]
    return bytes(data)


EDITS = st.lists(
    st.tuples(st.floats(0, 1, allow_nan=False), st.integers(0, 3), st.binary(min_size=1, max_size=8)),
    min_size=1,
    max_size=6,
)
# bytes that matter to the formats: markup, separators, digits, quotes, escapes, surrogates
TOKENS = st.sampled_from(
    [b"<", b">", b"&", b";", b'"', b"\t", b"\n", b"|", b"-", b"9999999999", b"\\ud800", b"\xff", b"{", b"]", b"0"]
)


def _fuzz(test: Callable[..., None]) -> Callable[..., None]:
    return FUZZ(test)


@_fuzz
@given(fmt=st.sampled_from(FORMATS), data=st.binary(max_size=600))
def test_random_bytes(fmt: str, data: bytes) -> None:
    _check(fmt, data)


@_fuzz
@given(fmt=st.sampled_from(FORMATS), cut=st.floats(0, 1, allow_nan=False))
def test_truncated_samples(fmt: str, cut: float) -> None:
    sample = CASES[fmt][1]
    _check(fmt, sample[: int(cut * len(sample))])


@settings(parent=FUZZ, max_examples=60)
@given(fmt=st.sampled_from(FORMATS), edits=EDITS)
def test_mutated_samples(fmt: str, edits: list[tuple[float, int, bytes]]) -> None:
    _check(fmt, _mutate(CASES[fmt][1], edits))


@settings(parent=FUZZ, max_examples=60)
@given(
    fmt=st.sampled_from(FORMATS),
    spots=st.lists(st.tuples(st.floats(0, 1, allow_nan=False), TOKENS), min_size=1, max_size=4),
)
def test_samples_with_meaningful_bytes_inserted(fmt: str, spots: list[tuple[float, bytes]]) -> None:
    _check(fmt, _mutate(CASES[fmt][1], [(where, 1, token) for where, token in spots]))


def test_the_samples_themselves_read_cleanly() -> None:
    """The fuzz starts from valid inputs: each sample reads without error and has entities."""
    for fmt in FORMATS:
        with _input(fmt, CASES[fmt][1]) as path:
            docs = [d for d in get_reader(fmt)(path) if isinstance(d, Document)]
        assert docs, fmt
        if fmt != "pubmed-xml":
            assert any(d.entities for d in docs), fmt
