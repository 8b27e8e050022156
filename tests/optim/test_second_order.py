"""SOAP and Sophia: their updates against independent NumPy formulas, Sophia's Hessian
estimate against the exact Gauss-Newton diagonal, and exact resumption from a checkpoint."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm._keras import keras
from tfllm.models import GPT
from tfllm.training import TrainingModel
from tfllm.optim.soap import SOAP, refresh_basis
from tfllm.optim.sophia import Sophia


def test_orthogonal_iteration_reaches_the_eigendecomposition():
    """The refreshed basis diagonalizes its factor as numpy's eigh does, strongest first."""
    rng = np.random.RandomState(0)
    q, _ = np.linalg.qr(rng.randn(6, 6))
    eigenvalues = np.array([9.0, 5.0, 3.0, 2.0, 1.0, 0.5])
    factor = (q * eigenvalues) @ q.T
    basis, permuted = refresh_basis(tf.constant(factor, tf.float32), tf.eye(6), tf.zeros((6, 3)),
                                    axis=0, sweeps=40)
    rotated = basis.numpy().T @ factor @ basis.numpy()
    np.testing.assert_allclose(np.diag(rotated), np.linalg.eigh(factor)[0][::-1], rtol=1e-4)
    np.testing.assert_allclose(rotated - np.diag(np.diag(rotated)), 0, atol=1e-4)
    assert permuted.shape == (6, 3)


def test_refresh_permutes_the_second_moment_with_the_basis():
    """A basis whose columns are out of eigenvalue order is sorted, and the second moment's
    rows follow their columns."""
    factor = np.diag([1.0, 4.0, 2.0]).astype(np.float32)
    second = np.array([[10.0], [40.0], [20.0]], np.float32)
    basis, permuted = refresh_basis(tf.constant(factor), tf.eye(3), tf.constant(second), axis=0)
    np.testing.assert_allclose(np.abs(basis.numpy()), np.eye(3)[:, [1, 2, 0]], atol=1e-6)
    np.testing.assert_allclose(permuted.numpy().ravel(), [40.0, 20.0, 10.0])


def numpy_soap(grads, lr, b1, b2, shampoo_beta, eps, every, first_sweeps=5):
    """SOAP on one square matrix, written from the paper's algorithm with NumPy's QR: the
    first gradient only starts the factors; each update is Adam in the bases of the
    factors of the gradients before it."""
    n = grads[0].shape[0]
    w, m, v = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    factors, bases = [np.zeros((n, n)), np.zeros((n, n))], [np.eye(n), np.eye(n)]
    for t, g in enumerate(grads):
        if t > 0:
            left, right = bases
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * (left.T @ g @ right) ** 2
            rotated_m = left.T @ m @ right / (1 - b1 ** t)
            w = w - lr * left @ (rotated_m / (np.sqrt(v / (1 - b2 ** t)) + eps)) @ right.T
        for side in (0, 1):
            outer = g @ g.T if side == 0 else g.T @ g
            factors[side] = shampoo_beta * factors[side] + (1 - shampoo_beta) * outer
            if t % every == 0:
                q = np.eye(n) if t == 0 else bases[side]
                for _ in range(first_sweeps if t == 0 else 1):
                    order = np.argsort(-np.sum(q * (factors[side] @ q), axis=0), kind="stable")
                    q = q[:, order]
                    v = v[order, :] if side == 0 else v[:, order]
                    q = np.linalg.qr(factors[side] @ q)[0]
                bases[side] = q
    return w


def test_soap_update_equals_the_numpy_algorithm():
    """7 steps with refreshes at 0, 3 and 6. epsilon is 0.1 here: in the eigenbasis the
    first step's near-zero entries are +-1 after Adam's normalization at epsilon 1e-8, so
    float32 and float64 rounding would pick their signs."""
    rng = np.random.RandomState(1)
    grads = [rng.randn(5, 5) * (1 + i % 3) for i in range(7)]
    kernel = tf.Variable(tf.zeros((5, 5)), name="kernel")
    opt = SOAP(0.01, precondition_every=3, shampoo_beta=0.9, beta_1=0.9, beta_2=0.95,
               epsilon=0.1, weight_decay=0.0)
    for g in grads:
        opt.apply_gradients([(tf.constant(g, tf.float32), kernel)])
    expected = numpy_soap(grads, 0.01, 0.9, 0.95, 0.9, 0.1, every=3)
    np.testing.assert_allclose(kernel.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_soap_without_rotation_is_adamw():
    """A matrix over max_dim on both sides is not rotated: SOAP is then AdamW exactly, and
    a norm's gain (not a kernel) is always AdamW's."""
    rng = np.random.RandomState(2)
    soap_vars = [tf.Variable(tf.ones((4, 6)), name="kernel"), tf.Variable(tf.ones((4,)), name="gamma")]
    adam_vars = [tf.Variable(tf.ones((4, 6)), name="kernel"), tf.Variable(tf.ones((4,)), name="gamma")]
    soap = SOAP(0.01, max_dim=3, weight_decay=0.1)
    adamw = keras.optimizers.AdamW(0.01, weight_decay=0.1)
    for _ in range(4):
        grads = [tf.constant(rng.randn(*v.shape), tf.float32) for v in soap_vars]
        soap.apply_gradients(zip(grads, soap_vars))
        adamw.apply_gradients(zip(grads, adam_vars))
    assert not soap._soap_slots  # no factor kept for an unrotated matrix
    for a, b in zip(soap_vars, adam_vars):  # Keras adds epsilon to the uncorrected sqrt(v)
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_soap_rotates_one_side_of_a_long_matrix():
    """A side over max_dim (a vocabulary) keeps no factor; the other side is rotated."""
    kernel = tf.Variable(tf.zeros((4, 50)), name="kernel")
    opt = SOAP(0.01, max_dim=16)
    for _ in range(2):  # the first step only starts the factors
        opt.apply_gradients([(tf.random.normal((4, 50)), kernel)])
    assert [tuple(v.shape) for v in opt._soap_slots] == [(4, 4), (4, 4)]
    assert np.abs(kernel.numpy()).max() > 0


def test_sophia_update_is_the_clipped_ratio():
    """m / max(rho h / (1 - b2^k), eps) clipped to [-1, 1], times lr, with h from the
    stacked estimate (k estimates so far)."""
    w = tf.Variable(tf.zeros((3,)), name="kernel")
    opt = Sophia(0.1, beta_1=0.5, beta_2=0.5, rho=1.0, hessian_every=2, weight_decay=0.0)
    g, e = np.array([0.2, -4.0, 1.0], np.float32), np.array([2.0, 1.0, 0.0], np.float32)
    opt.apply_gradients([(tf.stack([g, e]), w)])  # step 0: an estimate is due
    m, h = 0.5 * g, e ** 2  # 0.5 e^2 / (1 - 0.5)
    expected = -0.1 * np.clip(m / np.maximum(h, 1e-12), -1, 1)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
    opt.apply_gradients([(tf.stack([g, 10 * e]), w)])  # step 1: not due, h is kept
    m = 0.5 * m + 0.5 * g
    expected += -0.1 * np.clip(m / np.maximum(h, 1e-12), -1, 1)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)


def test_sophia_hessian_estimate_is_the_gauss_newton_diagonal_in_expectation():
    """Softmax regression, logits = x W + b over fixed features x: E[N g_hat^2] from labels
    sampled by the model equals diag of the Gauss-Newton matrix of the mean cross-entropy,
    (1/N) sum_i x_ia^2 p_ij (1 - p_ij), within sampling error."""
    keras.utils.set_random_seed(3)
    vocab, features, classes = 6, 3, 4
    inputs = np.random.RandomState(4).randint(0, vocab, (2, 5))
    embed = keras.layers.Embedding(vocab, features, trainable=False)
    dense = keras.layers.Dense(classes, bias_initializer="random_normal")
    lm = keras.Sequential([embed, dense])
    task = TrainingModel(lm)
    task.compile(optimizer=Sophia(1e-3, hessian_every=1))
    lm(inputs)
    x = embed(inputs).numpy().reshape(-1, features)
    p = tf.nn.softmax(lm(inputs)).numpy().reshape(-1, classes)
    exact = [(x ** 2).T @ (p * (1 - p)) / len(x), np.mean(p * (1 - p), axis=0)]

    @tf.function
    def draw(step):
        task.optimizer.iterations.assign(step)
        return [tf.square(e) for e in task.hessian_estimate(tf.constant(inputs))]

    draws = [[d.numpy() for d in draw(tf.constant(s, tf.int64))] for s in range(3000)]
    for k, truth in enumerate(exact):
        samples = np.stack([d[k] for d in draws])
        error = np.abs(samples.mean(0) - truth)
        standard_error = samples.std(0) / np.sqrt(len(samples))
        assert np.all(error <= 4.5 * standard_error + 1e-6), (error, standard_error)
        assert np.all(truth > 8 * standard_error)  # precise enough to tell a wrong scale


def tiny_task(optimizer, seed=0):
    keras.utils.set_random_seed(seed)
    lm = GPT(vocab_size=13, num_layers=1, num_heads=2, hidden_dim=8, max_length=8)
    task = TrainingModel(lm)
    task.compile(optimizer=optimizer, jit_compile=False)  # XLA: test_xla_update_equals_eager
    lm(tf.zeros((1, 8), tf.int32))
    optimizer.build(lm.trainable_variables)
    return task


OPTIMIZERS = {"soap": lambda: SOAP(3e-2, precondition_every=2, weight_decay=0.1),
              "sophia": lambda: Sophia(3e-2, hessian_every=2, weight_decay=0.1,
                                       global_clipnorm=1.0)}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_decreases_the_loss_and_resumes_exactly(name, tmp_path):
    """Trained 8 steps, the loss falls; saved at step 3 and restored into a fresh model and
    optimizer, the next 5 steps (eigenbasis refreshes and Hessian estimates among them) give
    the uninterrupted weights exactly."""
    rng = np.random.RandomState(5)  # sequences counting in steps of 2 (mod 13): learnable
    batches = [(rng.randint(0, 13, (4, 1)) + 2 * np.arange(9)) % 13 for _ in range(8)]
    data = [(b[:, :-1], b[:, 1:]) for b in batches]
    task = tiny_task(OPTIMIZERS[name]())
    losses = []
    for i, batch in enumerate(data):
        losses.append(float(task.train_on_batch(*batch, return_dict=True)["loss"]))
        if i == 2:
            path = tf.train.Checkpoint(model=task.lm, optimizer=task.optimizer).save(
                str(tmp_path / "ckpt"))
    assert losses[-1] < losses[0] - 0.05, losses

    resumed = tiny_task(OPTIMIZERS[name](), seed=1)  # other initial weights, overwritten
    tf.train.Checkpoint(model=resumed.lm, optimizer=resumed.optimizer).restore(
        path).assert_consumed()
    for batch in data[3:]:
        resumed.train_on_batch(*batch)
    for a, b in zip(task.lm.weights, resumed.lm.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_xla_update_equals_eager(name):
    """The compiled update (tfllm.train's XLA step) moves the weights as the eager one does,
    over a refresh or estimate step and the steps between."""
    rng = np.random.RandomState(6)
    # Square, so that G G^T has no null space: in one, Adam's normalization in the
    # eigenbasis divides rounding error by rounding error, and the two would differ there.
    grads = [tf.constant(rng.randn(5, 5), tf.float32) for _ in range(3)]
    results = []
    for compiled in (False, True):
        kernel = tf.Variable(tf.ones((5, 5)), name="kernel")
        opt = OPTIMIZERS[name]()

        def step(g, kernel=kernel, opt=opt):
            if name == "sophia":
                g = tf.stack([g, 2.0 * g])
            opt.apply_gradients([(g, kernel)])

        step = tf.function(step, jit_compile=True) if compiled else step
        for g in grads:
            step(g)
        results.append(kernel.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6)
