"""The preprocessing pipeline: building it, rebuilding it in another process, and its fingerprint.

Importing this module registers the spaCy factories the pipeline uses (our sentence segmenter and
scispaCy's `abbreviation_detector`), so `spacy.load` of a saved pipeline works after it. The saved
config also names the callback `biomed_array_matchers.v1` (spaCy's `after_pipeline_creation`),
which gives the abbreviation detector that `spacy.load` rebuilds our matchers again: without it
the rebuilt detector runs scispaCy's own, with an empty spaCy Matcher that warns W036 on every
document.

Tested in `tests/corpora/preprocess/test_documents.py`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import TYPE_CHECKING

import scispacy.abbreviation  # noqa: F401  (registers the "abbreviation_detector" factory)
import spacy
from scispacy.custom_tokenizer import combined_rule_tokenizer
from scispacy.version import VERSION as SCISPACY_VERSION

from corpora.errors import ConfigError
from corpora.preprocess.abbreviation_matchers import use_array_matchers
from corpora.preprocess.sentence_segmentation import COMPONENT_NAME, RULES_VERSION

if TYPE_CHECKING:
    from spacy.language import Language

# Bump when what `corpora.preprocess.chunks.annotate_tasks` produces changes: part of the
# fingerprint the cache keys on.
PREPROCESS_VERSION = "1"
SCISPACY_MODELS = ("en_core_sci_sm", "en_core_sci_md", "en_core_sci_lg", "en_core_sci_scibert")
_MODEL_URL = "https://s3-us-west-2.amazonaws.com/ai2-s2-scispacy/releases/v0.5.4/{name}-0.5.4.tar.gz"
_SPEC_KEY = "biomed_preprocess"  # nlp.meta entry recording how build_pipeline made the pipeline
_MODEL_KEEP = ("tok2vec", "transformer", "parser", "senter")  # what sentence boundaries need
ARRAY_MATCHERS_CALLBACK = "biomed_array_matchers.v1"


@spacy.registry.callbacks(ARRAY_MATCHERS_CALLBACK)
def _array_matchers_after_creation() -> object:
    """spaCy callback: our matchers for every abbreviation detector of a pipeline being loaded."""

    def apply(nlp: Language) -> Language:
        for _, pipe in nlp.pipeline:
            if type(pipe).__name__ == "AbbreviationDetector":
                use_array_matchers(pipe)
        return nlp

    return apply


def build_pipeline(spacy_model: str | None = None) -> Language:
    """The preprocessing pipeline: tokenizer, sentence boundaries, abbreviation detector.

    Without `spacy_model`: `spacy.blank("en")` with scispaCy's combined-rule tokenizer and our
    rule-based `biomed_sentence_segmenter`. With it: that installed spaCy/scispaCy model (package
    name or directory), keeping only what its parser needs for sentence boundaries. Raises
    ConfigError when the model is not installed or gives no sentence boundaries.
    """
    if spacy_model is None:
        nlp = spacy.blank("en")
        with warnings.catch_warnings():
            # scispaCy's suffix pattern trips a harmless "Possible set union" FutureWarning in `re`.
            warnings.filterwarnings("ignore", message="Possible set union", category=FutureWarning)
            nlp.tokenizer = combined_rule_tokenizer(nlp)
        nlp.add_pipe(COMPONENT_NAME)
    else:
        nlp = _load_model(spacy_model)
    use_array_matchers(nlp.add_pipe("abbreviation_detector"))
    nlp.config["nlp"]["after_pipeline_creation"] = {"@callbacks": ARRAY_MATCHERS_CALLBACK}  # for spacy.load
    nlp.meta[_SPEC_KEY] = {"spacy_model": spacy_model}
    return nlp


def _load_model(name: str) -> Language:
    try:
        nlp = spacy.load(name)
    except (OSError, ImportError, ValueError) as exc:
        if name in SCISPACY_MODELS:
            how = f"pip install {_MODEL_URL.format(name=name)}"
        else:
            how = (
                f"pip install the package that provides {name!r} "
                f"(python -m spacy download {name} for spaCy's own models), or pass a model directory"
            )
        raise ConfigError(f"--spacy-model {name}: the model is not installed ({exc}). Install it with: {how}") from exc
    if "parser" not in nlp.pipe_names and "senter" not in nlp.pipe_names:
        raise ConfigError(
            f"--spacy-model {name}: the model has no parser or senter to give sentence boundaries "
            f"(components: {nlp.pipe_names})"
        )
    for pipe in list(nlp.pipe_names):
        if pipe not in _MODEL_KEEP:
            nlp.disable_pipe(pipe)
    return nlp


def pipeline_spec(nlp: Language) -> str | None:
    """The `spacy_model` argument `build_pipeline` made `nlp` with (workers rebuild it from this)."""
    if _SPEC_KEY not in nlp.meta:
        raise ConfigError(
            "the pipeline was not made by corpora.preprocess.pipeline.build_pipeline, "
            "so worker processes cannot rebuild it"
        )
    return nlp.meta[_SPEC_KEY]["spacy_model"]


def pipeline_fingerprint(nlp: Language) -> dict[str, object]:
    """Components, versions and a stable `hash` of everything that decides the output.

    The manifest records it and the Prefect cache keys on `hash`; the tokenizer's serialized rules
    are hashed too, so a scispaCy upgrade that changes tokenization changes the hash.
    """
    spec = nlp.meta.get(_SPEC_KEY, {}).get("spacy_model")
    info: dict[str, object] = {
        "components": list(nlp.pipe_names),
        "spacy": spacy.__version__,
        "scispacy": SCISPACY_VERSION,
        "model": {"name": f"{nlp.meta.get('lang', 'en')}_{nlp.meta.get('name')}", "version": nlp.meta.get("version")}
        if spec is not None
        else {"name": f"blank:{nlp.lang}", "version": None},
        "tokenizer_sha256": hashlib.sha256(nlp.tokenizer.to_bytes(exclude=["vocab"])).hexdigest(),
        "sentence_rules": RULES_VERSION if COMPONENT_NAME in nlp.pipe_names else None,
        "preprocess": PREPROCESS_VERSION,
        "max_length": nlp.max_length,
    }
    info["hash"] = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]
    return info
