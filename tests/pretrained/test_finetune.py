"""tfllm.train --init_from=hf:PATH: the run starts from the checkpoint's weights, with its
architecture and tokenizer, and is an ordinary run afterwards."""

import json
import os

import numpy as np

from tfllm.configs import tiny_test
from tfllm.pretrained import from_pretrained
from tfllm.tokenizers import load_tokenizer
from tfllm.training import Trainer
from tfllm.runs.run_directory import load_run

BASE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf", "gpt2")


def test_run_starts_from_the_checkpoint(tmp_path):
    config = tiny_test.get_config()  # a 1 x 32 char model: the checkpoint's replaces it
    config.sample.length = 0
    config.model.max_length = 32
    config.train.update(steps=2, learning_rate=1e-12, warmup_steps=1)
    config.eval.every = config.checkpoint.every = 2
    run_dir = str(tmp_path / "run")
    lines = []
    Trainer(config, run_dir, init_from=f"hf:{BASE}", print_fn=lines.append).train()
    assert any(line.startswith(f"model: gpt2 from {BASE}: 2 x 64") for line in lines), lines
    saved, tokenizer, tuned = load_run(run_dir)
    assert (saved.model.num_layers, saved.model.hidden_dim, saved.model.max_length) == (2, 64, 32)
    assert saved.data.tokenizer == "hf"
    base, base_tokenizer = from_pretrained(BASE, max_length=32)
    assert tokenizer.fingerprint() == base_tokenizer.fingerprint()
    assert load_tokenizer(run_dir).encode("Être").tolist() == base_tokenizer.encode("Être").tolist()
    ids = np.arange(1, 30)[None]
    np.testing.assert_allclose(tuned(ids).numpy(), base(ids).numpy(), atol=1e-5)
    with open(os.path.join(run_dir, "run.json")) as f:
        assert json.load(f)["init_from"] == "hf:" + os.path.abspath(BASE)


def test_an_export_keeps_the_imported_checkpoints_own_settings(tmp_path):
    """An imported Instruct model exported back: its context (not the training window), its
    start and end tokens, its generation config and chat template survive the round trip,
    from the run's own copy (the checkpoint directory may be gone by then)."""
    import shutil

    from tfllm.api.export import export_run

    base = tmp_path / "llama"
    shutil.copytree(os.path.join(os.path.dirname(BASE), "llama"), base)
    config_json = json.loads((base / "config.json").read_text())
    config_json.update(max_position_embeddings=8192, bos_token_id=1, eos_token_id=2)
    (base / "config.json").write_text(json.dumps(config_json))
    (base / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    (base / "generation_config.json").write_text(json.dumps({"eos_token_id": 2, "top_p": 0.9}))
    config = tiny_test.get_config()
    config.sample.length = 0
    config.model.max_length = 32
    config.train.update(steps=2, learning_rate=1e-12, warmup_steps=1)
    config.eval.every = config.checkpoint.every = 2
    run_dir = str(tmp_path / "run")
    Trainer(config, run_dir, init_from=f"hf:{base}", print_fn=lambda *args: None).train()
    shutil.rmtree(base)
    out = tmp_path / "export"
    export_run(run_dir, "hf", output=str(out))
    exported = json.loads((out / "config.json").read_text())
    assert (exported["max_position_embeddings"], exported["bos_token_id"],
            exported["eos_token_id"]) == (8192, 1, 2)
    assert (out / "chat_template.jinja").read_text().startswith("{% for m in messages %}")
    assert json.loads((out / "generation_config.json").read_text())["top_p"] == 0.9
    assert json.loads((out / "tokenizer_config.json").read_text()) == json.loads(
        open(os.path.join(os.path.dirname(BASE), "llama", "tokenizer_config.json")).read())


def test_auto_precision_is_decided_on_the_imported_architecture(tmp_path, monkeypatch):
    # The flags' config has the default width until the checkpoint's replaces it: the
    # automatic choice must see the checkpoint's (here 64), not the config's (32).
    from tfllm import hardware

    widths = []
    monkeypatch.setattr(hardware, "automatic_precision", lambda name, width, *a: (
        widths.append(width) or ("float32", True, f"width {width}")))
    config = tiny_test.get_config()
    config.sample.length = 0
    config.model.max_length = 32
    config.train.update(steps=1, warmup_steps=1, precision="auto")
    config.eval.every = config.checkpoint.every = 1
    lines = []
    Trainer(config, str(tmp_path / "run"), init_from=f"hf:{BASE}", print_fn=lines.append).train()
    assert widths[-1] == 64 and 32 in widths
    assert any("(train.precision=auto: width 64)" in line for line in lines), lines
