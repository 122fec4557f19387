"""The settings of one `biomed train` run: defaults, a YAML/TOML config file, command-line overrides.

Precedence, lowest first: the defaults below (some depend on the task, e.g. `max_length` is 128 for
NER, 256 for RE, 384 for QA), then the config file, then the command line. A key that does not
exist, or a value of the wrong type, raises ConfigError naming the key and the file, so a typo such
as `learning_rte` fails loudly instead of training with the default.

A config file is a flat mapping of these keys; for readability it may group them in the sections
`train`, `data` and `model` (one level), and `-` may stand for `_` (`batch-size`). `lr` is an alias
of `learning_rate`.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from biomodels.data.re_candidates import RELATION_TASKS
from biomodels.data.re_marking import MARKER_STYLES
from corpora.errors import ConfigError

TASKS = ("ner", "re", "qa")
SECTIONS = ("train", "data", "model")
ALIASES = {"lr": "learning_rate", "lowercase": "lower_case", "doc_stride": "stride"}
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
RELATION_TASK_CHOICES = ("auto", *RELATION_TASKS)  # auto: chosen from the entity types of the data

# task-dependent defaults applied by `RunConfig.resolved` where a key is left as None
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "ner": {"max_length": 128, "stride": 32, "learning_rate": 5e-5},
    "re": {"max_length": 256, "stride": 0, "learning_rate": 2e-5},
    "qa": {"max_length": 384, "stride": 128, "learning_rate": 3e-5},
}


@dataclass
class RunConfig:
    """Every setting of a training run (see the module docstring for where values come from)."""

    # optimisation
    learning_rate: float | None = None  # None: the task default (NER 5e-5, RE 2e-5, QA 3e-5)
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    precision: str = "auto"
    seed: int = 42
    eval_every: int | None = None  # steps; None: at the end of each epoch
    patience: int | None = None
    save_every: int | None = 500  # steps between resumable checkpoints
    log_every: int = 10
    group_by_length: bool = True
    num_workers: int = 0
    load_best: bool = True  # save the weights of the best dev evaluation, not the last step
    progress: bool | None = None  # None: a progress bar on a terminal
    device: str | None = None
    # data
    format: str = "auto"
    max_length: int | None = None
    stride: int | None = None  # NER: overlap between windows; QA: doc stride
    marker_style: str = "entity_markers"
    entity_types: list[str] | None = None  # NER: train on these types only
    relation_task: str = "auto"
    discontinuous: str = "first"
    spacy_model: str | None = None  # for documents that need sentences/tokens
    max_answer_length: int = 30
    n_best: int = 20
    # model
    layers: int = 4  # scratch models only: layers, hidden, heads, ffn, max_positions
    hidden: int = 256
    heads: int = 4
    ffn: int | None = None
    max_positions: int = 512
    dropout: float | None = None  # None: the model config's own (0.1)
    vocab: str | None = None
    vocab_size: int = 8000  # size of the vocabulary trained for a scratch model without --vocab
    lower_case: bool | None = None
    checkpoint_version: float | None = None

    def resolved(self, task: str) -> RunConfig:
        """A copy with the task defaults filled in and every value checked."""
        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
        values = asdict(self)
        for key, value in TASK_DEFAULTS[task].items():
            if values[key] is None:
                values[key] = value
        out = RunConfig(**values)
        out.validate(task)
        return out

    def validate(self, task: str) -> None:
        checks = [
            ("learning_rate", self.learning_rate is None or self.learning_rate > 0, "must be > 0"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("grad_accum", self.grad_accum >= 1, "must be >= 1"),
            ("warmup_ratio", 0.0 <= self.warmup_ratio < 1.0, "must be in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("precision", self.precision in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
            ("eval_every", self.eval_every is None or self.eval_every >= 1, "must be >= 1"),
            ("patience", self.patience is None or self.patience >= 1, "must be >= 1"),
            ("save_every", self.save_every is None or self.save_every >= 1, "must be >= 1"),
            ("max_length", self.max_length is None or self.max_length >= 8, "must be >= 8"),
            ("stride", self.stride is None or self.stride >= 0, "must be >= 0"),
            ("marker_style", self.marker_style in MARKER_STYLES, f"must be one of {', '.join(MARKER_STYLES)}"),
            (
                "relation_task",
                self.relation_task in RELATION_TASK_CHOICES,
                f"must be one of {', '.join(RELATION_TASK_CHOICES)}",
            ),
            ("discontinuous", self.discontinuous in ("first", "outer"), "must be 'first' or 'outer'"),
            ("layers", self.layers >= 1, "must be >= 1"),
            ("hidden", self.hidden >= 1, "must be >= 1"),
            ("heads", self.heads >= 1 and self.hidden % self.heads == 0, f"must divide hidden ({self.hidden})"),
            ("dropout", self.dropout is None or 0.0 <= self.dropout < 1.0, "must be in [0, 1)"),
            ("vocab_size", self.vocab_size > 10, "must be > 10"),
            (
                "max_positions",
                self.max_length is None or self.max_positions >= self.max_length,
                f"must be >= max_length ({self.max_length})",
            ),
        ]
        for key, ok, message in checks:
            if not ok:
                raise ConfigError(f"config key {key!r} = {getattr(self, key)!r}: {message}")
        if (
            task == "qa"
            and self.stride is not None
            and self.max_length is not None
            and self.stride >= self.max_length // 2
        ):
            raise ConfigError(
                f"config key 'stride' = {self.stride}: the QA doc stride must be below half of max_length ({self.max_length})"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


KEYS = tuple(f.name for f in fields(RunConfig))
_HINTS = get_type_hints(RunConfig)


def _canonical(key: str) -> str:
    name = key.strip().replace("-", "_")
    return ALIASES.get(name, name)


def _unknown(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(_canonical(key), KEYS + tuple(ALIASES), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"{where}: unknown config key {key!r}{hint}; known keys: {', '.join(KEYS)}")


def coerce_value(key: str, value: Any, where: str) -> Any:
    """`value` converted to the type of config key `key`; ConfigError naming the key when it cannot be."""
    hint = _HINTS[key]
    args = getattr(hint, "__args__", ())
    optional = type(None) in args
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null") and optional):
        if optional:
            return None
        raise ConfigError(f"{where}: config key {key!r} cannot be empty")
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    bad = ConfigError(f"{where}: config key {key!r} expects {getattr(base, '__name__', base)}, got {value!r}")
    origin = getattr(base, "__origin__", None)
    if origin is list:
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            items = [str(v) for v in value]
        else:
            raise bad
        if not items:
            raise ConfigError(f"{where}: config key {key!r} is an empty list")
        return items
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad
    if base is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        raise bad
    if base is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    raise bad  # pragma: no cover - every field type is handled above


def flatten(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Canonical key -> value of a config mapping, sections (`train`, `data`, `model`) flattened."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where}: config keys must be strings, got {key!r}")
        if key in SECTIONS and isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                name = _canonical(str(sub_key))
                if name not in KEYS:
                    raise _unknown(f"{key}.{sub_key}", where)
                out[name] = sub_value
            continue
        name = _canonical(key)
        if name not in KEYS:
            raise _unknown(key, where)
        if name in out:
            raise ConfigError(f"{where}: config key {name!r} is given twice")
        out[name] = value
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML (.yaml/.yml) or TOML (.toml) config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from exc
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
        data = {} if data is None else data
    else:
        raise ConfigError(f"{p}: config files must be .yaml, .yml or .toml")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config file must hold a mapping of keys to values")
    return data


def build_config(config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults < `config_file` < `overrides` (None values in `overrides` mean "not given")."""
    values: dict[str, Any] = {}
    if config_file is not None:
        where = str(config_file)
        for key, value in flatten(read_config_file(config_file), where).items():
            values[key] = coerce_value(key, value, where)
    for key, value in flatten(dict(overrides or {}), "command line").items():
        if value is not None:
            values[key] = coerce_value(key, value, "command line")
    return RunConfig(**values)


__all__ = [
    "KEYS",
    "MARKER_STYLES",
    "RunConfig",
    "TASKS",
    "TASK_DEFAULTS",
    "build_config",
    "coerce_value",
    "flatten",
    "read_config_file",
]
