"""The settings of a training run: one dataclass, `TrainConfig`, whose fields carry their help.

The `biomed train` options, the config-file keys, README's settings table (`settings_table`) and
what the trainer reads all come from it. Precedence, lowest first: the defaults below (some depend
on the task, e.g. `max_length` is 128 for NER, 256 for RE, 384 for QA), then the config file, then
the command line. A key that does not
exist, or a value of the wrong type, raises ConfigError naming the key and the file, so a typo such
as `learning_rte` fails loudly instead of training with the default.

A config file is a flat mapping of these keys; for readability it may group them in the sections
`training` (or `train`), `data` and `model` (one level), and `-` may stand for `_` (`batch-size`). `lr` is an alias
of `learning_rate`.

A config file is read defensively: it must be UTF-8 (else the byte offset is named), YAML anchors
and aliases are refused (a config never needs them, and a 300-byte alias bomb otherwise expands to
gigabytes), a key given twice is an error in YAML, JSON and TOML alike (a section's key too), and
numbers must be finite (`.inf`, `nan` are refused with the key named).
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from biomodels.data.re_candidates import RELATION_TASKS
from biomodels.data.re_marking import MARKER_STYLES
from biomodels.models.presets import ATTENTION_BACKENDS
from corpora.errors import ConfigError

TASKS = ("ner", "re", "qa")
SECTIONS = ("train", "training", "data", "model")  # optional groups in a config file
ALIASES = {"lr": "learning_rate", "lowercase": "lower_case", "doc_stride": "stride"}
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
RELATION_TASK_CHOICES = ("auto", *RELATION_TASKS)  # auto: chosen from the entity types of the data

# a model trained from random weights needs a larger step size and more passes than fine-tuning
# (BC5CDR, 4 x 256 scratch model: 0.35 entity F1 with the fine-tuning defaults; see RESULTS.md)
SCRATCH_DEFAULTS: dict[str, Any] = {"learning_rate": 1e-3, "epochs": 10}
GENERAL_DEFAULTS: dict[str, Any] = {"epochs": 3}

# task-dependent defaults applied by `TrainConfig.resolved` where a key is left as None
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "ner": {"max_length": 128, "stride": 32, "learning_rate": 5e-5},
    "re": {"max_length": 256, "stride": 0, "learning_rate": 2e-5},
    "qa": {"max_length": 384, "stride": 128, "learning_rate": 3e-5},
    # masked-LM pretraining (`biomed pretrain`); its learning rate depends on the start (see pretrain)
    "mlm": {"max_length": 128, "stride": 0},
}


def setting(
    default: Any, help: str, *, group: str = "training", flags: tuple[str, ...] = (), choices: tuple[str, ...] = ()
) -> Any:
    """A field of `TrainConfig`: its default and the help text that the CLI, the config-file
    reference and README's table all show. `flags` are the command-line spellings (default
    `--name-with-dashes`)."""
    return field(default=default, metadata={"help": help, "group": group, "flags": flags, "choices": choices})


@dataclass
class TrainConfig:
    """Every setting of a training run, the one source of the `biomed train` options, the config
    file keys and the README table (see the module docstring for where values come from)."""

    # training
    learning_rate: float | None = setting(
        None,
        "peak learning rate (default by task: NER 5e-5, RE 2e-5, QA 3e-5; scratch 1e-3; pretrain 5e-4 scratch, "
        "1e-4 continued)",
        flags=("--lr", "--learning-rate"),
    )
    epochs: int | None = setting(None, "passes over the training data (default 3; scratch 10)")
    max_steps: int | None = setting(None, "optimizer steps; overrides epochs")
    batch_size: int = setting(32, "examples per device per micro-batch")
    eval_batch_size: int = setting(64, "examples per forward pass in dev evaluation")
    grad_accum: int = setting(1, "micro-batches per optimizer step")
    warmup_ratio: float = setting(0.1, "fraction of the steps with a linear warmup, then linear decay to 0")
    weight_decay: float = setting(0.01, "AdamW weight decay (not on biases and LayerNorms)")
    max_grad_norm: float | None = setting(1.0, "gradient clipping norm (none: no clipping)")
    precision: str = setting(
        "auto", "auto: bf16 on GPUs that have it, fp16 with a GradScaler on older ones, fp32 on CPU", choices=PRECISIONS
    )
    seed: int = setting(42, "random seed of weights, shuffling and dropout")
    eval_every: int | None = setting(None, "evaluate on the dev data every N steps (none: at the end of each epoch)")
    patience: int | None = setting(None, "stop after N evaluations without improvement (none: never)")
    load_best: bool = setting(True, "keep the weights of the best dev evaluation, not those of the last step")
    save_every: int | None = setting(500, "steps between resumable checkpoints (none: only at the end)")
    save_minutes: float | None = setting(
        None, "also write a resumable checkpoint when N minutes have passed since the last one (none: by steps only)"
    )
    log_every: int = setting(10, "log the loss every N steps")
    group_by_length: bool = setting(True, "batches of similar lengths (less padding)")
    mega_batch_mult: int = setting(50, "length grouping sorts within windows of N batches, shuffled")
    num_workers: int = setting(0, "DataLoader worker processes")
    fused_layernorm: bool = setting(True, "on CUDA, swap in apex FusedLayerNorm when apex imports")
    progress: bool | None = setting(None, "progress bar (none: only on a terminal)")
    plot: bool = setting(True, "write training.png (loss and dev metric over steps)")
    device: str | None = setting(None, "cpu, cuda, cuda:1 (none: cuda:LOCAL_RANK when there is a GPU, else cpu)")
    attention: str = setting(
        "sdpa", "sdpa: fused scaled-dot-product kernels; eager: explicit matmul and softmax", choices=ATTENTION_BACKENDS
    )
    compile: bool = setting(False, "torch.compile the encoder (minutes of compiling, then faster steps)")
    # data
    format: str = setting("auto", "input format of the documents (auto: detect; RE also masked-tsv)", group="data")
    max_length: int | None = setting(
        None, "subwords per input (default by task: NER 128, RE 256, QA 384)", group="data"
    )
    stride: int | None = setting(
        None, "NER: overlap of windows in subwords (32); QA: doc stride (128); RE: unused", group="data"
    )
    marker_style: str = setting(
        "entity_markers", "RE: how the two arguments are marked in the input", group="data", choices=MARKER_STYLES
    )
    entity_types: list[str] | None = setting(
        None, "NER: comma-separated entity types to train on (none: all)", group="data"
    )
    relation_task: str = setting(
        "auto", "RE: candidate rules (auto: chosen from the entity types)", group="data", choices=RELATION_TASK_CHOICES
    )
    discontinuous: str = setting(
        "first",
        "NER: a discontinuous entity is tagged by its first or its outer span",
        group="data",
        choices=("first", "outer"),
    )
    spacy_model: str | None = setting(
        None, "scispaCy model for documents without sentences or tokens (none: the rule-based pipeline)", group="data"
    )
    mask_probability: float = setting(0.15, "pretraining: share of words masked (whole-word masking)", group="data")
    held_out_percent: float = setting(
        2.0, "pretraining: percent of the documents held out for the MLM loss and accuracy", group="data"
    )
    max_answer_length: int = setting(30, "QA: longest answer in subwords", group="data")
    n_best: int = setting(20, "QA: start and end candidates considered per window", group="data")
    # model
    layers: int = setting(4, "scratch: transformer layers", group="model")
    hidden: int = setting(256, "scratch: hidden size", group="model")
    heads: int = setting(4, "scratch: attention heads (must divide hidden)", group="model")
    ffn: int | None = setting(None, "scratch: feed-forward size (none: 4 x hidden)", group="model")
    max_positions: int = setting(512, "scratch: position embeddings", group="model")
    dropout: float | None = setting(None, "dropout everywhere in the model (none: the model's own, 0.1)", group="model")
    vocab: str | None = setting(
        None, "vocab.txt (or a folder with one): the scratch vocabulary, or that of a checkpoint", group="model"
    )
    vocab_size: int = setting(8000, "scratch without vocab: size of the WordPiece vocabulary trained", group="model")
    lower_case: bool | None = setting(
        None,
        "--lowercase or --cased input (scratch: cased; pretrained: as the model records)",
        group="model",
        flags=("--lowercase", "--cased"),
    )
    checkpoint_version: float | None = setting(
        None, "fused-QKV layout of a Megatron checkpoint (none: from the checkpoint)", group="model"
    )
    preset: str | None = setting(
        None, "raw checkpoint as --model: the preset giving its architecture and casing", group="model"
    )
    model_config: str | None = setting(
        None, "raw checkpoint as --model: your model's Megatron/NeMo config (JSON or YAML)", group="model"
    )
    gelu: str | None = setting(
        None, "raw checkpoint as --model: the GeLU form (none: from its args)", group="model", choices=("erf", "tanh")
    )
    trust_checkpoint: bool = setting(
        False, "unpickle the checkpoint without the allow-list (only for a file you trust)", group="model"
    )

    def resolved(self, task: str, scratch: bool = False) -> TrainConfig:
        """A copy with the defaults of the task (and of a `scratch` model) filled in, every value checked."""
        if task not in TASK_DEFAULTS:
            raise ConfigError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
        values = asdict(self)
        layers = [SCRATCH_DEFAULTS] if scratch else []
        for defaults in (*layers, TASK_DEFAULTS[task], GENERAL_DEFAULTS):
            for key, value in defaults.items():
                if values[key] is None:
                    values[key] = value
        out = TrainConfig(**values)
        out.validate(task)
        return out

    def validate(self, task: str | None = None) -> None:
        """ConfigError naming the first setting whose value is out of range (`.key` is that setting)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise _bad_value(f.name, value, "must be a finite number")
        checks = [
            ("learning_rate", self.learning_rate is None or self.learning_rate > 0, "must be > 0"),
            ("epochs", self.epochs is None or self.epochs >= 1, "must be >= 1"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("grad_accum", self.grad_accum >= 1, "must be >= 1"),
            ("warmup_ratio", 0.0 <= self.warmup_ratio < 1.0, "must be in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("max_grad_norm", self.max_grad_norm is None or self.max_grad_norm > 0, "must be > 0"),
            ("log_every", self.log_every >= 1, "must be >= 1"),
            ("num_workers", self.num_workers >= 0, "must be >= 0"),
            ("mega_batch_mult", self.mega_batch_mult >= 1, "must be >= 1"),
            ("precision", self.precision in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
            ("eval_every", self.eval_every is None or self.eval_every >= 1, "must be >= 1"),
            ("patience", self.patience is None or self.patience >= 1, "must be >= 1"),
            ("save_every", self.save_every is None or self.save_every >= 1, "must be >= 1"),
            ("save_minutes", self.save_minutes is None or self.save_minutes > 0, "must be > 0"),
            ("mask_probability", 0 < self.mask_probability < 1, "must be in (0, 1)"),
            ("held_out_percent", 0 <= self.held_out_percent < 100, "must be in [0, 100)"),
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
            ("gelu", self.gelu in (None, "erf", "tanh"), "must be erf or tanh"),
            ("vocab_size", self.vocab_size > 10, "must be > 10"),
            (
                "max_positions",
                self.max_length is None or self.max_positions >= self.max_length,
                f"must be >= max_length ({self.max_length})",
            ),
        ]
        for key, ok, message in checks:
            if not ok:
                raise _bad_value(key, getattr(self, key), message)
        if (
            task == "qa"
            and self.stride is not None
            and self.max_length is not None
            and self.stride >= self.max_length // 2
        ):
            raise ConfigError(
                f"config key 'stride' = {self.stride}: the QA doc stride must be below half of "
                f"max_length ({self.max_length})"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


KEYS = tuple(f.name for f in fields(TrainConfig))


def _bad_value(key: str, value: Any, message: str) -> ConfigError:
    error = ConfigError(f"config key {key!r} = {value!r}: {message}")
    error.key = key  # type: ignore[attr-defined]  # which setting, so build_config can name its source
    return error


def option_flags(f: Field) -> tuple[str, ...]:
    """The command-line spellings of setting `f` (`--max-steps` for `max_steps` unless it says otherwise)."""
    return f.metadata["flags"] or (f"--{f.name.replace('_', '-')}",)


def _shown(value: Any) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def settings_table() -> str:
    """The Markdown table of every setting (README's reference), built from `TrainConfig`'s fields."""
    rows = ["| key | option | default | what it does |", "| --- | --- | --- | --- |"]
    for f in fields(TrainConfig):
        flags = " ".join(f"`{flag}`" for flag in option_flags(f))
        help = f.metadata["help"] + (f" ({', '.join(f.metadata['choices'])})" if f.metadata["choices"] else "")
        rows.append(f"| `{f.name}` | {flags} | {_shown(f.default)} | {help} |")
    return "\n".join(rows)


_HINTS = get_type_hints(TrainConfig)


def _canonical(key: str) -> str:
    name = key.strip().replace("-", "_")
    return ALIASES.get(name, name)


def _unknown(key: str, where: str) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]  # a grouped key (`training.epoch`) is matched by its own name
    close = difflib.get_close_matches(_canonical(leaf), KEYS + tuple(ALIASES), n=3)
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
            number = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(number):
            raise ConfigError(f"{where}: config key {key!r} must be a finite number, got {value!r}")
        return number
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
                if name in out:
                    raise ConfigError(f"{where}: config key {name!r} is given twice (again as {key}.{sub_key})")
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
    """The raw mapping of a YAML (.yaml/.yml), TOML (.toml) or JSON (.json) config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ConfigError(f"{p}: config files must be .yaml, .yml, .toml or .json")
    size = p.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{p}: {size} bytes, more than a config file holds ({MAX_CONFIG_BYTES}); is it the right file?"
        )
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {exc.start}, line {line}: 0x{raw[exc.start]:02x}); save it as UTF-8"
        ) from None
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)  # a key given twice is a TOMLDecodeError
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from exc
    elif suffix == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
        except _Refused as exc:
            raise ConfigError(f"{p}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{p}: not valid JSON ({exc})") from exc
    else:
        data = _load_yaml(text, p)
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config file must hold a mapping of keys to values")
    return data


MAX_CONFIG_BYTES = 1 << 20  # a config of every key with comments is a few kB


class _Refused(ValueError):
    """Something a config file may not hold (a key twice, an alias); the message says what and where."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"key {key!r} is given twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number a config may hold")


def _load_yaml(text: str, p: Path) -> Any:
    """`yaml.safe_load` without anchors, aliases or repeated keys."""
    import yaml

    class ConfigLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
                sign = "*" if kind == "alias" else "&"
                raise _Refused(
                    f"line {event.start_mark.line + 1}: YAML {kind} {sign}{event.anchor} refused (config files "
                    "take plain values; write the value out)"
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise _Refused(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    try:
        data = yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise ConfigError(f"{p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    return {} if data is None else data


def build_config(config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Defaults < `config_file` < `overrides` (None values in `overrides` mean "not given"); every
    value checked at once, a bad one named with where it came from."""
    values: dict[str, Any] = {}
    given: dict[str, str] = {}
    if config_file is not None:
        where = str(config_file)
        for key, value in flatten(read_config_file(config_file), where).items():
            values[key] = coerce_value(key, value, where)
            given[key] = where
    for key, value in flatten(dict(overrides or {}), "command line").items():
        if value is not None:
            values[key] = coerce_value(key, value, "command line")
            given[key] = "command line"
    config = TrainConfig(**values)
    try:
        config.validate()
    except ConfigError as exc:
        source = given.get(getattr(exc, "key", ""), "")
        if not source:
            raise
        raise ConfigError(f"{source}: {exc}") from None
    return config


__all__ = [
    "KEYS",
    "PRECISIONS",
    "RELATION_TASK_CHOICES",
    "TASKS",
    "TASK_DEFAULTS",
    "TrainConfig",
    "build_config",
    "coerce_value",
    "flatten",
    "option_flags",
    "read_config_file",
    "settings_table",
]
