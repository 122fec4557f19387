"""DDP: two gloo ranks on CPU with batch 4 each end where one process with batch 8 ends."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.paths import ROOT as REPO

WORKER = REPO / "tests" / "helpers" / "ddp_worker.py"


def load_worker():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_two_ranks_match_one_process_with_the_global_batch(tmp_path, monkeypatch):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    ddp_dir = tmp_path / "ddp"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(WORKER),
            str(ddp_dir),
            "4",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # the 1-process reference runs here meanwhile (the launcher spends most time importing)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    before = torch.get_num_threads()
    try:
        single = load_worker().train(tmp_path / "single", 8)
    finally:
        torch.set_num_threads(before)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    assert "'world_size': 2" in output and single["world_size"] == 1

    a = load_file(str(tmp_path / "single" / "final.safetensors"))
    b = load_file(str(ddp_dir / "final.safetensors"))
    initial = load_worker().build_model().state_dict()
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], initial[k]) for k in a)  # training moved the weights
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5, msg=k)

    m1 = json.loads((tmp_path / "single" / "metrics.json").read_text())
    m2 = json.loads((ddp_dir / "metrics.json").read_text())
    assert m2["world_size"] == 2 and m1["world_size"] == 1
    assert m1["global_step"] == m2["global_step"] == 12  # 48 features / global batch 8, 2 epochs
    # each rank counts its own tokens; the logged totals are summed over ranks
    assert (
        m1["real_tokens"] == m2["real_tokens"] == 2 * sum(len(f["input_ids"]) for f in load_worker().build_features())
    )
    # logged losses are averaged over ranks, so they are the global batch's loss
    for r1, r2 in zip(m1["history"]["train"], m2["history"]["train"], strict=True):
        assert r1["step"] == r2["step"]
        assert r1["loss"] == pytest.approx(r2["loss"], abs=1e-5)
    assert [e["step"] for e in m2["history"]["eval"]] == [3, 6, 9, 12]
    assert [e["accuracy"] for e in m1["history"]["eval"]] == pytest.approx(
        [e["accuracy"] for e in m2["history"]["eval"]], abs=1e-6
    )
    # only rank 0 wrote, and the checkpoint holds each rank's RNG state
    rng = torch.load(ddp_dir / "checkpoint" / "rng.pt", weights_only=True)
    assert len(rng) == 2
    assert sorted(p.name for p in ddp_dir.iterdir()) == [
        "best",
        "checkpoint",
        "final.safetensors",
        "metrics.json",
        "training.png",
    ]
