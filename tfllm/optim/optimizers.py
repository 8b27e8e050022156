"""Optimizers by name, built as ordinary Keras optimizers."""

import math

import tensorflow as tf

from tfllm._keras import KERNEL_NAMES, keras, weight_name
from tfllm.optim import DTENSOR_OPTIMIZERS, OPTIMIZERS  # noqa: F401  (OPTIMIZERS: re-exported)

# Variables whose names contain one of these are not weight-decayed: gains and shifts of
# normalizations and biases (decaying them only fights the normalization).
NO_DECAY_NAMES = ("gamma", "beta", "bias")



def build_optimizer(cfg, learning_rate, mesh=None):
    """The Keras optimizer `cfg.optimizer` names, clipping by `cfg.grad_clip` global norm.

    Args:
        cfg: the `train` config section.
        learning_rate: a float or a LearningRateSchedule.
        mesh: a DTensor mesh: the optimizer is then tf_keras's DTensor version, its
            state laid out like the variables.
    """
    clip = cfg.grad_clip if cfg.grad_clip > 0 else None
    name = cfg.optimizer
    optimizers = keras.optimizers
    ema = cfg.ema_decay
    # Weight averaging is tf_keras's own: the optimizer keeps the average as one more
    # slot per variable (so checkpoints carry it) and updates it after every step.
    common = dict(global_clipnorm=clip, use_ema=ema > 0, ema_momentum=ema or 0.99)
    if mesh is not None:
        # tfllm.distribute.placement.check_config_on_mesh refused any other before TensorFlow.
        assert name in DTENSOR_OPTIMIZERS and not ema, (name, ema)
        common.pop("use_ema"), common.pop("ema_momentum")
        optimizers = _MeshOptimizers(mesh)
    if name == "adamw":
        opt = optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay, beta_1=cfg.beta1,
                                     beta_2=cfg.beta2, epsilon=cfg.epsilon, **common)
        opt.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
        return opt
    if name == "lion":
        # Lion (Chen et al. 2023), tf_keras's own: sign updates, so it wants a learning rate
        # 3-10x below AdamW's and a weight decay as much larger.
        opt = keras.optimizers.Lion(learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2,
                                    weight_decay=cfg.weight_decay, **common)
        opt.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
        return opt
    if name == "muon":
        opt = Muon(learning_rate, muon_scale=cfg.muon_scale, muon_momentum=cfg.muon_momentum,
                   ns_steps=cfg.muon_ns_steps,
                   weight_decay=cfg.weight_decay, beta_1=cfg.beta1, beta_2=cfg.beta2,
                   epsilon=cfg.epsilon, **common)
        opt.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
        return opt
    if name == "soap":
        from tfllm.optim.soap import SOAP

        opt = SOAP(learning_rate, precondition_every=cfg.precondition_every,
                   shampoo_beta=cfg.shampoo_beta,
                   max_dim=cfg.soap_max_dim,
                   weight_decay=cfg.weight_decay, beta_1=cfg.beta1, beta_2=cfg.beta2,
                   epsilon=cfg.epsilon, **common)
        opt.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
        return opt
    if name == "sophia":
        from tfllm.optim.sophia import Sophia

        opt = Sophia(learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2, rho=cfg.sophia_rho,
                     hessian_every=cfg.hessian_every, weight_decay=cfg.weight_decay, **common)
        opt.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
        return opt
    if name == "adam":
        return optimizers.Adam(learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2,
                                     epsilon=cfg.epsilon, **common)
    if name == "sgd":
        return optimizers.SGD(learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                    **common)
    if name == "adagrad":
        return optimizers.Adagrad(learning_rate, epsilon=cfg.epsilon, **common)
    if name == "rmsprop":
        return optimizers.RMSprop(learning_rate, momentum=cfg.momentum, epsilon=cfg.epsilon,
                                        **common)
    raise ValueError(f"unknown optimizer {name!r}; use one of {OPTIMIZERS}.")


class _MeshOptimizers:
    """keras.optimizers' constructors for the DTensor versions, bound to a mesh."""

    def __init__(self, mesh):
        self.mesh = mesh

    def __getattr__(self, name):
        cls = getattr(keras.dtensor.experimental.optimizers, name)
        return lambda *args, **kwargs: cls(*args, mesh=self.mesh, **kwargs)


# Quintic Newton-Schulz coefficients of Muon (Jordan et al. 2024): five iterations take a
# matrix's singular values into roughly [0.7, 1.2].
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix, steps=5):
    """The nearest semi-orthogonal matrix to `matrix`, approximately: U V^T of its SVD
    U S V^T, by a Newton-Schulz iteration (matmuls only, so XLA compiles it). Leading
    axes are a batch: (..., rows, cols) orthogonalizes each matrix on its own."""
    a, b, c = NEWTON_SCHULZ
    wide = matrix.shape[-2] > matrix.shape[-1]
    x = tf.linalg.matrix_transpose(matrix) if wide else matrix
    x = x / (tf.norm(x, axis=(-2, -1), keepdims=True) + 1e-7)
    for _ in range(steps):
        gram = tf.matmul(x, x, transpose_b=True)
        x = a * x + tf.matmul(b * gram + c * tf.matmul(gram, gram), x)
    return tf.linalg.matrix_transpose(x) if wide else x


def is_hidden_matrix(variable):
    """A `kernel` or `recurrent_kernel` of 2 or more axes: what Muon and SOAP precondition
    (the projections, the MLP, the LSTM's kernels; not embeddings, norms or biases)."""
    return len(variable.shape) >= 2 and weight_name(variable) in KERNEL_NAMES


def matrix_shape(shape):
    """(rows, cols) a kernel is orthogonalized as: its leading axes against its trailing
    ones, split where the matrix is closest to square (an attention kernel (D, H, K) is
    D x HK, its output (H, K, D) is HK x D)."""
    splits = [(math.prod(shape[:i]), math.prod(shape[i:])) for i in range(1, len(shape))]
    return min(splits, key=lambda rc: abs(math.log(rc[0] / rc[1])))


class Muon(keras.optimizers.AdamW):
    """Muon for the hidden weight matrices, AdamW for everything else.

    A variable named `kernel` or `recurrent_kernel` with 2 or more axes (the attention
    projections, the MLP, the LSTM's kernels) is updated by Muon (Jordan et al. 2024):
    Nesterov momentum `muon_momentum` of its gradient, orthogonalized (`orthogonalize`),
    scaled by sqrt(max(1, rows / cols)), at `learning_rate * muon_scale`. Everything
    else (embeddings, norms, biases and variables passed to `exclude_from_muon`, such as
    an output head) gets AdamW with this optimizer's AdamW arguments; the decoupled weight
    decay is AdamW's, on both. Muon's momentum lives in AdamW's first-moment slot.

    Example:
        >>> opt = Muon(3e-3, muon_scale=10.0, weight_decay=0.1)
        >>> opt.exclude_from_muon(model.lm_head.trainable_variables)
    """

    def __init__(self, learning_rate=1e-3, muon_scale=10.0, muon_momentum=0.95, ns_steps=5,
                 name="Muon", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.muon_scale = muon_scale
        self.muon_momentum = muon_momentum
        self.ns_steps = ns_steps
        self._not_muon = set()

    def exclude_from_muon(self, var_list):
        """AdamW, not Muon, for these variables (call before the first step)."""
        self._not_muon.update(self._var_key(v) for v in var_list)

    def uses_muon(self, variable):
        return is_hidden_matrix(variable) and self._var_key(variable) not in self._not_muon

    def _internal_apply_gradients(self, grads_and_vars):
        # Orthogonalize every Muon update of the step first, same-shaped matrices as one
        # batch (a 4-layer GPT's 28 kernels are 2 batched Newton-Schulz chains, not 28:
        # a smaller graph to trace and compile). Each Muon variable's gradient is then
        # passed on stacked with its update, [gradient, update], for `update_step`.
        grads_and_vars = list(grads_and_vars)
        muon = [i for i, (g, v) in enumerate(grads_and_vars)
                if self.uses_muon(v) and not isinstance(g, tf.IndexedSlices)]
        groups = {}  # (rows, cols) with rows <= cols -> [(index, transposed)]
        matrices = {}
        beta = self.muon_momentum
        for i in muon:
            gradient, variable = grads_and_vars[i]
            momentum = self._momentums[self._index_dict[self._var_key(variable)]]
            nesterov = gradient + beta * (beta * momentum + gradient)
            rows, cols = matrix_shape(variable.shape)
            matrix = tf.reshape(nesterov, (rows, cols))
            if rows > cols:
                matrix = tf.transpose(matrix)
            matrices[i] = matrix
            groups.setdefault(tuple(matrix.shape), []).append((i, rows > cols))
        for members in groups.values():
            stacked = orthogonalize(tf.stack([matrices[i] for i, _ in members]), self.ns_steps)
            for (i, transposed), update in zip(members, tf.unstack(stacked)):
                gradient, variable = grads_and_vars[i]
                rows, cols = matrix_shape(variable.shape)
                update = tf.transpose(update) if transposed else update
                update = tf.reshape(update * math.sqrt(max(1.0, rows / cols)), variable.shape)
                grads_and_vars[i] = (tf.stack([gradient, update]), variable)
        self._stacked = {self._var_key(grads_and_vars[i][1]) for i in muon}
        return super()._internal_apply_gradients(grads_and_vars)

    def update_step(self, gradient, variable):
        if self._var_key(variable) not in getattr(self, "_stacked", ()):
            return super().update_step(gradient, variable)
        gradient, update = gradient[0], gradient[1]
        momentum = self._momentums[self._index_dict[self._var_key(variable)]]
        momentum.assign(tf.cast(self.muon_momentum, variable.dtype) * momentum + gradient)
        lr = tf.cast(self.learning_rate, variable.dtype) * self.muon_scale
        variable.assign_sub(lr * update)

    def get_config(self):
        return {**super().get_config(), "muon_scale": self.muon_scale,
                "muon_momentum": self.muon_momentum, "ns_steps": self.ns_steps}
