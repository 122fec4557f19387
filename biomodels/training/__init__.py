"""Training: the settings (`config`), the loop (`trainer`, `state`, `precision`, `distributed`),
metrics and evaluation (`metrics`, `evaluation`), plots, and the `train`/`evaluate` API (`api`).

The names below import their module (and torch) on first use (`corpora.lazy_exports` says why):
`biomed --help` reads the settings without loading torch.
"""

from corpora.lazy_exports import lazy_exports

_EXPORTS = {
    "TrainConfig": "config",
    "Trainer": "trainer",
    "evaluate": "api",
    "settings_table": "config",
    "train": "api",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
