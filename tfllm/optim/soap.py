"""SOAP: Adam run in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2024).

Written here because no TensorFlow/Keras implementation exists (the public ones are for
PyTorch and optax). The eigenbases are refreshed by one sweep of orthogonal (power)
iteration with a QR decomposition, as the paper's Algorithm 4 does, not by a full
eigendecomposition: XLA's CPU `eigh` takes 8 s for a 768 x 768 factor, its QR 44 ms.
"""

import tensorflow as tf

from tfllm._keras import keras
from tfllm.optim.optimizers import is_hidden_matrix, matrix_shape

# Orthogonal-iteration sweeps at the first step, from the identity; every later refresh
# starts from the previous basis and takes one.
FIRST_SWEEPS = 5


def refresh_basis(factor, basis, second_moment, axis, sweeps=1):
    """`sweeps` sweeps (an int or a scalar tensor) of orthogonal iteration towards
    `factor`'s eigenvectors, from `basis`.

    Each sweep first sorts the columns of the basis by their Rayleigh quotients, largest
    first (QR keeps the leading columns' directions, so the strongest eigenvector must
    lead), permuting `second_moment`'s rows (axis 0) or columns (axis 1), which belong to
    those columns, with them. Returns (new basis, permuted second moment). A loop, not
    unrolled: XLA compiles one sweep whatever their number.
    """
    def sweep(i, basis, second_moment):
        rayleigh = tf.reduce_sum(basis * tf.matmul(factor, basis), axis=0)
        order = tf.argsort(rayleigh, direction="DESCENDING")
        basis = tf.gather(basis, order, axis=1)
        second_moment = tf.gather(second_moment, order, axis=axis)
        return i + 1, tf.linalg.qr(tf.matmul(factor, basis))[0], second_moment

    _, basis, second_moment = tf.while_loop(lambda i, *_: i < sweeps, sweep,
                                            (tf.constant(0), basis, second_moment))
    return basis, second_moment


class SOAP(keras.optimizers.AdamW):
    """SOAP for the hidden weight matrices, AdamW for everything else.

    A variable named `kernel` or `recurrent_kernel` with 2 or more axes is viewed as a
    rows x cols matrix (`matrix_shape`: an attention kernel (D, H, K) is D x HK) with
    gradient G, and updated by:

        M <- b1 M + (1 - b1) G                                     (first moment, original basis)
        V <- b2 V + (1 - b2) (QL^T G QR)^2                          (second moment, eigenbasis)
        W <- W - lr QL [(QL^T M QR / (1 - b1^t)) / (sqrt(V / (1 - b2^t)) + eps)] QR^T
        L <- b L + (1 - b) G G^T,  R <- b R + (1 - b) G^T G       (Shampoo's factors, b = shampoo_beta)
        every `precondition_every` steps: QL, QR <- eigenbases of L, R (orthogonal iteration),
            V's entries permuted with the bases' columns

    The first step only starts L, R, QL and QR (the weights do not move; t counts from the
    second step), so every update is taken in a basis of earlier gradients.

    A side longer than `max_dim` (a vocabulary of 50,257) is not rotated (its basis is the
    identity), so memory stays at most 2 max_dim^2 floats per factor. Everything else
    (embeddings, norms, biases, variables passed to `exclude_from_soap` such as an output
    head) gets AdamW with this optimizer's arguments; the decoupled weight decay is AdamW's,
    on both. M and V live in AdamW's moment slots; the factors and bases are slots of their
    own, so a checkpoint holds the whole state.

    Example:
        >>> opt = SOAP(3e-3, precondition_every=10, weight_decay=0.1)
        >>> opt.exclude_from_soap(model.lm_head.trainable_variables)
    """

    def __init__(self, learning_rate=3e-3, precondition_every=10, shampoo_beta=0.95,
                 max_dim=4096, name="SOAP", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.precondition_every = int(precondition_every)
        self.shampoo_beta = float(shampoo_beta)
        self.max_dim = int(max_dim)
        self._not_soap = set()

    def exclude_from_soap(self, var_list):
        """AdamW, not SOAP, for these variables (call before the optimizer is built)."""
        self._not_soap.update(self._var_key(v) for v in var_list)

    def uses_soap(self, variable):
        return is_hidden_matrix(variable) and self._var_key(variable) not in self._not_soap

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_soap_built", False):
            return
        self._soap_built = True
        # Flat list of the factors and bases (tracked, so checkpointed); per SOAP variable
        # the indices (L, QL, R, QR) into it, -1 for a side that is not rotated.
        self._soap_slots = []
        self._soap_index = self._no_dependency({})
        for variable in var_list:
            if not self.uses_soap(variable):
                continue
            indices = []
            for side, size in zip("lr", matrix_shape(variable.shape)):
                if size > self.max_dim:
                    indices += [-1, -1]
                    continue
                for slot in (f"soap_{side}", f"soap_q{side}"):
                    indices.append(len(self._soap_slots))
                    self._soap_slots.append(
                        self.add_variable_from_reference(variable, slot, shape=(size, size)))
            if max(indices) >= 0:  # else AdamW's update, unrotated
                self._soap_index[self._var_key(variable)] = tuple(indices)

    def update_step(self, gradient, variable):
        key = self._var_key(variable)
        if key not in self._soap_index or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        index = self._index_dict[key]
        momentum, velocity = self._momentums[index], self._velocities[index]
        shape = matrix_shape(variable.shape)
        g = tf.reshape(gradient, shape)
        slots = self._soap_index[key]
        sides = [None if slots[i] < 0 else (self._soap_slots[slots[i]], self._soap_slots[slots[i + 1]])
                 for i in (0, 2)]
        # Adam in the eigenbasis of the factors of the steps before this one: a basis
        # computed with this gradient would nearly diagonalize it, and Adam's
        # normalization would blow its rounding-error entries up to +-1. So the first
        # step only starts the factors, as the paper's implementation does.
        first = tf.equal(self.iterations, 0)
        step = tf.cast(tf.maximum(self.iterations, 1), dtype)
        b1, b2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        bases = [None if side is None else side[1] for side in sides]
        new_momentum = momentum + (tf.reshape(gradient, variable.shape) - momentum) * (1 - b1)
        second = tf.reshape(velocity, shape)
        new_second = b2 * second + (1 - b2) * tf.square(_rotate(g, *bases))
        rotated_m = _rotate(tf.reshape(new_momentum, shape), *bases) / (1 - tf.pow(b1, step))
        normalized = rotated_m / (tf.sqrt(new_second / (1 - tf.pow(b2, step))) + self.epsilon)
        update = tf.reshape(_rotate(normalized, *bases, back=True), variable.shape)
        lr = tf.cast(self.learning_rate, dtype)
        variable.assign_sub(tf.where(first, tf.zeros_like(update), lr * update))
        momentum.assign(tf.where(first, momentum, new_momentum))
        second = tf.where(first, second, new_second)
        for axis, side in enumerate(sides):
            if side is not None:
                second = self._accumulate_and_refresh(g, axis, *side, second)
        velocity.assign(tf.reshape(second, variable.shape))

    def _accumulate_and_refresh(self, g, axis, factor, basis, second):
        """Accumulates G G^T (axis 0) or G^T G (axis 1) into `factor` and, on a refresh
        step, moves `basis` towards its eigenvectors (from the identity, FIRST_SWEEPS
        sweeps, at the first step). Returns the second moment, permuted with the basis."""
        outer = tf.matmul(g, g, transpose_b=True) if axis == 0 else tf.matmul(g, g, transpose_a=True)
        beta = tf.cast(self.shampoo_beta, g.dtype)
        factor.assign(beta * factor + (1 - beta) * outer)
        iteration = self.iterations

        def refresh():
            first = tf.equal(iteration, 0)
            start = tf.where(first, tf.eye(factor.shape[0], dtype=g.dtype), basis)
            return refresh_basis(factor, start, second, axis, tf.where(first, FIRST_SWEEPS, 1))

        due = tf.equal(iteration % self.precondition_every, 0)
        new_basis, second = tf.cond(due, refresh, lambda: (tf.identity(basis), second))
        basis.assign(new_basis)
        return second

    def get_config(self):
        return {**super().get_config(), "precondition_every": self.precondition_every,
                "shampoo_beta": self.shampoo_beta, "max_dim": self.max_dim}


def _rotate(matrix, left, right, back=False):
    """left^T matrix right (into the eigenbasis) or, with `back`, left matrix right^T; a
    side of None is the identity."""
    if left is not None:
        matrix = tf.matmul(left, matrix, transpose_a=not back)
    if right is not None:
        matrix = tf.matmul(matrix, right, transpose_b=back)
    return matrix
