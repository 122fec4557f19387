"""Safe loading of user checkpoints: real Megatron/NeMo contents load, a pickle payload never runs.

Each container (.pt, NGC zip, .nemo) gets a payload that would create a file while unpickling;
the file must not appear and the error must name the global and the option that loads it anyway.
"""

from __future__ import annotations

import decimal
import io
import os
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from biomodels.models.checkpoint_conversion import convert_checkpoint
from biomodels.models.checkpoint_files import UnsafeCheckpointError, load_checkpoint, read_tar_member, tar_member
from corpora.errors import ModelError
from tests.helpers import megatron_fixtures as fx


class Payload:
    """Unpickling this runs `os.system` (a crafted checkpoint's trick)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickled(obj: object, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def crafted(marker: Path) -> dict:
    """A checkpoint that looks real (weights of the tiny model) with the payload in `args`."""
    w = fx.make_weights(seed=21)
    return {
        "model": {"language_model": {"embedding": {"word_embeddings": {"weight": w.word}}}},
        "args": Payload(marker),
    }


@pytest.mark.parametrize("container", ["pt", "legacy-pt", "ngc-zip", "nemo"])
def test_payload_in_each_container_is_refused_without_running(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    blob = pickled(crafted(marker), legacy=container == "legacy-pt")
    if container in ("pt", "legacy-pt"):
        src = tmp_path / "model_optim_rng.pt"
        src.write_bytes(blob)
    elif container == "ngc-zip":
        src = tmp_path / "megatron_bert_345m_v0.1_uncased.zip"
        with zipfile.ZipFile(src, "w") as zf:
            zf.writestr("release/mp_rank_00/model_optim_rng.pt", blob)
    else:
        src = fx.write_tar(
            tmp_path / "evil.nemo", [("./model_config.yaml", b"num_layers: 2\n"), ("./model_weights.ckpt", blob)]
        )
    fx.write_vocab(tmp_path / "vocab.txt")
    with pytest.raises(UnsafeCheckpointError, match=r"system.*--trust-checkpoint") as info:
        convert_checkpoint(src, tmp_path / "hf", preset="megatron-bert-uncased")
    assert "posix.system" in str(info.value) or "os.system" in str(info.value)
    assert not marker.exists()


def test_real_contents_load_restricted(tmp_path: Path) -> None:
    """What Megatron-LM releases hold besides tensors: args, numpy and torch RNG state, optimizer."""
    src = fx.save_ngc_release_zip(tmp_path / "release.zip", fx.make_weights(seed=22))
    with zipfile.ZipFile(src) as zf:
        data = zf.read("release/mp_rank_00/model_optim_rng.pt")
    obj = load_checkpoint(io.BytesIO(data), src)
    assert obj["args"].num_attention_heads == fx.HEADS and obj["args"].params_dtype is torch.float16
    assert obj["np_rng_state"][0] == "MT19937" and obj["np_rng_state"][1].shape == (624,)


def test_other_globals_need_trust_and_name_the_option(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "odd.pt"
    src.write_bytes(pickled({"lr": decimal.Decimal("0.1")}))
    with pytest.raises(UnsafeCheckpointError, match=r"decimal.Decimal.*trust_checkpoint=True"):
        load_checkpoint(src, src)
    assert load_checkpoint(src, src, trust=True) == {"lr": decimal.Decimal("0.1")}
    assert "unrestricted unpickler" in caplog.text


def test_megatron_classes_get_their_own_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkgs" / "megatron"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("class FP16Module:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    import megatron  # noqa: PLC0415  (the fake package above)

    src = tmp_path / "model_optim_rng.pt"
    src.write_bytes(pickled({"model": megatron.FP16Module()}))
    monkeypatch.delitem(sys.modules, "megatron")
    with pytest.raises(UnsafeCheckpointError, match=r"pickles megatron.FP16Module, a class of the megatron package"):
        load_checkpoint(src, src)


def test_nemo_members_links_and_sizes(tmp_path: Path) -> None:
    import tarfile

    evil = tmp_path / "link.nemo"
    with tarfile.open(evil, "w:") as tar:
        info = tarfile.TarInfo("./model_config.yaml")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with tarfile.open(evil) as tar, pytest.raises(ModelError, match="is a link, not a file; refused"):
        tar_member(tar, "model_config.yaml", evil)

    short = tmp_path / "short.nemo"
    fx.write_tar(short, [("./model_config.yaml", b"num_layers: 2\n")])
    raw = bytearray(short.read_bytes())
    raw[124:136] = b"%011o\0" % 4000  # the header now claims 4000 bytes; the archive holds 512
    checksum = sum(raw[:148]) + 8 * 32 + sum(raw[156:512])
    raw[148:156] = b"%06o\0 " % checksum
    short.write_bytes(bytes(raw[:1024]))
    with pytest.raises(ModelError, match="cut short"), tarfile.open(short) as tar:
        read_tar_member(tar, tar_member(tar, "model_config.yaml", short), short)


def zero_member_nemo(path: Path, small: list[tuple[str, bytes]], big_name: str, big_size: int) -> Path:
    """A gzip'd .nemo whose last member is `big_size` zero bytes, written in milliseconds: after the
    big member's header everything is zeros (its data, then the end-of-archive blocks), so the file
    is the compressed head followed by one precompressed MiB of zeros repeated (gzip members may be
    concatenated). 3 GiB take 3 MB, as a real 3 GB zero member takes 14 MB at level 6."""
    import gzip
    import tarfile

    def header(name: str, size: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")

    head = b""
    for name, data in small:
        head += header(name, len(data)) + data + bytes(-len(data) % 512)
    head += header(big_name, big_size)
    zeros = big_size + 1024
    mib = gzip.compress(bytes(1 << 20), compresslevel=9)
    with open(path, "wb") as out:
        out.write(gzip.compress(head))
        for _ in range(zeros >> 20):
            out.write(mib)
        out.write(gzip.compress(bytes(zeros % (1 << 20))))
    return path


@pytest.mark.parametrize(
    ("small", "big", "message"),
    [
        ([], "./model_config.yaml", "member ./model_config.yaml states 3221225472 bytes, more than a text member"),
        (
            [("./model_config.yaml", b"num_layers: 2\n")],
            "./model_weights.ckpt",
            "member ./model_weights.ckpt does not start like a PyTorch checkpoint (first bytes 00 00 00 00)",
        ),
    ],
)
def test_a_3gb_zero_member_is_refused_without_reading_it(tmp_path: Path, small, big: str, message: str) -> None:
    """Issue 14, item 11: a .nemo with a 3 GB member was read whole (3.3 GB RSS)."""
    import tracemalloc

    from biomodels.models.megatron_checkpoint import load_nemo_archive

    nemo = zero_member_nemo(tmp_path / "big.nemo", small, big, 3 << 30)
    assert nemo.stat().st_size < 4 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ModelError) as err:
            load_nemo_archive(nemo)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message in str(err.value)
    assert peak < 64 << 20  # Python allocations: a few buffers of the tar reader, not the member
