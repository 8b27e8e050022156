import numpy as np
import pytest
import tensorflow as tf
from ml_collections import ConfigDict

from tfllm.configs import base
from tfllm.optim import OPTIMIZERS, build_optimizer
from tfllm.optim.optimizers import Muon, matrix_shape, orthogonalize


def train_cfg(name, **overrides):
    """A train section (every key of configs/base.py) with these values."""
    cfg = dict(optimizer=name, weight_decay=0.01, beta1=0.9, beta2=0.99, epsilon=1e-8,
               momentum=0.9, nesterov=False, grad_clip=1.0, muon_scale=10.0, muon_momentum=0.95,
               muon_ns_steps=5)
    return ConfigDict({**base.get_config().train.to_dict(), **cfg, **overrides})


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_decreases_the_loss_and_checkpoints(name, tmp_path):
    rng = np.random.RandomState(0)
    x = tf.constant(rng.randn(64, 4), tf.float32)
    y = x @ tf.constant([[1.0], [-2.0], [0.5], [3.0]])
    w = tf.Variable(tf.zeros((4, 1)))
    opt = build_optimizer(train_cfg(name), 0.05 if name != "adagrad" else 0.5)

    def loss():
        return tf.reduce_mean((x @ w - y) ** 2)

    first = float(loss())
    for _ in range(60):
        with tf.GradientTape() as tape:
            value = loss()
        opt.apply_gradients([(tape.gradient(value, w), w)])
    assert float(loss()) < 0.5 * first

    path = tf.train.Checkpoint(w=w, opt=opt).save(str(tmp_path / "ckpt"))
    w2 = tf.Variable(tf.zeros((4, 1)))
    opt2 = build_optimizer(train_cfg(name), 0.05)
    opt2.build([w2])
    tf.train.Checkpoint(w=w2, opt=opt2).restore(path).assert_consumed()
    assert int(opt2.iterations) == 60
    for a, b in zip(opt.variables, opt2.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_adamw_does_not_decay_norms_and_biases():
    opt = build_optimizer(train_cfg("adamw", weight_decay=0.5), 0.0)
    kernel = tf.Variable(tf.ones((2, 2)), name="kernel")
    gamma = tf.Variable(tf.ones((2,)), name="gamma")
    opt.learning_rate = 1.0  # decay step is lr * wd * w; zero gradients isolate it
    opt.apply_gradients([(tf.zeros((2, 2)), kernel), (tf.zeros((2,)), gamma)])
    assert float(kernel[0, 0]) < 1.0 and float(gamma[0]) == 1.0


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="adamw"):
        build_optimizer(train_cfg("lamb"), 1e-3)


def test_orthogonalize_flattens_singular_values():
    m = tf.constant(np.random.RandomState(0).randn(16, 48), tf.float32)
    singular = np.linalg.svd(orthogonalize(m).numpy(), compute_uv=False)
    assert singular.min() > 0.6 and singular.max() < 1.25  # the quintic's band
    assert np.linalg.svd(m.numpy(), compute_uv=False).max() > 5  # the input's were not
    assert matrix_shape((128, 4, 32)) == (128, 128) and matrix_shape((4, 32, 128)) == (128, 128)


def test_orthogonalize_treats_leading_axes_as_a_batch():
    m = tf.constant(np.random.RandomState(2).randn(3, 48, 16), tf.float32)
    batched = orthogonalize(m).numpy()
    for i in range(3):
        np.testing.assert_allclose(batched[i], orthogonalize(m[i]).numpy(), atol=1e-5)


def test_muon_batches_same_shaped_kernels_without_mixing_them():
    """One optimizer over three kernels (two of one shape, orthogonalized as a batch) moves
    each exactly as an optimizer of its own would."""
    rng = np.random.RandomState(3)
    shapes = [(8, 2, 4), (8, 2, 4), (16, 8)]
    grads = [[tf.constant(rng.randn(*s), tf.float32) for s in shapes] for _ in range(3)]
    together = [tf.Variable(tf.ones(s), name="kernel") for s in shapes]
    alone = [tf.Variable(tf.ones(s), name="kernel") for s in shapes]
    cfg = train_cfg("muon", weight_decay=0.0, grad_clip=0.0)
    opt, opts = build_optimizer(cfg, 0.01), [build_optimizer(cfg, 0.01) for _ in shapes]
    for step_grads in grads:
        opt.apply_gradients(zip(step_grads, together))
        for o, g, v in zip(opts, step_grads, alone):
            o.apply_gradients([(g, v)])
    for a, b in zip(together, alone):
        assert not np.allclose(a.numpy(), 1.0)
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_muon_updates_kernels_by_orthogonalized_momentum_and_the_rest_by_adamw(tmp_path):
    rng = np.random.RandomState(1)
    x = tf.constant(rng.randn(256, 8), tf.float32)
    target = tf.constant(rng.randn(8, 2, 4), tf.float32)
    kernel = tf.Variable(tf.zeros((8, 2, 4)), name="kernel")
    bias = tf.Variable(tf.zeros((8,)), name="bias")
    head = tf.Variable(tf.zeros((8, 3)), name="kernel")
    opt = build_optimizer(train_cfg("muon", weight_decay=0.0, grad_clip=0.0), 0.01)
    assert isinstance(opt, Muon) and opt.ns_steps == 5  # train.muon_ns_steps
    opt.exclude_from_muon([head])
    adamw = build_optimizer(train_cfg("adamw", weight_decay=0.0, grad_clip=0.0), 0.01)
    bias_ref = tf.Variable(tf.zeros((8,)))

    def loss(k, b):
        y = tf.einsum("nd,dhk->nhk", x, k) + tf.reshape(b, (1, 2, 4))
        return tf.reduce_mean((y - tf.einsum("nd,dhk->nhk", x, target)) ** 2)

    first = float(loss(kernel, bias))
    for step in range(40):
        with tf.GradientTape(persistent=True) as tape:
            value, ref = loss(kernel, bias), loss(kernel, bias_ref)
        before = kernel.numpy()
        opt.apply_gradients(list(zip(tape.gradient(value, [kernel, bias]), [kernel, bias]))
                            + [(tf.ones((8, 3)), head)])
        adamw.apply_gradients([(tape.gradient(ref, bias_ref), bias_ref)])
        if step == 0:  # from zero momentum the first update is orthogonalized (8 x 8)
            update = (before - kernel.numpy()).reshape(8, 8) / (0.01 * 10.0)
            singular = np.linalg.svd(update, compute_uv=False)
            assert singular.min() > 0.6 and singular.max() < 1.25
        # The bias follows AdamW exactly (same gradients while the kernel is shared).
        np.testing.assert_allclose(bias.numpy(), bias_ref.numpy(), atol=1e-6)
    assert float(loss(kernel, bias)) < 0.1 * first
    # The excluded head took AdamW steps: its first step is -lr per entry.
    np.testing.assert_allclose(head.numpy(), -0.01 * 40, rtol=1e-3)


@pytest.mark.parametrize("name,loss_scale", [("muon", False), ("sgd", False), ("adamw", True)])
def test_weight_averaging_keeps_the_moving_average_and_swaps_it_in(name, loss_scale, tmp_path):
    from tfllm.training.callbacks import averaged_weights

    model = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(4,))])
    opt = build_optimizer(train_cfg(name, ema_decay=0.5), 0.1)
    if loss_scale:  # as under float16 mixed precision
        opt = tf.keras.mixed_precision.LossScaleOptimizer(opt)
    model.compile(optimizer=opt, loss="mse")
    x, y = np.random.RandomState(0).randn(8, 4).astype(np.float32), np.zeros((8, 3), np.float32)
    expected = [v.numpy() for v in model.trainable_variables]
    for _ in range(3):  # average = 0.5 average + 0.5 weights, after each step
        model.train_on_batch(x, y)
        expected = [0.5 * e + 0.5 * v.numpy() for e, v in zip(expected, model.trainable_variables)]
    trained = [v.numpy() for v in model.trainable_variables]
    with averaged_weights(model):
        for variable, average in zip(model.trainable_variables, expected):
            np.testing.assert_allclose(variable.numpy(), average, rtol=1e-5, atol=1e-6)
    for variable, value in zip(model.trainable_variables, trained):
        np.testing.assert_array_equal(variable.numpy(), value)

    # The average is optimizer state: it survives a checkpoint.
    path = tf.train.Checkpoint(model=model, opt=opt).save(str(tmp_path / "ckpt"))
    clone = tf.keras.models.clone_model(model)
    opt2 = build_optimizer(train_cfg(name, ema_decay=0.5), 0.1)
    if loss_scale:
        opt2 = tf.keras.mixed_precision.LossScaleOptimizer(opt2)
    clone.compile(optimizer=opt2, loss="mse")
    opt2.build(clone.trainable_variables)
    tf.train.Checkpoint(model=clone, opt=opt2).restore(path).assert_consumed()
    with averaged_weights(clone):
        for variable, average in zip(clone.trainable_variables, expected):
            np.testing.assert_allclose(variable.numpy(), average, rtol=1e-5, atol=1e-6)


def test_no_averaging_leaves_the_weights():
    from tfllm.training.callbacks import averaged_weights

    model = tf.keras.Sequential([tf.keras.layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer=build_optimizer(train_cfg("adamw"), 0.1), loss="mse")
    model.train_on_batch(np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32))
    before = [v.numpy() for v in model.trainable_variables]
    with averaged_weights(model):
        for variable, value in zip(model.trainable_variables, before):
            np.testing.assert_array_equal(variable.numpy(), value)
