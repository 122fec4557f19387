"""The training loop: precision plans, apex detection, optimizer groups, learning, exact resume."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_model
from torch import nn
from transformers import MegatronBertConfig, MegatronBertForTokenClassification

from biomodels.data.batching import PaddingCollator
from biomodels.training import precision as P
from biomodels.training import trainer as T
from biomodels.training.config import TrainConfig
from biomodels.training.state import atomic_replace_dir, find_checkpoint
from biomodels.training.trainer import StepInfo, Trainer
from corpora.errors import ConfigError, ModelError
from tests.helpers.paths import ROOT

VOCAB, PAD, CLS, SEP = 40, 0, 1, 2


@pytest.fixture(autouse=True)
def one_thread():
    # the test machine is small and shared: one intra-op thread is faster than two fighting
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(seed: int = 0, dropout: float = 0.1) -> MegatronBertForTokenClassification:
    torch.manual_seed(seed)
    config = MegatronBertConfig(
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
        vocab_size=VOCAB,
        num_labels=3,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return MegatronBertForTokenClassification(config)


def synthetic_features(n: int, seed: int) -> list[dict]:
    """Sentences of 3-20 random tokens; a token's label is its id mod 3 (learnable)."""
    rng = random.Random(seed)
    feats = []
    for i in range(n):
        words = [rng.randrange(3, VOCAB) for _ in range(rng.randint(3, 20))]
        ids = [CLS] + words + [SEP]
        feats.append(
            {
                "input_ids": ids,
                "attention_mask": [1] * len(ids),
                "token_type_ids": [0] * len(ids),
                "labels": [-100] + [w % 3 for w in words] + [-100],
                "_id": f"s{i}",
            }
        )
    return feats


def token_accuracy(model: nn.Module, feats: list[dict]) -> float:
    batch = PaddingCollator(PAD)(feats)
    labels = batch.pop("labels")
    logits = model(**batch).logits
    mask = labels != -100
    return float((logits.argmax(-1)[mask] == labels[mask]).float().mean())


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def setup(tmp: Path, metric: str = "f1", greater_is_better: bool = True, **kw) -> dict:
    """Trainer keyword arguments: a small fp32 config (last weights kept) writing to `tmp`."""
    base = dict(
        learning_rate=1e-3,
        epochs=2,
        batch_size=8,
        warmup_ratio=0.1,
        log_every=1,
        seed=123,
        precision="fp32",
        progress=False,
        load_best=False,
    )
    base.update(kw)
    return {"config": TrainConfig(**base), "out_dir": tmp, "metric": metric, "greater_is_better": greater_is_better}


# ------------------------------------------------------------------------------ precision


def test_resolve_precision_cpu():
    auto = P.resolve_precision("auto", "cpu")
    assert (auto.name, auto.dtype, auto.use_scaler, auto.autocast_enabled) == ("fp32", torch.float32, False, False)
    bf16 = P.resolve_precision("bf16", torch.device("cpu"))
    assert (bf16.name, bf16.autocast_enabled, bf16.use_scaler) == ("bf16", True, False)
    with bf16.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert bf16.make_scaler() is None
    with pytest.raises(ConfigError, match="fp16"):
        P.resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="fp64"):
        P.resolve_precision("fp64", "cpu")


def test_bf16_on_a_cpu_without_native_bf16_is_allowed_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not P.cpu_has_native_bf16()
    with caplog.at_level("WARNING", logger=P.__name__):
        assert P.resolve_precision("bf16", "cpu").name == "bf16"
    assert "emulated and slower than fp32" in caplog.text
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    caplog.clear()
    assert P.cpu_has_native_bf16()
    P.resolve_precision("bf16", "cpu")
    assert "emulated" not in caplog.text


def test_resolve_precision_cuda_choices(monkeypatch):
    monkeypatch.setattr(P, "_cuda_bf16_supported", lambda device: True)
    plan = P.resolve_precision("auto", "cuda")
    assert (plan.name, plan.dtype, plan.use_scaler) == ("bf16", torch.bfloat16, False)
    monkeypatch.setattr(P, "_cuda_bf16_supported", lambda device: False)
    plan = P.resolve_precision("auto", "cuda:0")
    assert (plan.name, plan.dtype, plan.use_scaler, plan.autocast_enabled) == ("fp16", torch.float16, True, True)
    with pytest.raises(ConfigError, match="bf16"):
        P.resolve_precision("bf16", "cuda")
    assert P.resolve_precision("fp32", "cuda").autocast_enabled is False


# ------------------------------------------------------------------------------------ apex


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """A directory on sys.path for fake `apex` packages; apex modules are forgotten afterwards."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in list(sys.modules):
        if name == "apex" or name.startswith("apex.") or name in ("amp_C", "fused_layer_norm_cuda"):
            del sys.modules[name]


def test_apex_not_installed_here():
    status = P.apex_status()
    assert not status.installed and not status.usable
    assert status.detail == "apex not installed"


def test_unrelated_pypi_apex_is_recognised(fake_site):
    (fake_site / "apex").mkdir()
    (fake_site / "apex" / "__init__.py").write_text("raise ImportError('pyramid missing')\n")
    status = P.apex_status()
    assert status.installed and not status.fused_adam and not status.usable
    assert status.detail.startswith("unrelated apex package")


NVIDIA_LIKE_APEX = {
    "apex/__init__.py": "",
    "apex/optimizers/__init__.py": "class FusedAdam:\n    pass\n",
    "apex/normalization/__init__.py": ("import torch\nclass FusedLayerNorm(torch.nn.LayerNorm):\n    pass\n"),
}


def test_nvidia_apex_without_cuda_extensions(fake_site):
    for rel, text in NVIDIA_LIKE_APEX.items():
        (fake_site / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake_site / rel).write_text(text)
    status = P.apex_status()
    assert status.installed and not status.fused_adam and not status.fused_layer_norm
    assert "amp_C is missing" in status.detail and "fused_layer_norm_cuda is missing" in status.detail
    (fake_site / "amp_C.py").write_text("")
    (fake_site / "fused_layer_norm_cuda.py").write_text("")
    status = P.apex_status()
    assert status.fused_adam and status.fused_layer_norm
    assert status.usable == torch.cuda.is_available()


def test_swap_fused_layernorm_copies_weights(fake_site):
    for rel, text in NVIDIA_LIKE_APEX.items():
        (fake_site / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake_site / rel).write_text(text)
    model = tiny_model(dropout=0.0).eval()
    n_ln = sum(type(m) is nn.LayerNorm for m in model.modules())
    assert n_ln == 2 * 2 + 1  # two per block (attention.ln, ln) plus the final encoder.ln
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    ids = torch.tensor([[CLS, 5, 6, 7, SEP]])
    before = model(input_ids=ids).logits
    assert P.swap_fused_layernorm(model, P.ApexStatus(False, False, False, False, "none")) == 0
    usable = P.ApexStatus(True, True, True, True, "faked for the test")
    assert P.swap_fused_layernorm(model, usable) == n_ln
    from apex.normalization import FusedLayerNorm

    assert sum(type(m) is FusedLayerNorm for m in model.modules()) == n_ln
    assert not any(type(m) is nn.LayerNorm for m in model.modules())
    assert torch.equal(model(input_ids=ids).logits, before)


def test_optimizer_groups_skip_decay_on_bias_and_layernorm():
    model = tiny_model()
    opt, info = P.build_optimizer(model, lr=2e-5, weight_decay=0.01, device="cpu")
    assert isinstance(opt, torch.optim.AdamW) and info["name"] == "torch.optim.AdamW(fused=True)"
    assert opt.defaults["fused"] is True
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for p in opt.param_groups[0]["params"]}
    no_decay = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert opt.param_groups[0]["weight_decay"] == 0.01 and opt.param_groups[1]["weight_decay"] == 0.0
    assert decay | no_decay == set(names.values()) and not decay & no_decay
    assert "bert.encoder.layer.0.attention.ln.weight" in no_decay
    assert "bert.encoder.ln.weight" in no_decay
    assert "bert.encoder.layer.1.intermediate.dense.bias" in no_decay
    assert "bert.encoder.layer.1.intermediate.dense.weight" in decay
    assert "bert.embeddings.word_embeddings.weight" in decay
    assert "classifier.weight" in decay
    assert all(n.endswith(".bias") or ".ln." in n or n.endswith("ln.weight") for n in no_decay)


# ----------------------------------------------------------------------------- training


def test_training_learns_and_records_the_run(tmp_path):
    train, dev = synthetic_features(96, seed=1), synthetic_features(32, seed=2)
    model = tiny_model(dropout=0.0)
    before = token_accuracy(model.eval(), dev)
    cfg = setup(tmp_path, epochs=4, batch_size=16, learning_rate=3e-3, eval_every=6, metric="accuracy", log_every=3)
    result = Trainer(
        model, train, PaddingCollator(PAD), **cfg, eval_fn=lambda m: {"accuracy": token_accuracy(m, dev)}
    ).train()
    assert result.global_step == result.total_steps == 4 * 6
    accs = [row["accuracy"] for row in result.eval_log]
    assert [row["step"] for row in result.eval_log] == [6, 12, 18, 24]
    assert max(accs) > 0.9 > before + 0.3
    assert result.best_metric == max(accs)
    assert result.best_step == result.eval_log[accs.index(max(accs))]["step"]
    # every feature is seen once per epoch; real tokens are the unpadded lengths
    assert result.real_tokens == 4 * sum(len(f["input_ids"]) for f in train)
    assert result.padded_tokens >= result.real_tokens and result.tokens_per_s > 0
    # the best weights reproduce the best dev metric
    fresh = tiny_model(seed=99, dropout=0.0)
    load_model(fresh, str(tmp_path / "best" / "model.safetensors"))
    assert token_accuracy(fresh.eval(), dev) == pytest.approx(result.best_metric, abs=1e-6)
    assert (tmp_path / "best" / "config.json").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["best_metric"] == result.best_metric and saved["best_step"] == result.best_step
    assert saved["precision"]["name"] == "fp32"
    assert saved["optimizer"]["name"] == "torch.optim.AdamW(fused=True)"
    assert saved["apex"]["detail"] == "apex not installed" and saved["world_size"] == 1
    assert [r["step"] for r in saved["history"]["train"]] == list(range(3, 25, 3))
    assert saved["history"]["train"][-1]["lr"] == 0.0  # linear decay ends at zero
    assert saved["final_metrics"]["accuracy"] == accs[-1]
    png = (tmp_path / "training.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def our_tiny_model(dropout: float = 0.0) -> nn.Module:
    """Our encoder (biomodels.models.encoder), what users train, with tiny_model's weights."""
    from biomodels.models.encoder import TokenClassifier

    reference = tiny_model(dropout=dropout)
    ours = TokenClassifier(reference.config)
    ours.load_state_dict(reference.state_dict())
    return ours


def test_compiled_training_follows_the_eager_losses_and_is_recorded(tmp_path):
    train = [f for f in synthetic_features(1000, seed=1) if len(f["input_ids"]) == 12][:48]  # one shape: one compile
    losses, saved = {}, {}
    for compiled in (False, True):
        out = tmp_path / f"compile-{compiled}"
        cfg = setup(out, epochs=1, batch_size=8, compile=compiled)
        result = Trainer(our_tiny_model(), train, PaddingCollator(PAD), **cfg).train()
        saved[compiled] = json.loads((out / "metrics.json").read_text())
        losses[compiled] = [row["loss"] for row in saved[compiled]["history"]["train"]]
        assert result.global_step == 6
    assert saved[True]["compiled"] is True and saved[False]["compiled"] is False
    assert len(losses[True]) == 6
    assert losses[True] == pytest.approx(losses[False], abs=1e-4)


def _killer(at_step: int):
    def callback(info: StepInfo) -> None:
        if info.global_step == at_step:
            raise KeyboardInterrupt(f"simulated kill at step {at_step}")

    return callback


def _resume_run(tmp_path: Path, name: str) -> dict[str, torch.Tensor]:
    train = synthetic_features(44, seed=3)
    cfg = setup(tmp_path / name, epochs=3, batch_size=4, grad_accum=2, save_every=4)
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_model(), train, PaddingCollator(PAD), **cfg, callbacks=[_killer(9)]).train()
    # the last checkpoint is at step 8: the second step of epoch 1 (6 steps per epoch)
    state = json.loads((tmp_path / name / "checkpoint" / "trainer_state.json").read_text())
    assert (state["global_step"], state["epoch"], state["step_in_epoch"]) == (8, 1, 2)
    # a new process would build a fresh model: its initial weights must not matter
    model = tiny_model(seed=5)
    Trainer(model, train, PaddingCollator(PAD), **cfg).train(resume=True)
    return params(model)


def test_killed_and_resumed_run_ends_with_identical_weights(tmp_path):
    train = synthetic_features(44, seed=3)
    # 44 features, steps of 2 x 4: 6 steps per epoch (the last has 4 features in one micro-batch)
    cfg = setup(tmp_path / "a", epochs=3, batch_size=4, grad_accum=2)
    model_a = tiny_model()
    initial = params(model_a)
    res_a = Trainer(model_a, train, PaddingCollator(PAD), **cfg).train()
    assert res_a.global_step == 18
    a = params(model_a)
    assert any(not torch.equal(a[k], initial[k]) for k in a)
    b = _resume_run(tmp_path, "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log_a = json.loads((tmp_path / "a" / "metrics.json").read_text())["history"]["train"]
    log_b = json.loads((tmp_path / "b" / "metrics.json").read_text())["history"]["train"]
    assert [(r["step"], r["loss"], r["lr"]) for r in log_a] == [(r["step"], r["loss"], r["lr"]) for r in log_b]


def test_resume_without_rng_restore_diverges(tmp_path, monkeypatch):
    """Negative control: with dropout active, skipping RNG restoration changes the result."""
    train = synthetic_features(44, seed=3)
    model_a = tiny_model()
    Trainer(model_a, train, PaddingCollator(PAD), **setup(tmp_path / "a", epochs=3, batch_size=4, grad_accum=2)).train()
    monkeypatch.setattr(T, "restore_rng_state", lambda state: None)
    b = _resume_run(tmp_path, "b")
    assert any(not torch.equal(params(model_a)[k], b[k]) for k in b)


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float) -> None:
    """Parameters equal to `atol`, or within 2 float32 ulps of their value (a LayerNorm weight near
    1.0 has an ulp of 1.2e-7, and the fused AdamW rounds differently from the unfused one). Attention
    key biases get 1e-5: their true gradient is zero (softmax ignores a per-query constant), so Adam
    normalises pure rounding noise there."""
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        tol = 1e-5 if name.endswith("key.bias") else atol
        torch.testing.assert_close(p, q, rtol=2**-22, atol=tol, msg=name)


def test_gradient_accumulation_matches_one_big_batch(tmp_path, monkeypatch):
    """Token losses are normalised over the whole step, so 2 x 4 equals 1 x 8 (dropout off)."""
    train = synthetic_features(40, seed=4)
    big, accum = tiny_model(dropout=0.0), tiny_model(dropout=0.0)
    Trainer(big, train, PaddingCollator(PAD), **setup(tmp_path / "big", batch_size=8)).train()
    Trainer(accum, train, PaddingCollator(PAD), **setup(tmp_path / "acc", batch_size=4, grad_accum=2)).train()
    assert_same_weights(big, accum, atol=1e-7)
    # control: averaging per-micro-batch means (every micro-batch weighted alike) differs
    monkeypatch.setattr(T, "count_items", lambda batch, label_pad=-100: 1)
    naive = tiny_model(dropout=0.0)
    Trainer(naive, train, PaddingCollator(PAD), **setup(tmp_path / "naive", batch_size=4, grad_accum=2)).train()
    with pytest.raises(AssertionError):
        assert_same_weights(big, naive, atol=1e-5)


def test_early_stopping_after_patience(tmp_path):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.95])
    res = Trainer(
        tiny_model(),
        synthetic_features(32, seed=5),
        PaddingCollator(PAD),
        **setup(tmp_path, epochs=10, batch_size=8, eval_every=2, patience=2),
        eval_fn=lambda m: {"f1": next(scores)},
    ).train()
    assert res.stopped_early and res.global_step == 8 < res.total_steps == 40
    assert (res.best_metric, res.best_step) == (0.7, 4)
    assert [r["f1"] for r in res.eval_log] == [0.5, 0.7, 0.6, 0.65]
    assert res.final_metrics == {"f1": 0.65}


def test_lower_is_better_metric(tmp_path):
    scores = iter([3.0, 2.0, 2.5, 1.0])
    res = Trainer(
        tiny_model(),
        synthetic_features(16, seed=6),
        PaddingCollator(PAD),
        **setup(tmp_path, epochs=2, eval_every=1, metric="loss", greater_is_better=False),
        eval_fn=lambda m: {"loss": next(scores)},
    ).train()
    assert (res.best_metric, res.best_step) == (1.0, 4)


def test_bf16_autocast_on_cpu_trains(tmp_path):
    model = tiny_model()
    before = params(model)
    res = Trainer(
        model, synthetic_features(16, seed=7), PaddingCollator(PAD), **setup(tmp_path, epochs=1, precision="bf16")
    ).train()
    assert res.run_info["precision"]["name"] == "bf16" and res.global_step == 2
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert any(not torch.equal(before[k], v) for k, v in params(model).items())


def test_max_steps_overrides_epochs_and_wraps_epochs(tmp_path):
    res = Trainer(
        tiny_model(), synthetic_features(16, seed=8), PaddingCollator(PAD), **setup(tmp_path, epochs=1, max_steps=5)
    ).train()
    assert res.global_step == 5
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs_completed"] == 2


def test_errors_name_the_problem(tmp_path):
    feats = synthetic_features(8, seed=9)
    unlabelled = [{k: v for k, v in f.items() if k != "labels"} for f in feats]
    with pytest.raises(ModelError, match="no loss"):
        Trainer(tiny_model(), unlabelled, PaddingCollator(PAD), **setup(tmp_path)).train()
    with pytest.raises(ConfigError, match="metric 'f1'"):
        Trainer(
            tiny_model(), feats, PaddingCollator(PAD), **setup(tmp_path, epochs=1), eval_fn=lambda m: {"accuracy": 1.0}
        ).train()
    with pytest.raises(ConfigError, match="grad_accum"):
        setup(tmp_path, grad_accum=0)["config"].validate()
    with pytest.raises(ConfigError, match="no training features"):
        Trainer(tiny_model(), [], PaddingCollator(PAD), **setup(tmp_path))


def test_resume_refuses_a_different_global_batch(tmp_path):
    feats = synthetic_features(16, seed=10)
    Trainer(tiny_model(), feats, PaddingCollator(PAD), **setup(tmp_path, epochs=1, save_every=1)).train()
    model = tiny_model(seed=3)
    before = params(model)
    with pytest.raises(ConfigError, match="global_batch=8"):
        Trainer(model, feats, PaddingCollator(PAD), **setup(tmp_path, epochs=1, batch_size=4, save_every=1)).train(
            resume=True
        )
    # refused before loading anything: the model keeps its own weights
    assert all(torch.equal(before[k], v) for k, v in params(model).items())


def test_checkpoint_directory_replacement_is_atomic(tmp_path):
    target = tmp_path / "checkpoint"

    def good(tmp: Path) -> None:
        (tmp / "trainer_state.json").write_text("{}")
        (tmp / "weights").write_text("v1")

    def broken(tmp: Path) -> None:
        (tmp / "weights").write_text("half")
        raise OSError("disk full")

    atomic_replace_dir(good, target)
    with pytest.raises(OSError, match="disk full"):
        atomic_replace_dir(broken, target)
    assert (target / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    # killed between the two renames: only the aside copy exists, and it is found
    target.rename(tmp_path / "checkpoint.old")
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint.old"


# ------------------------------------------------------------------- GPU benchmark smoke


def load_gpu_train():
    import importlib.util

    path = ROOT / "benchmarks" / "gpu_train.py"
    spec = importlib.util.spec_from_file_location("gpu_train", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_gpu_train_smoke_on_cpu(capsys):
    gpu_train = load_gpu_train()
    code = gpu_train.main(
        ["--tiny", "--cpu", "--lengths", "histogram", "--steps", "4", "--batch-size", "4", "--warmup-steps", "1"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["steps"], report["batch_size"], report["device"]) == (4, 4, "cpu")
    assert report["precision"] == "fp32" and report["padded_tokens"] >= report["real_tokens"] > 0
    assert report["mean_real_seq_len"] == report["real_tokens"] / 16
    # the tiny architecture's non-embedding parameters, counted here from a model of our own
    tiny = MegatronBertForTokenClassification(
        MegatronBertConfig(
            num_hidden_layers=2,
            hidden_size=64,
            num_attention_heads=2,
            intermediate_size=128,
            vocab_size=1024,
            num_labels=3,
        )
    )
    n = sum(p.numel() for name, p in tiny.named_parameters() if "embeddings" not in name)
    assert report["non_embedding_params"] == n
    assert report["flops_per_token"] == pytest.approx(6 * n + 12 * 2 * report["mean_real_seq_len"] * 64)
    assert report["mfu"] == pytest.approx(report["steady_tokens_per_s"] * report["flops_per_token"] / 989e12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_gpu_train_without_cuda_says_so_and_exits_zero(capsys):
    assert load_gpu_train().main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "no CUDA device" in out[0] and json.loads(out[-1]) == {"skipped": "no CUDA device"}


def test_flops_per_token_of_345m_matches_the_published_estimate():
    # about 1.85 GFLOP per token at s = 128 (6N + 12·L·s·d with N the non-embedding parameters)
    gpu_train = load_gpu_train()
    with torch.device("meta"):
        model = MegatronBertForTokenClassification(MegatronBertConfig(**gpu_train.ARCH_345M, num_labels=3))
    n = gpu_train.non_embedding_params(model)
    assert 300e6 < n < 305e6
    assert gpu_train.flops_per_token(n, 24, 128, 1024) == pytest.approx(1.85e9, rel=0.01)
