"""tfllm.train --init_from=hf:PATH: the run starts from the checkpoint's weights, with its
architecture and tokenizer, and is an ordinary run afterwards."""

import json
import os

import numpy as np

from tfllm.configs import tiny_test
from tfllm.pretrained import from_pretrained
from tfllm.tokenizers import load_tokenizer
from tfllm.training import Trainer
from tfllm.training.run_directory import load_run

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
