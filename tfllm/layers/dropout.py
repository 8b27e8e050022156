"""Dropout whose masks are cheap to draw on a CPU, inside XLA and out."""

import contextlib
import numbers
import threading

import tensorflow as tf

from tfllm._keras import in_xla_context, keras, register

# Each mask element is 16 random bits, so the keep probability is a multiple of 1/2**16.
_BITS = 16
_LEVELS = 1 << _BITS


class _SeedScope(threading.local):
    seed = None  # a (2,) int64 seed tensor while `seeded_masks` is active
    count = 0    # masks drawn in the scope so far


_scope = _SeedScope()


@contextlib.contextmanager
def seeded_masks(seed):
    """Within: every tfllm Dropout draws its mask from `seed` (a (2,) int64 tensor) folded
    with the number of masks drawn before it in the scope, instead of from its own
    generator. So code run twice in the scope with the same seed draws the same masks
    both times: a block recomputed in the backward pass (activation recomputation)
    applies the masks its forward pass applied."""
    previous = (_scope.seed, _scope.count)
    _scope.seed, _scope.count = seed, 0
    try:
        yield
    finally:
        _scope.seed, _scope.count = previous


@register("tfllm")
class Dropout(keras.layers.Dropout):
    """Inverted dropout (as keras.layers.Dropout) drawing half the random words.

    tf_keras's Dropout draws a float32 from Philox for every element. XLA:CPU compiles
    Philox into slow code: the 12 residual masks of one step of the 30-minute recipe
    (12 x 32 x 128 x 192) took 108 ms on this project's 2-core machine against 22 ms here
    (docs/speedrun.md). Here every 32-bit draw gives two elements 16 bits each, from
    ThreeFry inside XLA (which compiles it far better; TensorFlow's own kernels have no
    ThreeFry) and from Philox outside it. An element is kept when its 16 bits are >= the
    rate rounded to 1/65536, and kept elements are scaled by 1 / (the keep probability
    so rounded), so the output's expectation is exactly the input.

    The seeds come from the layer's tf.random.Generator (tf_keras's, which tfllm
    checkpoints: tfllm/training/rng.py), so a resumed run draws the same masks (with XLA
    on or off as before). A `noise_shape` falls back to tf_keras's own draw.
    """

    def call(self, inputs, training=None):
        self._random_generator._maybe_init()
        generator = getattr(self._random_generator, "_generator", None)
        if (self.noise_shape is not None or generator is None
                or not isinstance(self.rate, numbers.Real)):
            return super().call(inputs, training=training)
        drop = round(self.rate * _LEVELS)
        if drop == 0:
            return tf.identity(inputs)
        if drop >= _LEVELS:
            return super().call(inputs, training=training)
        if training is None:
            training = keras.backend.learning_phase()

        def dropped():
            seed = self._draw_seed(generator)
            shape = tf.shape(inputs)
            size = tf.reduce_prod(shape)
            words = tf.random.stateless_uniform(
                [(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32,
                alg="threefry" if in_xla_context() else "philox")
            bits = tf.concat([tf.bitwise.right_shift(words, _BITS),
                              tf.bitwise.bitwise_and(words, _LEVELS - 1)], axis=0)[:size]
            keep = tf.reshape(bits, shape) >= drop
            scale = tf.cast(_LEVELS / (_LEVELS - drop), inputs.dtype)
            return tf.where(keep, inputs * scale, tf.zeros_like(inputs))

        return tf.__internal__.smart_cond.smart_cond(training, dropped,
                                                     lambda: tf.identity(inputs))

    def make_seed(self):
        """A fresh (2,) seed from this layer's generator (for `seeded_masks`)."""
        self._random_generator._maybe_init()
        return self._random_generator._generator.make_seeds(1)[:, 0]

    @staticmethod
    def _draw_seed(generator):
        if _scope.seed is None:
            return generator.make_seeds(1)[:, 0]
        seed = tf.random.experimental.stateless_fold_in(_scope.seed, _scope.count)
        _scope.count += 1
        return seed
