"""`biomed annotate`: `--precision` reaches the models, is recorded, and decides what a rerun redoes;
`--compile` without a C++ compiler is refused at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corpora.dataset.store import DatasetStore, shard_name_for
from pipelines.cli import main


def test_precision_bf16_is_recorded_and_a_rerun_in_another_precision_redoes_the_shard(
    samples: Path,
    tmp_path: Path,
    tiny_models: dict[str, str],
    prefect_harness: None,
    capsys: pytest.CaptureFixture,
) -> None:
    src = tmp_path / "CDR_dev_sample.PubTator.txt"
    shutil.copy(samples / "bc5cdr" / "CDR_dev_sample.PubTator.txt", src)
    out = tmp_path / "annotated"
    args = ["annotate", str(src), "--ner", tiny_models["ner"], "--out", str(out), "--no-progress"]
    assert main([*args, "--precision", "bf16"]) == 0
    assert "precision: bf16" in capsys.readouterr().out
    entry = DatasetStore(out).entries()[shard_name_for(src)]
    assert entry.producer["precision"] == "bf16" and entry.entities
    assert main([*args, "--precision", "bf16"]) == 0
    assert capsys.readouterr().out.startswith("nothing to do: 1 shard(s)")
    assert main(args) == 0  # auto: fp32 on this CPU, so the shard is annotated again
    assert "1 written" in capsys.readouterr().out
    assert "precision" not in DatasetStore(out).entries()[shard_name_for(src)].producer
    with pytest.raises(SystemExit) as refused:
        main([*args, "--precision", "fp16"])  # fp16 needs a GPU: not offered
    assert refused.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err


def test_compile_without_a_cpp_compiler_is_refused_before_anything_is_written(
    samples: Path, tmp_path: Path, tiny_models: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    import torch._inductor.config as inductor_config

    out = tmp_path / "annotated"
    src = str(samples / "bc5cdr" / "CDR_dev_sample.PubTator.txt")
    with inductor_config.patch({"cpp.cxx": (None, "no-such-compiler")}):
        code = main(["annotate", src, "--ner", tiny_models["ner"], "--out", str(out), "--no-progress", "--compile"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --compile on a CPU needs a C++ compiler") and "no-such-compiler" in err[-1]
    assert not out.exists()
