"""`biomed train` / `biomed evaluate` end to end on the bundled samples, with tiny scratch models.

NER: trained through the CLI with a YAML config plus command-line overrides; the output directory
must hold every promised file, and `evaluate` must give exactly the metrics that this test
recomputes from the saved model alone (transformers + tokenizers + seqeval, raw CoNLL parsing).
RE: ChemProt sample (sentences from scispaCy preprocessing), negative class excluded.
QA: a SQuAD file built here from a bundled PubTator abstract.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from biomodels.training.api import evaluate, train
from biomodels.training.config import TrainConfig, build_config
from corpora.errors import ConfigError, InputError, ModelError
from pipelines.cli import main
from tests.helpers.paths import ROOT
from tests.helpers.raw_formats import raw_conll

SAMPLES = ROOT / "corpora" / "samples"
NCBI_TRAIN = SAMPLES / "ncbi-disease" / "train_sample.tsv"
NCBI_DEV = SAMPLES / "ncbi-disease" / "devel_sample.tsv"
CHEMPROT = SAMPLES / "chemprot" / "chemprot_sample_abstracts.tsv"
TINY = {"layers": 2, "hidden": 64, "heads": 2, "progress": False}

# Training is deterministic (vocabulary included), so the seed fixes the outcome; with seed 2 this
# 60-step model already predicts entities (dev F1 0.13), which the evaluation tests need (with
# seeds 1, 3, 4 and 5 it still predicts none).
SEED = 2

NER_YAML = """\
train:
  lr: 0.003
  batch_size: 8          # overridden on the command line
  epochs: 5              # replaced by --max-steps
  warmup_ratio: 0.0
  eval_every: 30
  log_every: 1
model:
  layers: 2
  hidden: 64
  heads: 2
  vocab_size: 2000
data:
  max_length: 256
"""


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory):
    """One NER training through the CLI: YAML config + overrides, vocabulary trained from the data."""
    tmp = tmp_path_factory.mktemp("ner")
    config = tmp / "ner.yaml"
    config.write_text(NER_YAML, encoding="utf-8")
    out = tmp / "model"
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    api_log = logging.getLogger("biomodels.training.api")
    api_log.addHandler(handler)
    level = api_log.level
    api_log.setLevel(logging.INFO)
    torch.set_num_threads(1)
    try:
        code, stdout, stderr = run_cli(
            [
                "train",
                "ner",
                "--model",
                "scratch",
                "--train",
                str(NCBI_TRAIN),
                "--dev",
                str(NCBI_DEV),
                "--out",
                str(out),
                "--config",
                str(config),
                "--batch-size",
                "16",
                "--max-steps",
                "60",
                "--seed",
                str(SEED),
                "--no-progress",
            ]
        )
    finally:
        api_log.removeHandler(handler)
        api_log.setLevel(level)
    assert code == 0, stderr
    return {"out": out, "stdout": stdout, "log": records, "config": config}


def test_ner_output_directory_is_complete(ner_run):
    out = ner_run["out"]
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "labels.json",
        "biomed.json",
        "metrics.json",
        "training.png",
        "dev_metrics.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = json.loads((out / "labels.json").read_text())["labels"]
    assert labels == ["O", "B-Disease", "I-Disease"]  # the sample's tags: O, B-Disease, I-Disease
    config = json.loads((out / "config.json").read_text())
    assert {int(k): v for k, v in config["id2label"].items()} == dict(enumerate(labels))
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["task"] == "ner" and meta["lower_case"] is False
    assert meta["source_model"]["kind"] == "scratch" and meta["source_model"]["vocab"]["trained"] is True
    vocab_file = Path(meta["source_model"]["vocab"]["path"])
    assert meta["source_model"]["vocab"]["sha256"] == hashlib.sha256(vocab_file.read_bytes()).hexdigest()
    train_files = meta["training_data"]["train"]
    assert [Path(f["path"]).resolve() for f in train_files] == [NCBI_TRAIN.resolve()]
    assert train_files[0]["sha256"] == hashlib.sha256(NCBI_TRAIN.read_bytes()).hexdigest()
    assert meta["training_data"]["dev"][0]["sha256"] == hashlib.sha256(NCBI_DEV.read_bytes()).hexdigest()
    assert meta["precision"]["name"] == "fp32" and meta["optimizer"]["name"].startswith("torch.optim.AdamW")
    assert "installed" in meta["apex"] and meta["versions"]["torch"] == torch.__version__
    assert (meta["max_length"], meta["stride"]) == (256, 32)
    # the log says a vocabulary was trained because none was given
    assert any("trained a WordPiece vocabulary" in m for m in ner_run["log"])


def test_ner_config_file_and_override_precedence(ner_run):
    cfg = json.loads((ner_run["out"] / "biomed.json").read_text())["config"]
    assert cfg["learning_rate"] == 0.003  # file (alias lr), not the NER default 5e-5
    assert cfg["batch_size"] == 16  # command line beats the file's 8
    assert cfg["max_steps"] == 60 and cfg["epochs"] == 5  # both kept; max_steps wins in the Trainer
    assert (cfg["layers"], cfg["hidden"], cfg["heads"], cfg["vocab_size"]) == (2, 64, 2, 2000)
    assert cfg["seed"] == SEED and cfg["weight_decay"] == TrainConfig().weight_decay  # untouched default
    metrics = json.loads((ner_run["out"] / "metrics.json").read_text())
    assert metrics["global_step"] == 60 and metrics["config"]["batch_size"] == 16


def test_ner_loss_falls(ner_run):
    history = json.loads((ner_run["out"] / "metrics.json").read_text())["history"]["train"]
    losses = [row["loss"] for row in history]
    assert len(losses) == 60  # every step (log_every 1): per-5-step means were too noisy to compare
    first, last = sum(losses[:5]) / 5, sum(losses[-20:]) / 20
    assert last < 0.7 * first, (first, last, losses)


def test_ner_evaluate_equals_independent_recomputation(ner_run):
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2
    from tokenizers import Tokenizer
    from transformers import MegatronBertForTokenClassification

    out = ner_run["out"]
    code, stdout, _ = run_cli(["evaluate", "ner", "--model", str(out), "--data", str(NCBI_DEV)])
    assert code == 0
    printed = json.loads(stdout.strip().splitlines()[-1])
    metrics = evaluate("ner", out, NCBI_DEV)
    for key in ("precision", "recall", "f1", "n_gold", "n_pred", "tp"):
        assert printed[key] == metrics[key]

    # independently: the saved files only, one sentence at a time, first subword of each word
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    model = MegatronBertForTokenClassification.from_pretrained(str(out)).eval()
    id2label = model.config.id2label
    gold, pred = [], []
    with torch.no_grad():
        for words, tags in raw_conll(NCBI_DEV):
            enc = tokenizer.encode(words, is_pretokenized=True)
            assert len(enc.ids) <= 256  # fits one window: evaluate must not have split it either
            logits = model(input_ids=torch.tensor([enc.ids])).logits[0]
            first: dict[int, int] = {}
            for pos, w in enumerate(enc.word_ids):
                if w is not None and w not in first:
                    first[w] = pos
            assert sorted(first) == list(range(len(words)))
            pred.append([id2label[int(logits[first[i]].argmax())] for i in range(len(words))])
            gold.append(tags)
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    n_gold = sum(t.startswith("B-") for tags in gold for t in tags)
    assert metrics["n_gold"] == n_gold == report["Disease"]["support"]
    print("dev strict F1", metrics["f1"], "predicted entities", metrics["n_pred"])
    assert metrics["n_pred"] > 0  # the model predicts entities, so the comparison below is not 0 == 0
    assert metrics["precision"] == pytest.approx(report["micro avg"]["precision"], abs=1e-12)
    assert metrics["recall"] == pytest.approx(report["micro avg"]["recall"], abs=1e-12)
    assert metrics["f1"] == pytest.approx(report["micro avg"]["f1-score"], abs=1e-12)
    assert metrics["per_type"]["Disease"]["f1"] == pytest.approx(report["Disease"]["f1-score"], abs=1e-12)
    # the dev metrics written at the end of training are the same model's
    assert json.loads((out / "dev_metrics.json").read_text())["f1"] == pytest.approx(metrics["f1"], abs=1e-12)


def test_ner_resume_continues_from_checkpoint(ner_run, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(ner_run["out"], out)
    cfg = build_config(ner_run["config"], {"batch_size": 16, "max_steps": 70, "seed": SEED})
    result = train("ner", "scratch", [NCBI_TRAIN], None, out, cfg, resume=True)
    assert result.global_step == 70
    history = json.loads((out / "metrics.json").read_text())["history"]["train"]
    assert [row["step"] for row in history] == list(range(1, 71))  # log_every 1
    original = json.loads((ner_run["out"] / "metrics.json").read_text())["history"]["train"]
    assert history[:60] == original  # steps 1-60 came from the checkpoint, 61-70 were trained now
    meta = json.loads((out / "biomed.json").read_text())
    assert (
        meta["resumed"] is True
        and meta["source_model"]["vocab"]["sha256"]
        == json.loads((ner_run["out"] / "biomed.json").read_text())["source_model"]["vocab"]["sha256"]
    )


def chemprot_gold_pairs() -> Counter:
    """Evaluated ChemProt groups per (pmid, arg1, arg2), first label of a pair, from the raw gold file."""
    first: dict[tuple[str, str, str], str] = {}
    for line in (SAMPLES / "chemprot" / "chemprot_sample_gold_standard.tsv").read_text().splitlines():
        pmid, group, a1, a2 = line.split("\t")
        first.setdefault((pmid, a1, a2), group)
    return Counter(first.values())


def test_re_chemprot_trains_and_excludes_the_negative_class(tmp_path):
    out = tmp_path / "re"
    result = train(
        "re",
        "scratch",
        [CHEMPROT],
        [CHEMPROT],
        out,
        {**TINY, "max_steps": 8, "batch_size": 16, "lr": 1e-3, "vocab_size": 1500, "max_length": 160},
    )
    assert result.global_step == 8
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["relation_task"] == "chemprot" and meta["marker_style"] == "entity_markers"
    assert meta["marker_tokens"] == ["[E1]", "[/E1]", "[E2]", "[/E2]"]
    assert json.loads((out / "labels.json").read_text())["labels"] == [
        "false",
        "CPR:3",
        "CPR:4",
        "CPR:5",
        "CPR:6",
        "CPR:9",
    ]
    m = evaluate("re", out, CHEMPROT)
    assert m["labels"] == ["CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9"] and "false" not in m["per_class"]
    gold = chemprot_gold_pairs()
    # only positive gold pairs are counted as recall's denominator, whatever the model predicts
    assert m["tp"] + m["fn"] == sum(gold.values()) == 238
    assert {c: m["per_class"][c]["support"] for c in m["labels"]} == {c: gold[c] for c in m["labels"]}
    assert m["f1"] == pytest.approx(2 * m["tp"] / (2 * m["tp"] + m["fp"] + m["fn"]) if m["tp"] else 0.0)
    assert m["n"] > sum(gold.values())  # negative candidates are there, and are not scored
    assert m == {**json.loads((out / "dev_metrics.json").read_text()), "data": m["data"], "model_dir": m["model_dir"]}


def test_re_from_masked_tsv(tmp_path):
    """BLUE-style masked sentences train and evaluate without any document reader."""
    rows = [
        "1.T1.T2\tInhibition of @GENE$ by @CHEMICAL$ reduced the response.\tCPR:4",
        "1.T3.T4\t@CHEMICAL$ had no effect on @GENE$ expression in cells.\tfalse",
        "2.T1.T2\t@CHEMICAL$ is an agonist of @GENE$ receptors.\tCPR:5",
        "2.T3.T4\tThe @GENE$ level was measured after @CHEMICAL$ treatment.\tfalse",
    ] * 4
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "re-masked"
    train("re", "scratch", [path], [path], out, {**TINY, "max_steps": 3, "batch_size": 8, "vocab_size": 60, "lr": 1e-3})
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["relation_input"] == "masked-tsv" and meta["marker_tokens"] == []
    assert json.loads((out / "labels.json").read_text())["labels"] == ["false", "CPR:4", "CPR:5"]
    m = evaluate("re", out, path)
    assert m["n"] == 16 and m["tp"] + m["fn"] == 8


def squad_from_pubtator(path: Path, n_docs: int) -> dict:
    """SQuAD v1.1 questions about the disease mentions of the first documents of a PubTator file."""
    docs: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "|t|" in line[:20] or "|a|" in line[:20]:
            pmid, kind, text = line.split("|", 2)
            d = docs.setdefault(pmid, {"title": "", "abstract": "", "mentions": []})
            d["title" if kind == "t" else "abstract"] = text
        elif line.strip():
            pmid, start, end, mention = line.split("\t")[:4]
            docs[pmid]["mentions"].append((int(start), int(end), mention))
    data = []
    for pmid in list(docs)[:n_docs]:
        d = docs[pmid]
        context = d["title"] + " " + d["abstract"]
        qas = []
        for k, (start, end, mention) in enumerate(d["mentions"]):
            assert context[start:end] == mention
            before = " ".join(context[:start].split()[-3:])
            qas.append(
                {
                    "id": f"{pmid}-{k}",
                    "question": f"Which disease is named after '{before}'?",
                    "answers": [{"text": mention, "answer_start": start}],
                }
            )
        data.append({"title": pmid, "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "1.1", "data": data}


def test_qa_trains_and_evaluates(tmp_path):
    squad = squad_from_pubtator(SAMPLES / "ncbi-disease" / "NCBI_train_sample.PubTator.txt", 2)
    n_questions = sum(len(p["qas"]) for a in squad["data"] for p in a["paragraphs"])
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(squad), encoding="utf-8")
    out = tmp_path / "qa"
    result = train(
        "qa",
        "scratch",
        [path],
        [path],
        out,
        {**TINY, "max_steps": 4, "batch_size": 8, "lr": 1e-3, "vocab_size": 400, "max_length": 192, "stride": 64},
    )
    assert result.global_step == 4 and not (out / "labels.json").exists()
    m = evaluate("qa", out, path)
    assert m["total"] == n_questions and 0.0 <= m["exact_match"] <= m["f1"] <= 100.0
    assert m == {**json.loads((out / "dev_metrics.json").read_text()), "data": m["data"], "model_dir": m["model_dir"]}
    code, stdout, _ = run_cli(["evaluate", "qa", "--model", str(out), "--data", str(path)])
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1])["total"] == n_questions


# ------------------------------------------------------------------------------------- config / errors


def test_config_toml_sections_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        '[train]\nlearning_rate = "2e-4"\nepochs = 4\n[model]\nlayers = 3\n[data]\nentity_types = ["Disease"]\n',
        encoding="utf-8",
    )
    cfg = build_config(path, {"epochs": 9, "max_length": None})
    assert (cfg.learning_rate, cfg.epochs, cfg.layers, cfg.entity_types) == (2e-4, 9, 3, ["Disease"])
    resolved = cfg.resolved("ner")
    assert (resolved.max_length, resolved.stride) == (128, 32)  # NER defaults fill what nobody set
    assert build_config(None, {"lr": None}).resolved("re").learning_rate == 2e-5


@pytest.mark.parametrize(
    "text, key",
    [
        ("learning_rte: 0.1\n", "learning_rte"),
        ("train:\n  epoch: 2\n", "train.epoch"),
        ("batch_size: many\n", "batch_size"),
    ],
)
def test_bad_config_key_or_value_names_key_and_file(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert key in str(err.value) and str(path) in str(err.value)
    code, _, stderr = run_cli(
        [
            "train",
            "ner",
            "--model",
            "scratch",
            "--train",
            str(NCBI_TRAIN),
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(path),
        ]
    )
    assert code == 2 and key in stderr


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="heads"):
        build_config(None, {"hidden": 100, "heads": 3}).resolved("ner")
    with pytest.raises(ConfigError, match="unknown task 'pos'"):
        TrainConfig().resolved("pos")
    with pytest.raises(ConfigError, match="unknown task"):
        train("pos", "scratch", [NCBI_TRAIN], None, "/nonexistent/out", {})


def test_unknown_task_on_the_command_line_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        main(["train", "pos", "--model", "scratch", "--train", str(NCBI_TRAIN), "--out", str(tmp_path)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        main(["evaluate", "pos", "--model", str(tmp_path), "--data", str(NCBI_DEV)])
    assert exc.value.code == 2


def test_missing_train_file_names_it(tmp_path):
    missing = tmp_path / "nope.tsv"
    with pytest.raises(InputError, match="nope.tsv"):
        train("ner", "scratch", [missing], None, tmp_path / "o", TINY)
    code, _, stderr = run_cli(
        ["train", "ner", "--model", "scratch", "--train", str(missing), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and str(missing) in stderr  # found before any data is read


def test_model_dir_without_labels_is_a_model_error(ner_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(ner_run["out"], broken, ignore=shutil.ignore_patterns("checkpoint", "vocab"))
    (broken / "labels.json").unlink()
    with pytest.raises(ModelError, match="labels.json"):
        evaluate("ner", broken, NCBI_DEV)
    code, _, stderr = run_cli(["evaluate", "ner", "--model", str(broken), "--data", str(NCBI_DEV)])
    assert code == 1 and str(broken / "labels.json") in stderr
    with pytest.raises(ConfigError, match="holds a ner model"):
        evaluate("re", ner_run["out"], CHEMPROT)
    with pytest.raises(ModelError, match="biomed.json"):
        evaluate("ner", tmp_path, NCBI_DEV)


# ------------------------------------------------------------------------------------------- Prefect


@pytest.mark.slow
def test_train_flow_publishes_metrics_table(prefect_harness, tmp_path):
    import asyncio

    from prefect.client.orchestration import get_client

    from pipelines.flows.train import train_flow

    out = tmp_path / "flow"
    result = train_flow(
        "ner",
        "scratch",
        [str(NCBI_DEV)],
        [str(NCBI_DEV)],
        str(out),
        config_overrides={**TINY, "max_steps": 3, "batch_size": 16, "vocab_size": 500},
    )
    assert result["global_step"] == 3 and (out / "biomed.json").is_file()

    async def latest_table():
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as client:
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["train-metrics"]))
            )
            return arts[-1]

    artifact = asyncio.run(latest_table())
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert rows[0]["scope"] == "overall (micro)" and rows[0]["f1"] == round(result["dev_metrics"]["f1"], 4)
    assert [r["scope"] for r in rows[1:]] == list(result["dev_metrics"]["per_type"])


# ------------------------------------------------------------------------------------------- torchrun


@pytest.mark.slow
def test_torchrun_two_ranks_one_writer(tmp_path):
    """`torchrun -m pipelines.cli train` trains with 2 gloo ranks; only rank 0 prints and writes."""
    import os
    import subprocess
    import sys

    repo = ROOT
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pipelines.cli",
        "train",
        "ner",
        "--model",
        "scratch",
        "--train",
        str(NCBI_DEV),
        "--dev",
        str(NCBI_DEV),
        "--out",
        str(out),
        "--layers",
        "2",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--vocab-size",
        "300",
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--log-every",
        "2",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert sum(line.startswith("model directory:") for line in lines) == 1  # one rank speaks
    assert json.loads(lines[-1])["global_step"] == 4
    assert proc.stderr.count("trained a WordPiece vocabulary") == 1  # rank 0 trains it, rank 1 reads it
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["world_size"] == 2
    assert json.loads((out / "metrics.json").read_text())["config"]["batch_size"] == 8
