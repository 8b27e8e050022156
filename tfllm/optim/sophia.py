"""Sophia-G: a clipped update by a diagonal Gauss-Newton estimate (Liu et al. 2023).

Written here because no TensorFlow/Keras implementation exists. The Hessian estimate needs
the model's own predictions, which an optimizer does not see: the training step
(`TrainingModel`) computes it every `hessian_every` steps and passes it in beside the
gradient (`Sophia.with_estimate`).
"""

import tensorflow as tf

from tfllm._keras import keras


class Sophia(keras.optimizers.Optimizer):
    """Sophia-G for every trainable variable.

        m <- b1 m + (1 - b1) g
        every `hessian_every` steps: h <- b2 h + (1 - b2) h_hat
        W <- W - lr wd W - lr clip(m / max(rho h / (1 - b2^k), eps), -1, 1)

    (k the estimates taken so far: h is bias-corrected as Adam's moments are.)

    h_hat is the Gauss-Newton-Bartlett estimate N g_hat * g_hat, g_hat the gradient of the
    mean cross-entropy of N tokens against labels sampled from the model's own
    distribution: its expectation is the diagonal of the loss's Gauss-Newton matrix. The
    clip bounds every coordinate's step by lr, so lr is a Lion-sized one (1e-4 to 1e-3 at
    rho 0.04). Until the first estimate (h = 0) the update is sign(m).

    `apply_gradients` takes plain gradients (no estimate this step) or, from
    `with_estimate`, each gradient stacked with `sqrt(N) g_hat` (sums of those over
    replicas are what a strategy's all-reduce computes, so the estimate is global).
    """

    estimates_hessian = True

    def __init__(self, learning_rate=3e-4, beta_1=0.965, beta_2=0.99, rho=0.04,
                 hessian_every=10, weight_decay=0.1, epsilon=1e-12, name="Sophia", **kwargs):
        super().__init__(name=name, weight_decay=weight_decay, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.rho, self.epsilon = float(rho), float(epsilon)
        self.hessian_every = int(hessian_every)

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._momentums = [self.add_variable_from_reference(v, "m") for v in var_list]
        self._hessians = [self.add_variable_from_reference(v, "h") for v in var_list]

    def estimate_due(self):
        """Whether this step takes a new Hessian estimate (a boolean tensor)."""
        return tf.equal(self.iterations % self.hessian_every, 0)

    @staticmethod
    def with_estimate(grads, scaled_estimate_grads):
        """The gradients to apply on a step with an estimate: each gradient stacked with
        sqrt(N) g_hat of its variable (`TrainingModel` computes them)."""
        return [tf.stack([tf.convert_to_tensor(g), e]) for g, e in zip(grads, scaled_estimate_grads)]

    def apply_gradients(self, grads_and_vars, name=None, **kwargs):
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        # Which gradients carry an estimate, for `_clip_gradients` (it sees no variables).
        self._with_estimate = self._no_dependency(
            [g.shape.rank == v.shape.rank + 1 for g, v in grads_and_vars])
        return super().apply_gradients(grads_and_vars, name=name, **kwargs)

    def _clip_gradients(self, grads):
        # Clipping by global norm applies to the gradients, not to the estimates stacked
        # beside them.
        flags = getattr(self, "_with_estimate", [False] * len(grads))
        if not (self.global_clipnorm and self.global_clipnorm > 0) or not any(flags):
            return super()._clip_gradients(grads)
        plain = [g[0] if s else g for g, s in zip(grads, flags)]
        clipped = tf.clip_by_global_norm(plain, self.global_clipnorm)[0]
        return [tf.stack([c, g[1]]) if s else c for c, g, s in zip(clipped, grads, flags)]

    def update_step(self, gradient, variable):
        dtype = variable.dtype
        index = self._index_dict[self._var_key(variable)]
        momentum, hessian = self._momentums[index], self._hessians[index]
        gradient = tf.convert_to_tensor(gradient)
        if gradient.shape.rank == variable.shape.rank + 1:  # with an estimate
            gradient, estimate = gradient[0], gradient[1]
            b2 = tf.cast(self.beta_2, dtype)
            new = b2 * hessian + (1 - b2) * tf.square(estimate)
            hessian.assign(tf.where(self.estimate_due(), new, hessian))
        b1 = tf.cast(self.beta_1, dtype)
        momentum.assign(b1 * momentum + (1 - b1) * gradient)
        # h bias-corrected by the estimates taken so far, as Adam corrects its moments
        # (the paper does not; its runs are far longer than h's horizon of
        # hessian_every / (1 - b2) steps, a 200-step run is not: there h would be 18% of
        # itself and every coordinate clipped).
        estimates = tf.cast(self.iterations // self.hessian_every + 1, dtype)
        corrected = hessian / (1 - tf.pow(tf.cast(self.beta_2, dtype), estimates))
        ratio = momentum / tf.maximum(self.rho * corrected, self.epsilon)
        lr = tf.cast(self.learning_rate, dtype)
        variable.assign_sub(lr * tf.clip_by_value(ratio, -1.0, 1.0))

    def get_config(self):
        return {**super().get_config(),
                "learning_rate": self._serialize_hyperparameter(self._learning_rate),
                "beta_1": self.beta_1, "beta_2": self.beta_2, "rho": self.rho,
                "hessian_every": self.hessian_every, "epsilon": self.epsilon}

