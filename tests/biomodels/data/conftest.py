"""Fixtures the RE data tests share: ChemProt sample documents with sentences, a small tokenizer."""

from __future__ import annotations

import pytest

from corpora.schema import Document
from tests.helpers.re_samples import chemprot_with_sentences, re_tokenizer


@pytest.fixture(scope="module")
def chemprot_docs() -> list[Document]:
    return chemprot_with_sentences()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return re_tokenizer(tmp_path_factory.mktemp("tok"))
