import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import policy
from tfllm._keras import keras
from tfllm.models import GPT, build_model, build_preset


def tiny_gpt(**overrides):
    args = dict(vocab_size=10, num_layers=2, num_heads=2, hidden_dim=8, max_length=12)
    return GPT(**{**args, **overrides})


@pytest.mark.parametrize("options", [
    {}, dict(position="rope", normalization="rms", activation="swiglu", num_kv_heads=1),
    dict(tie_embeddings=False, use_bias=False, activation="relu2")])
def test_no_gradient_from_future_tokens(options):
    model = tiny_gpt(**options)
    tokens = tf.constant(np.random.randint(0, 10, (2, 8)))
    embedded = model.token_embedding(tokens)

    for t in range(8):
        with tf.GradientTape() as tape:
            tape.watch(embedded)
            # Run the model from its embedding output so the gradient reaches positions.
            x = embedded
            if model.position_embedding is not None:
                x = model.position_embedding(x)
            for block in model.blocks:
                x = block(x)
            out = model._head(model.final_norm(x))[:, t]
            target = tf.reduce_sum(out * tf.random.normal(out.shape))
        grad = tape.gradient(target, embedded).numpy()
        assert np.all(grad[:, t + 1:] == 0) and np.any(grad[:, :t + 1] != 0)


def test_changing_a_future_token_leaves_past_logits():
    model = tiny_gpt()
    a = np.random.randint(0, 10, (1, 8))
    b = a.copy()
    b[0, 5:] = (b[0, 5:] + 1) % 10
    np.testing.assert_allclose(model(a)[:, :5], model(b)[:, :5], atol=1e-6)


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_cached_decode_equals_full_forward(position):
    model = tiny_gpt(position=position, num_kv_heads=1)
    tokens = tf.constant(np.random.randint(0, 10, (2, 9)))
    full = model(tokens)
    logits, cache = model.call_with_cache(tokens[:, :4], model.init_cache(2, 12), 0)
    steps = [logits]
    for t in range(4, 9):
        logits, cache = model.call_with_cache(tokens[:, t:t + 1], cache, t)
        steps.append(logits)
    assert tf.reduce_max(tf.abs(tf.concat(steps, 1) - full)).numpy() <= 1e-4


def test_save_and_load_round_trip(tmp_path):
    model = tiny_gpt(position="rope", activation="swiglu")
    tokens = np.random.randint(0, 10, (2, 6))
    path = str(tmp_path / "gpt.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, GPT) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(tokens), model(tokens), atol=1e-6)


def test_weights_start_different():
    model = tiny_gpt(num_layers=2)
    q0, q1 = model.blocks[0].attention.query.kernel, model.blocks[1].attention.query.kernel
    assert not np.allclose(q0, q1)


def test_bfloat16_compute_float32_logits_and_weights():
    policy("mixed_bfloat16")
    model = tiny_gpt()
    assert model.blocks[0].attention.query.kernel.dtype == tf.float32
    assert model(tf.zeros((1, 4), tf.int32)).dtype == tf.float32


def test_user_code_fit_with_tf_keras():
    """What a user writes: tf.keras optimizer and loss, model.fit on a tf.data pipeline."""
    text = np.random.RandomState(0).randint(0, 10, 2000)
    text[1::2] = (text[::2] + 3) % 10  # every second token is predictable
    windows = np.stack([text[i:i + 9] for i in range(0, 1900, 8)])
    ds = tf.data.Dataset.from_tensor_slices((windows[:, :-1], windows[:, 1:])).batch(16).repeat()
    model = build_preset("gpt", "nano", vocab_size=10, max_length=8)
    model.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, steps_per_epoch=40, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 0.3, losses
    assert isinstance(model, tf.keras.Model)


KERAS3_COMPILE = """
import keras  # Keras 3, as `tf.keras` is when used before tfllm is imported
import tfllm
from tfllm.models import GPT
try:
    GPT.from_preset("nano", vocab_size=10).compile(optimizer=keras.optimizers.AdamW(1e-3))
except TypeError as e:
    print(e)
"""


def test_compile_names_a_keras3_object():
    # tf_keras's own error is "Could not interpret optimizer identifier". A fresh
    # interpreter keeps Keras 3 out of the test process.
    proc = subprocess.run([sys.executable, "-c", KERAS3_COMPILE], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("the optimizer AdamW is a Keras 3 object; tfllm models are "
                                  "tf_keras (Keras 2) models: import tfllm before"), proc.stdout


def test_presets_and_errors():
    assert GPT.from_preset("tiny", vocab_size=65).count_params() > 0
    with pytest.raises(ValueError, match="Unknown GPT preset .huge.; use one of"):
        GPT.from_preset("huge", vocab_size=65)
    with pytest.raises(ValueError, match="divisible"):
        tiny_gpt(hidden_dim=10, num_heads=4)


def _seeded_gradients(model_args, xla, seed=3, lora_dropout=0.0):
    """Loss and gradients of one training forward pass (dropout on), from a fixed seed."""
    keras.utils.set_random_seed(seed)
    model = tiny_gpt(**model_args)
    if lora_dropout:
        from tfllm.adapt.lora import apply_lora

        apply_lora(model, rank=2, targets="attention_mlp", dropout=lora_dropout)
    ids = tf.constant(np.random.RandomState(seed).randint(0, 10, (3, 12)))

    @tf.function(jit_compile=xla)
    def step():
        with tf.GradientTape() as tape:
            logits = model(ids[:, :-1], training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ids[:, 1:], logits))
        return loss, tape.gradient(loss, model.trainable_variables)

    return step()


@pytest.mark.parametrize("xla, lora_dropout", [(False, 0.0), (True, 0.0), (False, 0.3)])
def test_recomputed_blocks_give_the_same_gradients_and_dropout_masks(xla, lora_dropout):
    """Dropout in the blocks, or only in LoRA adapters put on them."""
    args = dict(dropout=0.0 if lora_dropout else 0.2, position="rope", normalization="rms",
                activation="swiglu")
    loss, grads = _seeded_gradients(args, xla, lora_dropout=lora_dropout)
    remat_loss, remat_grads = _seeded_gradients(dict(args, remat=True), xla,
                                                lora_dropout=lora_dropout)
    if not xla:
        other_loss, _ = _seeded_gradients(args, xla, seed=4, lora_dropout=lora_dropout)
        assert float(other_loss) != float(loss)  # dropout is on: another seed, other masks
    np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
    assert len(grads) == len(remat_grads)
    for g, r in zip(grads, remat_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(r), tf.convert_to_tensor(g),
                                   rtol=1e-5, atol=1e-7)


def test_remat_leaves_the_loss_curve_unchanged_over_20_steps():
    from tfllm.training.training_model import TrainingModel

    def losses(remat):
        keras.utils.set_random_seed(5)
        model = tiny_gpt(dropout=0.1, remat=remat)
        ids = np.random.RandomState(0).randint(0, 10, (16, 13))
        data = tf.data.Dataset.from_tensor_slices((ids[:, :-1], ids[:, 1:])).batch(4).repeat()
        task = TrainingModel(model)
        task.compile(optimizer=keras.optimizers.AdamW(3e-3), jit_compile=False)
        seen = []
        task.fit(data, steps_per_epoch=20, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: seen.append(float(logs["loss"])))])
        return seen

    plain, recomputed = losses(False), losses(True)
    assert len(plain) == 20 and plain[-1] < plain[0]
    np.testing.assert_allclose(recomputed, plain, rtol=1e-5)


@pytest.mark.parametrize("kind", ["gpt", "recurrent"])
def test_a_config_model_section_is_the_models_config(kind):
    """A run's config.json rebuilds its model alone: the `model` section of a config is the
    model's get_config() without vocab_size, and build_model builds it from either."""
    from tfllm.configs import base

    section = (base.gpt_model() if kind == "gpt" else base.recurrent_model()).to_dict()
    model = build_model(section, vocab_size=11)
    config = model.get_config()
    assert config.pop("vocab_size") == 11
    assert config == section
    assert build_model(config, vocab_size=11).get_config() == model.get_config()
