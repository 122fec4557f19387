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
exactly the bytes its header states. Sizes are checked from the headers before a byte is read: a
config, version or vocabulary member (text) may hold at most `MAX_TEXT_MEMBER_BYTES`, anything else
`MAX_MEMBER_BYTES`; a weights member must start like a PyTorch checkpoint (zip or pickle) before
the rest is read. A 3 GB member of zeros (14 MB compressed) is thus refused after its header or
its first bytes, not after 3 GB of memory.

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
MAX_TEXT_MEMBER_BYTES = 64 << 20  # a BERT vocab is 0.2-1 MB, a model_config.yaml a few kB
TEXT_SUFFIXES = (".yaml", ".yml", ".json", ".txt", ".vocab")
WEIGHT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip format; the legacy format starts with a pickle
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

    Links and device members are refused outright: a real `.nemo` holds plain files only. The first
    call walks the archive once, checking every member as its header is read (`_check_member`), so
    an implausible member is refused before the walk decompresses its data to reach the next one."""
    hits = []
    try:
        members = _checked_members(tar, where)
    except (tarfile.TarError, OSError, EOFError) as exc:
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


def _checked_members(tar: tarfile.TarFile, where: Path) -> list[tarfile.TarInfo]:
    if getattr(tar, "_biomed_checked", False):
        return tar.getmembers()
    while (member := tar.next()) is not None:
        if member.isfile():
            _check_member(tar, member, where)
    tar._biomed_checked = True  # type: ignore[attr-defined]
    return tar.getmembers()


def _check_member(tar: tarfile.TarFile, member: tarfile.TarInfo, where: Path) -> None:
    """Header size within its limit; a weights member's first bytes those of a PyTorch checkpoint."""
    _check_size(where, member.name, member.size)
    if member.size and member.name.lower().endswith(WEIGHT_SUFFIXES):
        handle = tar.extractfile(member)
        head = handle.read(4) if handle is not None else b""
        if not head.startswith(TORCH_MAGIC):
            raise ModelError(
                f"{where}: .nemo member {member.name} does not start like a PyTorch checkpoint (first bytes "
                f"{head.hex(' ')}); the archive is damaged or not a NeMo model"
            )


def read_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, where: Path) -> bytes:
    """The bytes of a regular member, exactly as many as its header states, once its header size
    (and, for a weights member, its first bytes) are plausible."""
    handle = tar.extractfile(member)
    if handle is None:
        raise ModelError(f"{where}: .nemo member {member.name} cannot be read")
    try:
        _check_member(tar, member, where)
        data = handle.read(member.size + 1)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelError(
            f"{where}: .nemo member {member.name} is cut short (its header says {member.size} bytes): {exc}"
        ) from exc
    if len(data) != member.size:
        raise ModelError(f"{where}: .nemo member {member.name} holds {len(data)} bytes, its header says {member.size}")
    return data


def _is_text(name: str) -> bool:
    return name.lower().endswith(TEXT_SUFFIXES)


def _check_size(where: Path, name: str, size: int) -> None:
    limit = MAX_TEXT_MEMBER_BYTES if _is_text(name) else MAX_MEMBER_BYTES
    if size > limit:
        kind = "a text member (config, version, vocabulary)" if limit == MAX_TEXT_MEMBER_BYTES else "a member"
        raise ModelError(
            f"{where}: member {name} states {size} bytes, more than {kind} of a real checkpoint holds "
            f"({limit} bytes); refused before reading it"
        )


def load_member(data: bytes, where: Path, *, trust: bool) -> Any:
    return load_checkpoint(io.BytesIO(data), where, trust=trust)


__all__ = [
    "MAX_MEMBER_BYTES",
    "MAX_TEXT_MEMBER_BYTES",
    "UnsafeCheckpointError",
    "allowed_globals",
    "is_torch_zip",
    "load_checkpoint",
    "load_member",
    "read_tar_member",
    "tar_member",
    "zip_member",
]
