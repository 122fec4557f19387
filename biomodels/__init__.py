"""Megatron-BERT models: presets and checkpoints (`models`), task data (`data`), training
(`training`), inference (`inference`) and the spaCy components (`spacy_components`).

Library code only: it takes Documents from `corpora` and never imports Prefect.
"""
