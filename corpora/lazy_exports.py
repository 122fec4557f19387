"""Re-exports that import their module on first use (PEP 562), for packages whose modules are heavy.

Why: a sub-package's `__init__` runs before any of its modules, so eager re-exports would make
`import biomodels.training.config` (what `biomed --help` needs) load torch, and make a preprocessing
worker load spaCy (and torch through thinc) before it can hide torch. Names resolve the same way;
only the import moves to the first attribute access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, where `exports` maps a name to its submodule."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
