import numpy as np
import pytest
import tensorflow as tf
from ml_collections import ConfigDict

from tfllm.training import OPTIMIZERS, build_optimizer


def train_cfg(name, **overrides):
    cfg = dict(optimizer=name, weight_decay=0.01, beta1=0.9, beta2=0.99, epsilon=1e-8,
               momentum=0.9, nesterov=False, grad_clip=1.0)
    return ConfigDict({**cfg, **overrides})


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
