"""Annotation throughput: our engine against transformers' token-classification pipeline, and the
cost of running the engine as a spaCy component.

Data: the first 2,000 sentences of the bundled abstracts (`corpora/samples/pubmed/*.xml*`, title and
abstract passages) as cut by `corpora.preprocess.pipeline` (scispaCy tokenizer + sentence segmenter);
sentences longer than 510 word pieces are skipped (the pipeline cannot take them whole).

Model: a Megatron-BERT token classifier with random weights and the label map O, B/I-Chemical,
B/I-Disease, at two sizes: "small" (2 layers, hidden 128, 2 heads) and "base" (6 layers, hidden 512,
8 heads); WordPiece vocabulary of 8,000 trained on the same abstracts; the classifier is sharpened
and its O bias set so that about 15% of words fall in entities, so both sides decode real spans.
Saved as a trained-model directory with max_length 512, so both sides see each sentence whole.

Each side does the full job, sentence in, character-offset entity spans out:
- ours: `AnnotationEngine.annotate` over one-sentence Documents carrying the scispaCy tokens (batch
  up to 2,048 padded tokens on a CPU, length-sorted), entities with exact offsets and scores;
- peer: `pipeline("token-classification", aggregation_strategy="simple", batch_size=32)` over the
  sentence texts (its own tokenization, padding per batch of 32 in input order, aggregation to
  spans with offsets and scores).
spaCy: the `biomegatron_ner` component's `nlp.pipe` over spaCy Docs of the same sentences (made by
the scispaCy pipeline before timing) against `AnnotationEngine.predict_entities` over the same word
lists; spacy_overhead = spacy_time / engine_time - 1, taken on the small model (where the engine is
fastest, so the component's own work weighs most).

Timing: each measurement is repeated (`--repeat`, `--repeat-base`, interleaved), the fastest counts.
Headline ratios use CPU seconds of this process (one torch thread and no tokenizer threads on both
sides, so CPU time is the work done; wall time on a shared machine adds the time spent waiting for
a core); wall-clock figures are reported beside them (`*_wall`). fp32 on CPU; `--precision bf16`
runs both sides under CPU bf16 autocast (ours: the engine's precision "bf16"; the peer: its pipeline
called inside `torch.autocast("cpu", torch.bfloat16)`).
The peer runs the model as transformers loads it from the same directory (same weights, same
config, the same fused tanh GeLU our presets ask for).

Usage: .venv/bin/python benchmarks/bench_annotate.py [--sentences 2000] [--repeat 3] [--repeat-base 1] [--threads 1]
The last stdout line is a JSON object with ratio_small, ratio_base and spacy_overhead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from biomodels.inference.engine import AnnotationEngine  # noqa: E402
from biomodels.models.model_dir import save_model_dir  # noqa: E402
from biomodels.models.presets import scratch_config  # noqa: E402
from biomodels.models.task_models import build_model  # noqa: E402
from biomodels.models.tokenization import load_tokenizer  # noqa: E402
from biomodels.models.vocab_training import train_wordpiece_vocab  # noqa: E402
from corpora.formats.pubmed_xml import read_pubmed_xml  # noqa: E402
from corpora.preprocess.documents import preprocess_documents  # noqa: E402
from corpora.preprocess.pipeline import build_pipeline
from corpora.schema import Document, Passage, Span  # noqa: E402

LABELS = ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
SIZES = {"small": (2, 128, 2), "base": (6, 512, 8)}
MAX_SUBWORDS = 510


def load_sentences(n: int) -> tuple[list[str], list[list[tuple[int, int]]], list[str]]:
    """(sentence texts, token offsets within each sentence, all abstract texts) of the first n sentences."""
    docs = []
    for path in sorted((ROOT / "corpora" / "samples" / "pubmed").glob("*.xml*")):
        docs.extend(d for d in read_pubmed_xml(path) if isinstance(d, Document))
    docs = list(preprocess_documents(docs, build_pipeline()))
    texts, tokens = [], []
    for d in docs:
        text = d.text
        toks = sorted((t.start, t.end) for t in d.tokens)
        k = 0
        for s in sorted(d.sentences, key=lambda s: s.start):
            while k < len(toks) and toks[k][0] < s.start:
                k += 1
            mine = []
            while k < len(toks) and toks[k][0] < s.end:
                mine.append((toks[k][0] - s.start, toks[k][1] - s.start))
                k += 1
            if mine:
                texts.append(text[s.start : s.end])
                tokens.append(mine)
    return texts, tokens, [d.text for d in docs]


def make_model_dir(out: Path, vocab: Path, size: str, sample: list[list[str]]) -> Path:
    layers, hidden, heads = SIZES[size]
    torch.manual_seed(0)
    n_vocab = len(load_tokenizer(vocab, True))
    config = scratch_config(layers, hidden, heads, n_vocab, max_positions=512)
    model, tok, _ = build_model(
        "ner",
        "scratch",
        len(LABELS),
        scratch_config=config,
        id2label=dict(enumerate(LABELS)),
        vocab=vocab,
        lower_case=True,
    )
    model.eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
        enc = tok(sample, is_split_into_words=True, padding=True, truncation=True, max_length=512, return_tensors="pt")
        logits = model(**enc).logits[enc["attention_mask"].bool()]
        margin = logits[:, 1:].max(1).values - logits[:, 0]
        model.classifier.bias[0] += float(torch.quantile(margin, 0.85))
    meta = {"name": f"bench-{size}", "lower_case": True, "labels": LABELS, "max_length": 512, "stride": 128}
    return save_model_dir(out / size, model, tok, "ner", LABELS, meta)


def one_sentence_documents(texts: list[str], tokens: list[list[tuple[int, int]]]) -> list[Document]:
    return [
        Document(
            f"s{i}",
            f"s{i}",
            passages=[Passage("p", "sentence", t, [[0, len(t)]])],
            sentences=[Span(0, len(t))],
            tokens=[Span(a, b) for a, b in toks],
        )
        for i, (t, toks) in enumerate(zip(texts, tokens))
    ]


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(r[0] for r in runs), min(r[1] for r in runs)


def bench_size(
    size: str,
    model_dir: Path,
    texts,
    tokens,
    words,
    spacy_docs,
    repeat: int,
    compile: bool = False,
    precision: str = "fp32",
) -> dict:
    from spacy.lang.en import English
    from transformers import AutoModelForTokenClassification, PreTrainedTokenizerFast, pipeline

    engine = AnnotationEngine(model_dir, device="cpu", precision=precision, compile=compile)
    # the peer gets the model as transformers loads it from the same directory (same weights and config)
    peer_model = AutoModelForTokenClassification.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    peer_tokenizer = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    peer = pipeline(
        "token-classification",
        model=peer_model,
        tokenizer=peer_tokenizer,
        aggregation_strategy="simple",
        batch_size=32,
        device=-1,
    )
    nlp = English()
    nlp.add_pipe("biomegatron_ner", config={"model": str(model_dir), "device": "cpu", "precision": precision})
    inner = nlp.get_pipe("biomegatron_ner").engine  # the engine inside the component

    documents = one_sentence_documents(texts, tokens)  # input, made once (annotate replaces the entities)

    def ours():
        return [
            [(e.offsets[0][0], e.offsets[0][1], e.type, e.score) for e in d.entities]
            for d in engine.annotate(documents)
        ]

    def theirs():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            rows = peer(texts)
        return [[(e["start"], e["end"], e["entity_group"], float(e["score"])) for e in row] for row in rows]

    def engine_alone():
        return inner.predict_entities(words)

    def spacy_pipe():  # one batch of all docs, as the engine alone gets all sentences in one call
        return [len(d.spans["biomegatron_ner"]) for d in nlp.pipe(spacy_docs, batch_size=len(spacy_docs))]

    # warm-up (first-call allocations, lazy imports; with --compile, compiling for every batch shape)
    _, warm_wall, _ = timed(lambda: engine.predict_entities(words if compile else words[:64]))
    peer(texts[:64])
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in ("ours", "peer", "engine", "spacy")}
    results = {}
    for _ in range(repeat):
        for name, fn in (("ours", ours), ("peer", theirs), ("engine", engine_alone), ("spacy", spacy_pipe)):
            out, wall, cpu = timed(fn)
            runs[name].append((wall, cpu))
            results[name] = out
            print(f"  {size} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU", file=sys.stderr, flush=True)
    n = len(texts)
    (ow, oc), (pw, pc), (ew, ec), (sw, sc) = (best(runs[k]) for k in ("ours", "peer", "engine", "spacy"))
    return {
        f"ours_sents_per_cpu_s_{size}": round(n / oc, 1),
        f"peer_sents_per_cpu_s_{size}": round(n / pc, 1),
        f"ours_sents_per_s_wall_{size}": round(n / ow, 1),
        f"peer_sents_per_s_wall_{size}": round(n / pw, 1),
        f"ratio_{size}": round(pc / oc, 2),
        f"ours_warmup_s_{size}": round(warm_wall, 1),
        f"ratio_{size}_wall": round(pw / ow, 2),
        f"spacy_overhead_{size}": round(sc / ec - 1, 3),
        f"spacy_overhead_{size}_wall": round(sw / ew - 1, 3),
        f"ours_entities_{size}": sum(map(len, results["ours"])),
        f"peer_entities_{size}": sum(map(len, results["peer"])),
        f"spacy_entities_{size}": sum(results["spacy"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement, small model")
    ap.add_argument("--repeat-base", type=int, default=1, help="timed runs per measurement, base model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", default="small,base")
    ap.add_argument("--compile", action="store_true", help="torch.compile our encoder (compiling is in the warm-up)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="both sides (CPU autocast)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    texts, tokens, abstracts = load_sentences(10**9)
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab"
        train_wordpiece_vocab(abstracts, 8000, True, vocab)
        tok = load_tokenizer(vocab, True)
        keep = [
            i
            for i, (t, toks) in enumerate(zip(texts, tokens))
            if len(tok([t[a:b] for a, b in toks], is_split_into_words=True)["input_ids"]) <= MAX_SUBWORDS + 2
        ][: args.sentences]
        skipped = keep[-1] + 1 - len(keep)  # sentences over 510 word pieces before the last one kept
        texts, tokens = [texts[i] for i in keep], [tokens[i] for i in keep]
        words = [[t[a:b] for a, b in toks] for t, toks in zip(texts, tokens)]
        subwords = [len(x) - 2 for x in tok(words, is_split_into_words=True)["input_ids"]]
        nlp = build_pipeline()
        spacy_docs = list(nlp.pipe(texts))
        spacy_sentences = sum(1 for d in spacy_docs for _ in d.sents)
        summary = {
            "sentences": len(texts),
            "words": sum(map(len, words)),
            "mean_subwords": round(sum(subwords) / len(subwords), 1),
            "max_subwords": max(subwords),
            "skipped_long": skipped,
            "spacy_doc_sentences": spacy_sentences,
            "threads": args.threads,
            "repeat": args.repeat,
            "compile": args.compile,
            "precision": args.precision,
            "load_avg_start": os.getloadavg()[0],
        }
        for size in args.sizes.split(","):
            model_dir = make_model_dir(Path(tmp) / "models", vocab, size, words[:64])
            repeat = args.repeat_base if size == "base" else args.repeat
            summary.update(
                bench_size(size, model_dir, texts, tokens, words, spacy_docs, repeat, args.compile, args.precision)
            )
        first = args.sizes.split(",")[0]
        summary["spacy_overhead"] = summary[f"spacy_overhead_{first}"]  # small model: the engine is fastest there
        summary["ratio_basis"] = "CPU seconds of this process (wall figures: *_wall)"
        summary["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
