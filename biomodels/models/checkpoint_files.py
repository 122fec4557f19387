"""Opening checkpoint files a user downloaded, without running code they may hide.

A PyTorch checkpoint is a pickle, and a pickle can call any Python function while it loads. So every
user checkpoint goes through `torch.load(weights_only=True)` with an explicit allow-list of what real
Megatron-LM and NeMo files contain besides tensors: `argparse.Namespace` (Megatron-LM's `args`) and
numpy's array reconstruction (`np_rng_state`). A file that asks for anything else is refused with an
`UnsafeCheckpointError` naming the global it asked for; `trust=True` (`--trust-checkpoint`) loads it
unrestricted, with a warning, for a file the user trusts.

Containers are read by name, never extracted to disk: members of a zip (NGC's
`megatron_bert_345m_v0.1_uncased.zip` holds `release/mp_rank_00/model_optim_rng.pt`) and of a
`.nemo` tar are read into memory, links and special members are refused, and a member must hold
exactly the bytes its header states.

Tested in `tests/biomodels/models/test_checkpoint_files.py`.
"""

from __future__ import annotations

import argparse
import io
import logging
import pickle
import re
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from corpora.errors import ModelError

log = logging.getLogger(__name__)

TRUST_HINT = "--trust-checkpoint (CLI) or trust_checkpoint=True (Python)"
MAX_MEMBER_BYTES = 8 << 30  # a 345m checkpoint with optimizer state is about 4 GB; a config or vocab is tiny
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", re.S)


class UnsafeCheckpointError(ModelError):
    """A checkpoint asked for a Python object outside the allow-list: it was not loaded."""


def allowed_globals() -> list[Any]:
    """What real Megatron-LM / NeMo checkpoints pickle besides tensors and plain containers."""
    from numpy.core.multiarray import _reconstruct, scalar

    allowed: list[Any] = [argparse.Namespace, np.ndarray, np.dtype, _reconstruct, scalar]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles dtypes by their classes
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")]
    return allowed


def load_checkpoint(source: str | Path | IO[bytes], where: Path, *, trust: bool = False) -> Any:
    """`torch.load` of a user checkpoint onto the CPU: restricted to the allow-list unless `trust`."""
    if trust:
        log.warning("%s: loading with the unrestricted unpickler (%s): its code runs", where, TRUST_HINT)
        return _load(source, where, weights_only=False)
    with torch.serialization.safe_globals(allowed_globals()):
        return _load(source, where, weights_only=True)


def _load(source: str | Path | IO[bytes], where: Path, *, weights_only: bool) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        if not weights_only:
            raise ModelError(f"{where}: cannot read as a PyTorch checkpoint: {exc}") from exc
        raise _refusal(str(exc), where) from None
    except Exception as exc:  # zip, EOF, legacy-format errors of every kind
        raise ModelError(f"{where}: cannot read as a PyTorch checkpoint: {exc}") from exc


def _refusal(message: str, where: Path) -> ModelError:
    found = _GLOBAL.search(message)
    name = found.group(1) if found else None
    if name and name.split(".")[0] in ("megatron", "nemo", "apex"):
        return UnsafeCheckpointError(
            f"{where}: the checkpoint pickles {name}, a class of the {name.split('.')[0]} package, so it cannot be "
            "read without that code (and without running it). Re-save its weights from an environment that has "
            "it (torch.save of the state dict only), or, if you trust the file, load it with " + TRUST_HINT
        )
    if name:
        return UnsafeCheckpointError(
            f"{where}: refused to load: the checkpoint asks for the Python object {name}, which real Megatron-LM "
            f"and NeMo checkpoints do not contain (a pickle can run code while it loads). If you trust the file, "
            f"load it with {TRUST_HINT}"
        )
    detail = _DETAIL.search(message)
    return UnsafeCheckpointError(
        f"{where}: cannot read as a PyTorch checkpoint: the restricted unpickler stopped "
        f"({detail.group(1).strip() if detail else 'no detail'}): a damaged file, or one that needs " + TRUST_HINT
    )


# ------------------------------------------------------------------------------------- containers


def is_torch_zip(path: Path) -> bool:
    """A zip written by `torch.save` (its members sit in one folder with a `data.pkl`)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(name.count("/") == 1 and name.endswith("/data.pkl") for name in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def zip_member(path: Path, suffix: str) -> tuple[str, bytes] | None:
    """The one member of zip `path` whose name ends with `suffix`, read into memory (None if absent)."""
    try:
        with zipfile.ZipFile(path) as zf:
            hits = [i for i in zf.infolist() if not i.is_dir() and i.filename.endswith(suffix)]
            if len(hits) > 1:
                names = ", ".join(sorted(i.filename for i in hits))
                raise ModelError(f"{path}: several {suffix} in the zip ({names}); merge model-parallel ranks first")
            if not hits:
                return None
            info = hits[0]
            _check_size(path, info.filename, info.file_size)
            return info.filename, zf.read(info)  # zipfile checks the CRC and the stated size
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{path}: not a readable zip archive: {exc}") from exc


def tar_member(tar: tarfile.TarFile, suffix: str, where: Path) -> tarfile.TarInfo | None:
    """The one regular member of a `.nemo` tar whose file name ends with `suffix` (None when absent).

    Links and device members are refused outright: a real `.nemo` holds plain files only."""
    hits = []
    try:
        members = tar.getmembers()
    except (tarfile.TarError, OSError) as exc:
        raise ModelError(f"{where}: the .nemo archive is cut short or damaged: {exc}") from exc
    for member in members:
        if Path(member.name).name.endswith(suffix):
            if not member.isfile():
                kind = "link" if member.issym() or member.islnk() else "special member"
                raise ModelError(f"{where}: .nemo member {member.name} is a {kind}, not a file; refused")
            hits.append(member)
    if len(hits) > 1:
        names = ", ".join(sorted(m.name for m in hits))
        raise ModelError(f"{where}: several {suffix} in the .nemo archive ({names}); merge tensor-parallel ranks first")
    return hits[0] if hits else None


def read_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, where: Path) -> bytes:
    """The bytes of a regular member, exactly as many as its header states."""
    _check_size(where, member.name, member.size)
    handle = tar.extractfile(member)
    if handle is None:
        raise ModelError(f"{where}: .nemo member {member.name} cannot be read")
    try:
        data = handle.read(member.size + 1)
    except (tarfile.TarError, OSError) as exc:
        raise ModelError(
            f"{where}: .nemo member {member.name} is cut short (its header says {member.size} bytes): {exc}"
        ) from exc
    if len(data) != member.size:
        raise ModelError(f"{where}: .nemo member {member.name} holds {len(data)} bytes, its header says {member.size}")
    return data


def _check_size(where: Path, name: str, size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise ModelError(f"{where}: member {name} states {size} bytes, more than any real checkpoint member")


def load_member(data: bytes, where: Path, *, trust: bool) -> Any:
    return load_checkpoint(io.BytesIO(data), where, trust=trust)


__all__ = [
    "MAX_MEMBER_BYTES",
    "UnsafeCheckpointError",
    "allowed_globals",
    "is_torch_zip",
    "load_checkpoint",
    "load_member",
    "read_tar_member",
    "tar_member",
    "zip_member",
]
