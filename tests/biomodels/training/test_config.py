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


# ---- hostile config files (issue 14, items 2 and 11)

# each level nine aliases of the one before: 314 bytes that the old loader turned into 39 MB of
# `entity_types` (two levels more: gigabytes)
ALIAS_BOMB = (
    "entity_types:\n- &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"- &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(5))
    + f"- [{', '.join(['*f'] * 9)}]\n"
)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(path.read_bytes()) == 314
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert str(err.value) == (
        f"{path}: line 2: YAML anchor &a refused (config files take plain values; write the value out)"
    )
    alias_only = tmp_path / "alias.yaml"
    alias_only.write_text("epochs: *x\n")
    with pytest.raises(ConfigError, match=r"line 1: YAML alias \*x refused"):
        build_config(alias_only)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.yaml", "epochs: 1\nlr: 1e-4\nepochs: 2\n", "line 3: key 'epochs' is given twice"),
        ("c.yaml", "epochs: 1\ntraining:\n  epochs: 2\n", "key 'epochs' is given twice (again as training.epochs)"),
        ("c.json", '{"epochs": 1, "epochs": 2}', "key 'epochs' is given twice"),
        ("c.toml", "epochs = 1\nepochs = 2\n", "not valid TOML"),
        ("c.yaml", "lr: 1e-4\nlearning_rate: 2e-4\n", "config key 'learning_rate' is given twice"),
    ],
)
def test_a_key_given_twice_is_an_error_in_every_format(tmp_path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_json_config_files_are_read(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"training": {"epochs": 2}, "batch-size": 8}')
    config = build_config(path)
    assert (config.epochs, config.batch_size) == (2, 8)
    path.write_text('{"learning_rate": NaN}')
    with pytest.raises(ConfigError, match="NaN is not a number a config may hold"):
        build_config(path)


def test_a_config_that_is_not_utf8_names_the_byte(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"epochs: 2\n# caf\xe9\n")
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert str(err.value) == f"{path}: not UTF-8 text (byte 15, line 2: 0xe9); save it as UTF-8"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rate: .inf\n", "config key 'learning_rate' must be a finite number, got inf"),
        ("weight_decay: .inf\n", "config key 'weight_decay' must be a finite number, got inf"),
        ("max_grad_norm: .nan\n", "config key 'max_grad_norm' must be a finite number, got nan"),
        ("max_grad_norm: -5\n", "config key 'max_grad_norm' = -5.0: must be > 0"),
        ("log_every: 0\n", "config key 'log_every' = 0: must be >= 1"),
        ("num_workers: -3\n", "config key 'num_workers' = -3: must be >= 0"),
    ],
)
def test_bad_values_in_a_file_are_refused_when_it_is_read(tmp_path, text: str, message: str) -> None:
    """Refused by build_config, naming the file, not later by the trainer."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_config(path)
    assert str(err.value) == f"{path}: {message}"
    with pytest.raises(ConfigError, match="^command line: config key 'learning_rate' must be a finite number"):
        build_config(None, {"learning_rate": "inf"})
    with pytest.raises(ConfigError, match="config key 'weight_decay' = inf: must be a finite number"):
        TrainConfig(weight_decay=float("inf")).resolved("ner")  # the Python API checks too
