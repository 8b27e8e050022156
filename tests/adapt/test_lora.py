"""LoRA fine-tuning of an imported checkpoint: only adapters train, runs resume exactly,
the merged export is the adapted model, adapter files load onto their base only."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.cli_helpers import metrics, rewind, run
from tfllm.configs import tiny_test
from tfllm.data.pipeline import eval_dataset
from tfllm.data.sources import run_dataset
from tfllm.errors import UserError
from tfllm.models import GPT
from tfllm.pretrained import from_pretrained, save_pretrained
from tfllm.training import Trainer
from tfllm.adapt.lora import ADAPTER_FILE, apply_lora, load_adapter, merge_lora
from tfllm.adapt.peft_format import load_peft_adapter
from tfllm.api.export import export_run
from tfllm.runs.run_directory import load_run
from tfllm.training.training_model import TrainingModel

BASE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf", "llama")
INIT = f"hf:{BASE}"


def lora_config(**train):
    config = tiny_test.get_config()
    config.deterministic = True
    config.sample.length = 0
    config.log_every = 1
    config.model.max_length = 32
    config.train.update(dict(dict(lora_rank=4, lora_targets="attention_mlp", lora_dropout=0.1,
                                  learning_rate=1e-2), **train))
    return config


def assert_only_adapter_slots(checkpoint, moments):
    """The optimizer's variables (Keras keeps them by position) are `moments` slots per
    adapter variable, each of an adapter's shape: the frozen weights have none."""
    shapes = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
    adapters = [tuple(s) for n, s in shapes.items() if "/lora_a/" in n or "/lora_b/" in n]
    slots = [tuple(s) for n, s in shapes.items()
             if n.startswith("optimizer/_variables/") and not n.startswith("optimizer/_variables/0/")]
    assert adapters and sorted(slots) == sorted(adapters * moments), (slots, adapters)


def train(config, run_dir, init_from=INIT):
    return Trainer(config, str(run_dir), init_from=init_from, print_fn=lambda *a: None).train()


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("lora") / "run"
    train(lora_config(), run_dir)
    return str(run_dir)


def test_base_weights_unchanged_and_only_adapters_have_slots(lora_run):
    assert_only_adapter_slots(os.path.join(lora_run, "checkpoints", "ckpt-20"), moments=2)
    base, _ = from_pretrained(BASE, max_length=32)
    _, _, tuned = load_run(lora_run)
    adapters = [w for w in tuned.weights if "lora_" in w.name]
    assert len(adapters) == 2 * 7 * 2  # a and b, 7 projections, 2 blocks
    assert any(np.abs(w.numpy()).max() > 0 for w in adapters if "lora_b" in w.name)
    frozen = [w for w in tuned.weights if "lora_" not in w.name and not w.dtype.is_integer]
    assert len(frozen) == len(base.weights)
    for ours, theirs in zip(frozen, base.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.name)


def test_resumed_lora_run_equals_uninterrupted(lora_run, tmp_path):
    run_dir = rewind(lora_run, tmp_path, 10)
    train(lora_config(), run_dir, init_from=None)  # resumes without --init_from too
    expected, got = metrics(lora_run), metrics(run_dir)
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    for a, b in zip(expected, got):
        assert a["loss"] == b["loss"], (a, b)


def _val_loss(model, run_dir):
    config, tokenizer, _ = load_run(run_dir)
    dataset = run_dataset(run_dir, config, tokenizer)
    task = TrainingModel(model)
    task.compile(weighted_metrics=[])
    return task.evaluate(eval_dataset(dataset.val, 32, 64, max_tokens=4096), verbose=0)


def test_merged_export_scores_as_the_adapter_model(lora_run, tmp_path):
    """As tfllm.export does for every format: load the run, fold the adapters in, write."""
    _, tokenizer, model = load_run(lora_run)
    assert merge_lora(model) == 14
    save_pretrained(model, tokenizer, str(tmp_path / "hf"))
    merged, _ = from_pretrained(str(tmp_path / "hf"))
    adapted = load_run(lora_run)[2]
    np.testing.assert_allclose(_val_loss(merged, lora_run), _val_loss(adapted, lora_run),
                               rtol=1e-5)


def test_adapter_file_loads_onto_its_base_only(lora_run):
    _, _, tuned = load_run(lora_run)
    base, _ = from_pretrained(BASE, max_length=32)
    load_adapter(base, os.path.join(lora_run, ADAPTER_FILE))
    ids = np.arange(1, 30)[None]
    np.testing.assert_allclose(base(ids).numpy(), tuned(ids).numpy(), atol=1e-6)
    other, _ = from_pretrained(BASE, max_length=32)
    other.final_norm.gamma.assign(other.final_norm.gamma * 1.5)
    with pytest.raises(UserError, match="adapts another base model"):
        load_adapter(other, os.path.join(lora_run, ADAPTER_FILE))


def test_peft_export_puts_the_runs_adapters_on_its_base(lora_run, tmp_path):
    """tfllm.export --format=peft: the adapters alone, which put onto a fresh import of the
    base (as peft.PeftModel.from_pretrained does; tests/adapt/test_peft_format.py checks
    against PEFT itself) compute the run's model."""
    result = export_run(lora_run, "peft", str(tmp_path / "peft"))
    assert sorted(result["files"]) == ["adapter_config.json", "adapter_model.safetensors"]
    assert result["files"]["adapter_model.safetensors"] < 100_000  # adapters, no base weights
    with open(tmp_path / "peft" / "adapter_config.json") as f:
        config = json.load(f)
    assert os.path.samefile(config["base_model_name_or_path"], BASE) and config["r"] == 4
    base, _ = from_pretrained(BASE, max_length=32)
    load_peft_adapter(base, str(tmp_path / "peft"))
    ids = np.arange(1, 30)[None]
    np.testing.assert_allclose(base(ids).numpy(), load_run(lora_run)[2](ids).numpy(), atol=1e-6)


def test_peft_export_of_a_run_without_adapters_is_one_line(tmp_path):
    run_dir = tmp_path / "full"
    run_dir.mkdir()
    config = lora_config(lora_rank=0)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    (run_dir / "checkpoints").mkdir()
    with pytest.raises(UserError, match="--format=peft writes a LoRA run's adapters; .* "
                                        "export it with --format=hf"):
        export_run(str(run_dir), "peft", str(tmp_path / "out"))


def test_rank_larger_than_a_layer_is_refused():
    model = GPT(vocab_size=11, num_layers=1, num_heads=2, hidden_dim=8, max_length=16)
    with pytest.raises(UserError, match="lora_rank=9 is larger than query's width 8; use at most 8"):
        apply_lora(model, rank=9)


def test_lora_on_a_recurrent_model_is_refused(tmp_path):
    from tfllm.config import validate
    from tfllm.configs import lstm

    config = lstm.get_config()
    config.train.lora_rank = 4
    with pytest.raises(UserError, match="a recurrent model has none"):
        validate(config)


def test_lora_with_mixed_precision_and_accumulation(tmp_path):
    config = lora_config(steps=6, precision="mixed_bfloat16", grad_accum_steps=2)
    config.update(deterministic=False)
    config.eval.every = 6
    config.checkpoint.every = 6
    summary = train(config, tmp_path / "run")
    assert np.isfinite(summary["final_val_loss"])
    assert_only_adapter_slots(str(tmp_path / "run" / "checkpoints" / "ckpt-6"), moments=2)


@pytest.mark.slow
def test_lora_mirrored_equals_one_device(lora_run, tmp_path):
    """Two replicas on logical CPUs train the adapters as one device does (no dropout:
    each replica draws its own masks)."""
    run_dir = str(tmp_path / "mirrored")
    reference = str(tmp_path / "single")
    config = lora_config(steps=10, lora_dropout=0.0)
    config.update(deterministic=False)
    config.eval.every = 10
    config.checkpoint.every = 10
    train(config, reference)
    args = [f"--init_from={INIT}", "--config=tiny_test", "--config.sample.length=0",
            "--config.log_every=1", "--config.model.max_length=32", "--config.train.steps=10",
            "--config.eval.every=10", "--config.checkpoint.every=10",
            "--config.train.lora_rank=4", "--config.train.lora_targets=attention_mlp",
            "--config.train.learning_rate=0.01"]
    proc = run("tfllm.train", *args, f"--run_dir={run_dir}", "--strategy=mirrored",
               "--cpu_devices=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose([r["loss"] for r in metrics(run_dir)],
                               [r["loss"] for r in metrics(reference)], rtol=1e-4)
