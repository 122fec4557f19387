"""Tokenizers from vocab.txt (casing, accents, offsets) and WordPiece vocabulary training."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from biomodels.models.tokenization import SPECIAL_TOKENS, build_tokenizer, load_tokenizer, read_vocab  # noqa: E402
from biomodels.models.vocab_training import train_wordpiece_vocab  # noqa: E402
from corpora.errors import ConfigError, EmptyInputError, ModelError  # noqa: E402
from pipelines.cli import main  # noqa: E402
from tests.helpers import megatron_fixtures as fx
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
NCBI = SAMPLES / "ncbi-disease" / "NCBI_train_sample.PubTator.txt"


def pubtator_texts(path: Path) -> list[str]:
    """Title + " " + abstract per document, read straight from the raw lines (independent of the reader)."""
    titles: dict[str, str] = {}
    abstracts: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([^|\t]+)\|([ta])\|(.*)$", line)
        if m:
            (titles if m.group(2) == "t" else abstracts)[m.group(1)] = m.group(3)
    return [titles[k] + " " + abstracts.get(k, "") for k in titles]


def test_casing_must_be_stated_for_a_bare_vocab(tmp_path: Path) -> None:
    vocab = fx.write_vocab(tmp_path / "vocab.txt")
    with pytest.raises(ConfigError, match="lower-cased"):
        load_tokenizer(vocab)
    (tmp_path / "biomed.json").write_text(json.dumps({"lower_case": True}))
    assert load_tokenizer(tmp_path).do_lower_case is True  # the folder records it
    assert load_tokenizer(tmp_path, lower_case=False).do_lower_case is False


def test_uncased_offsets_pieces_and_accents(tmp_path: Path) -> None:
    tok = load_tokenizer(fx.write_vocab(tmp_path / "vocab.txt"), lower_case=True)
    text = "Genes of the Protéin (cells)"
    enc = tok(text, return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens == ["[CLS]", "gene", "##s", "of", "the", "protein", "(", "cells", ")", "[SEP]"]
    spans = [text[a:b] for a, b in enc["offset_mapping"]]
    assert spans == ["", "Gene", "s", "of", "the", "Protéin", "(", "cells", ")", ""]
    assert enc["input_ids"][0] == 2 and enc["input_ids"][-1] == 3


def test_cased_keeps_case_and_accents(tmp_path: Path) -> None:
    tok = load_tokenizer(fx.write_vocab(tmp_path / "vocab.txt"), lower_case=False)
    assert tok.tokenize("Genes protéin gene") == ["[UNK]", "[UNK]", "gene"]
    pair = tok("gene", "cell")
    assert pair["token_type_ids"] == [0, 0, 0, 1, 1]


def test_vocab_checks(tmp_path: Path) -> None:
    bad = tmp_path / "vocab.txt"
    bad.write_text("hello\nworld\n[PAD]\n")
    with pytest.raises(ModelError, match=r"\[UNK\], \[CLS\], \[SEP\], \[MASK\]"):
        read_vocab(bad)
    with pytest.raises(ModelError, match="not found"):
        build_tokenizer(tmp_path / "none.txt", True)
    assert read_vocab(fx.write_vocab(tmp_path / "ok.txt")) == fx.tiny_vocab()


@pytest.mark.parametrize("lower", [True, False])
def test_train_wordpiece_vocab_on_ncbi_sample(tmp_path: Path, lower: bool) -> None:
    texts = pubtator_texts(NCBI)
    path = train_wordpiece_vocab(iter(texts), 600, lower, tmp_path / "v")
    vocab = read_vocab(path)
    assert tuple(vocab[:5]) == SPECIAL_TOKENS
    assert len(vocab) <= 600
    letters = [t for t in vocab[5:] if re.search(r"[A-Za-z]", t)]
    assert any(t != t.lower() for t in letters) != lower  # upper-case entries only in the cased vocab
    words = Counter(w.lower() if lower else w for t in texts for w in re.findall(r"[A-Za-z]+", t))
    for word, _ in words.most_common(5):
        assert word in vocab, word
    meta = json.loads((tmp_path / "v" / "biomed.json").read_text())
    assert (meta["lower_case"], meta["texts"], meta["vocab_size"]) == (lower, len(texts), len(vocab))
    # every character of the corpus is covered: tokenizing it needs no [UNK], and pieces map back to the text
    tok = load_tokenizer(tmp_path / "v")
    for text in texts:
        enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
        pieces = tok.convert_ids_to_tokens(enc["input_ids"])
        assert "[UNK]" not in pieces
        for piece, (a, b) in zip(pieces, enc["offset_mapping"]):
            if text[a:b].isascii():
                assert piece.removeprefix("##") == (text[a:b].lower() if lower else text[a:b])


def test_train_rejects_empty_corpus_and_tiny_size(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError):
        train_wordpiece_vocab(iter(["", ""]), 100, True, tmp_path / "v")
    with pytest.raises(ConfigError, match="no room"):
        train_wordpiece_vocab(iter(["text"]), 5, True, tmp_path / "v")


def test_cli_vocab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "vocab-out"
    assert main(["vocab", str(NCBI), "--size", "500", "--out", str(out), "--lowercase"]) == 0
    vocab = read_vocab(out / "vocab.txt")
    assert len(vocab) <= 500 and tuple(vocab[:5]) == SPECIAL_TOKENS
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["lower_case"] is True
    assert meta["texts"] == len(pubtator_texts(NCBI))  # one text per document of the sample
    assert f"{len(vocab)} entries (uncased)" in capsys.readouterr().out
    assert main(["vocab", str(tmp_path / "missing.txt"), "--size", "100", "--out", str(out)]) == 1
    assert "missing.txt" in capsys.readouterr().err


def test_wordpiece_merges_by_count_then_alphabet() -> None:
    from biomodels.models.vocab_training import _wordpiece_entries

    specials = list(SPECIAL_TOKENS)
    # ab x3, abc x2, bc x1: (a, ##b) occurs 5 times, then (ab, ##c) twice; (b, ##c) once < min_frequency 2
    got = _wordpiece_entries(Counter({"ab": 3, "abc": 2, "bc": 1}), 100, 2, 1000)
    assert got == specials + ["##b", "##c", "a", "b", "ab", "abc"]
    # a tie between two pairs goes to the alphabetically first piece; the size bound stops after one
    assert _wordpiece_entries(Counter({"yz": 2, "xy": 2}), 10, 2, 1000) == specials + ["##y", "##z", "x", "y", "xy"]
    # only the most frequent characters make the alphabet
    assert _wordpiece_entries(Counter({"aab": 1}), 100, 1, 1) == specials + ["##a", "a", "aa"]


def test_trained_vocab_is_the_same_in_every_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from biomodels.models.vocab_training import train_wordpiece_vocab;"
        "from corpora.formats.pubtator import read_pubtator;"
        "texts = [p.text for d in read_pubtator(Path(sys.argv[2])) for p in d.passages];"
        "train_wordpiece_vocab(texts, 800, False, Path(sys.argv[3]))"
    )
    root = str(ROOT)
    outs = []
    for seed in ("1", "2"):  # Python's string hashing differs between the two processes
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", script, root, str(NCBI), str(out)], check=True, env=env)
        outs.append((out / "vocab.txt").read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 800
