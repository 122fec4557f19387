"""Training settings: one dataclass is the source of the CLI options, the config-file keys and README's table."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from biomodels.training.config import KEYS, TrainConfig, build_config, settings_table
from corpora.errors import ConfigError
from pipelines.cli.train import overrides_from_args, register
from tests.helpers.paths import ROOT


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser


def test_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- settings-table")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- /settings-table -->")].strip()
    # after changing TrainConfig, paste the output of
    # python -c "from biomodels.training.config import settings_table; print(settings_table())"
    assert block == settings_table()
    assert block.count("\n") == len(fields(TrainConfig)) + 1  # header, rule, one row a setting


def test_every_setting_is_an_option_with_its_help() -> None:
    parser = train_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    dests = {a.dest: a for a in train._actions}
    for f in fields(TrainConfig):
        assert f.name in dests, f.name
        assert f.metadata["help"] in dests[f.name].help


def test_options_become_typed_config_values() -> None:
    args = train_parser().parse_args(
        [
            "train",
            "ner",
            "--model",
            "scratch",
            "--train",
            "x",
            "--out",
            "o",
            "--lr",
            "3e-4",
            "--no-load-best",
            "--entity-types",
            "Chemical,Disease",
            "--lowercase",
            "--save-every",
            "7",
        ]
    )
    cfg = build_config(None, overrides_from_args(args))
    assert (cfg.learning_rate, cfg.load_best, cfg.entity_types, cfg.lower_case, cfg.save_every) == (
        3e-4,
        False,
        ["Chemical", "Disease"],
        True,
        7,
    )
    assert cfg.epochs == TrainConfig().epochs  # not given: the default


def test_config_file_takes_every_key_and_groups(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  batch-size: 8\n  save_every: 100\ndata:\n  max_length: 64\nmodel:\n  layers: 2\n")
    cfg = build_config(path)
    assert (cfg.batch_size, cfg.save_every, cfg.max_length, cfg.layers) == (8, 100, 64, 2)
    assert set(KEYS) == {f.name for f in fields(TrainConfig)}


def test_unknown_key_suggests_the_close_one(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("learning_rte = 0.1\n")
    with pytest.raises(ConfigError, match=r"run.toml: unknown config key 'learning_rte' \(did you mean learning_rate"):
        build_config(path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_grad_norm", -5.0, "must be > 0"),
        ("log_every", 0, "must be >= 1"),
        ("num_workers", -3, "must be >= 0"),
        ("heads", 3, "must divide hidden"),
    ],
)
def test_out_of_range_values_are_refused(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"config key '{key}'.*{message}"):
        TrainConfig(**{key: value}).resolved("ner")


def test_trainer_and_api_share_the_defaults() -> None:
    """One default for each setting: the trainer reads the same object the CLI builds."""
    from biomodels.training import trainer

    assert trainer.TrainConfig is TrainConfig
    assert TrainConfig().save_every == 500
