"""LoRA on an int8 base (train.base_quantization="int8"): the model computes what a float
model with the dequantized weights computes, gradients included; runs resume exactly from
checkpoints that hold the int8 base; every export gets float weights."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.adapt.test_lora import lora_config as float_lora_config
from tests.cli_helpers import metrics, rewind
from tfllm.adapt.lora import (ADAPTER_FILE, apply_lora, base_fingerprint, load_adapter,
                              merge_lora)
from tfllm.adapt.quantized_base import quantize_base
from tfllm.errors import UserError
from tfllm.layers.int8_embedding import Int8Embedding
from tfllm.layers.int8_linear import Int8Linear, quantize_int8
from tfllm.models import GPT
from tfllm.pretrained import from_pretrained
from tfllm.runs.run_directory import load_run
from tfllm.training import Trainer

BASE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf", "llama")


def test_int8_values_are_within_half_a_step_of_the_weights():
    w = np.random.RandomState(0).normal(size=(64, 48)).astype(np.float32)
    w[:, 3] = 0.0  # an all-zero channel keeps a usable scale
    values, scale = quantize_int8(w)
    assert values.dtype == np.int8 and scale.shape == (48,)
    assert np.all(np.abs(values.astype(np.float32) * scale - w) <= scale / 2 + 1e-7)
    assert np.abs(values).max() == 127


def _lora_gpt(tie):
    keras_seed = tf.keras.utils.set_random_seed
    keras_seed(0)
    model = GPT(vocab_size=50, num_layers=2, num_heads=4, num_kv_heads=2, hidden_dim=32,
                max_length=16, activation="swiglu", position="rope", normalization="rms",
                tie_embeddings=tie, use_bias=True)
    model(tf.zeros((1, 16), tf.int32))
    apply_lora(model, 4, 8.0, "all")
    for variable in model.trainable_variables:  # adapters that change the model
        variable.assign(tf.random.stateless_normal(variable.shape, (1, len(variable.name))) * 0.1)
    return model


def _by_path(layer, prefix=""):
    """{"blocks_0/attention/query/...": layer} of every layer under `layer`."""
    paths = {}
    for child in layer._flatten_layers(include_self=False, recursive=False):
        paths[prefix + child.name] = child
        paths.update(_by_path(child, prefix + child.name + "/"))
    return paths


def _dequantize_in_place(model):
    """The int8 twin of `model`, and `model` turned into its float twin: every frozen kernel
    and the embedding table given the values the int8 base holds, still in float layers."""
    quantized = _lora_gpt(model.lm_head is None)
    quantize_base(quantized)
    plain = _by_path(model)
    for path, layer in _by_path(quantized).items():
        if isinstance(layer, Int8Linear):
            plain[path].kernel.assign(layer.kernel)
        elif isinstance(layer, Int8Embedding):
            plain[path].embeddings.assign(layer.embeddings)
    return quantized


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_the_int8_base_computes_its_dequantized_float_model(tie):
    ids = tf.constant(np.random.RandomState(1).randint(0, 50, (2, 16)))
    plain = _lora_gpt(tie)
    before = plain(ids).numpy()
    quantized = _dequantize_in_place(plain)
    int8 = [w for w in quantized.weights if w.dtype == tf.int8]
    assert len(int8) == 2 * 7 + 1 + (0 if tie else 1)  # projections, embedding, head
    assert not any(w.trainable for w in int8)
    # int8 differs from the float base (random tiny weights: by a few percent)
    assert 0 < np.abs(quantized(ids).numpy() - before).max() < 0.2 * np.abs(before).max()
    np.testing.assert_allclose(quantized(ids).numpy(), plain(ids).numpy(), atol=2e-6)

    def adapter_gradients(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                ids[:, 1:], model(ids[:, :-1], training=True)))
        return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]

    for got, expected in zip(adapter_gradients(quantized), adapter_gradients(plain)):
        # float32 rounding only: the products run in another order (scale after the matmul)
        assert np.linalg.norm(got - expected) <= 1e-5 * np.linalg.norm(expected)
    logits = quantized(ids).numpy()
    merge_lora(quantized)
    assert not any(w.dtype == tf.int8 for w in quantized.weights)
    np.testing.assert_allclose(quantized(ids).numpy(), logits, atol=2e-6)


def lora_config(**train):
    return float_lora_config(**dict(dict(base_quantization="int8"), **train))


def train(config, run_dir):
    return Trainer(config, str(run_dir), init_from=f"hf:{BASE}",
                   print_fn=lambda *a: None).train()


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("int8") / "run"
    train(lora_config(), run_dir)
    return str(run_dir)


def test_checkpoints_hold_the_int8_base_and_the_run_resumes_exactly(int8_run, tmp_path):
    checkpoint = os.path.join(int8_run, "checkpoints", "ckpt-20")
    dtypes = tf.train.load_checkpoint(checkpoint).get_variable_to_dtype_map()
    int8 = [name for name, dtype in dtypes.items() if dtype == tf.int8]
    assert len(int8) == 2 * 7 + 2  # llama fixture: 2 blocks x 7 projections, embedding, head
    assert not [n for n in dtypes if n.endswith("/kernel/.ATTRIBUTES/VARIABLE_VALUE")
                and "lora" not in n and dtypes[n] == tf.float32 and "model/" in n
                and "norm" not in n]
    resumed = rewind(int8_run, tmp_path, 10)
    train(lora_config(), resumed)
    np.testing.assert_allclose([r["loss"] for r in metrics(resumed)],
                               [r["loss"] for r in metrics(int8_run)], rtol=1e-6)


def test_the_int8_run_starts_near_the_float_base_and_loads_for_evaluation(int8_run):
    first = metrics(int8_run)[0]["loss"]
    float_base, _ = from_pretrained(BASE, max_length=32)
    _, _, model = load_run(int8_run)  # as tfllm.evaluate / generate / export load it
    assert isinstance(model.token_embedding, Int8Embedding)
    with pytest.raises(ValueError, match="an int8 base's fingerprint is its float base's"):
        base_fingerprint(model)  # loaded, not trained: no float base to fingerprint
    ids = np.arange(1, 30)[None]
    # The adapter file loads onto the float base the run was quantized from.
    load_adapter(float_base, os.path.join(int8_run, ADAPTER_FILE))
    np.testing.assert_allclose(model(ids).numpy(), float_base(ids).numpy(), atol=0.05)
    assert np.isfinite(first)


def test_int8_base_with_mixed_precision_and_accumulation(tmp_path):
    config = lora_config(steps=4, precision="mixed_bfloat16", grad_accum_steps=2)
    config.eval.every = config.checkpoint.every = 4
    summary = train(config, tmp_path / "run")
    losses = [r["loss"] for r in metrics(tmp_path / "run")]
    assert len(losses) == 4 and np.all(np.isfinite(losses)) and np.isfinite(summary["final_val_loss"])


def test_base_quantization_without_lora_is_one_line():
    from tfllm.config import validate

    config = lora_config(lora_rank=0)
    with pytest.raises(UserError, match="a quantized base is frozen, so it needs LoRA adapters"):
        validate(config)
