"""Lazy re-exports: the names resolve to the real objects, and importing a package stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from corpora.lazy_exports import lazy_exports
from tests.helpers.paths import ROOT


def test_names_resolve_to_their_modules_objects() -> None:
    import biomodels.training as training
    import corpora.preprocess as preprocess
    from biomodels.training.config import TrainConfig
    from corpora.preprocess.documents import preprocess_documents

    assert training.TrainConfig is TrainConfig
    assert preprocess.preprocess_documents is preprocess_documents
    assert "build_pipeline" in dir(preprocess)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        preprocess.nothing  # noqa: B018


def test_unknown_module_is_an_import_error() -> None:
    getattr_, _ = lazy_exports("corpora", {"x": "no_such_module"})
    with pytest.raises(ModuleNotFoundError):
        getattr_("x")


def test_packages_import_without_their_heavy_dependencies() -> None:
    """`biomed --help` reads training settings without torch; a preprocessing worker can hide torch
    before spaCy loads only if `corpora.preprocess` itself loads neither."""
    script = (
        "import sys\n"
        "import corpora.preprocess, corpora.preprocess.worker, biomodels.training.config, biomodels.inference\n"
        "print(sorted(m for m in ('torch', 'spacy', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
