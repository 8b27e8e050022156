"""An LSTM layer whose time loop does only what must be sequential.

Dimensions: B batch, T time steps, D input width, U units, G = 4 U gate pre-activations
(gate order i, f, g, o, as Keras).

Why not keras.layers.LSTM: on a CPU its loop does both projections every step, and its
gradient (the loop's automatic one) does four matmuls per step. Here the input
projection of all T steps is one (B T, D) x (D, G) matmul before the loop; the forward
loop does h @ R and the gates; the backward loop (a custom gradient) does only
dz @ R^T and the gate derivatives; the weight gradients are then one large matmul each
over all steps. TensorFlow's fused BlockLSTMV2 op was measured slower than Keras's LSTM
here (docs/benchmarks.md), so it is not used.
"""

import tensorflow as tf

from tfllm._keras import fresh_initializer, keras, register


def _gates(z):
    """Activations [i, f, g, o] (B, G) of pre-activations z (B, G)."""
    i, f, g, o = tf.split(z, 4, axis=-1)
    return tf.concat([tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)], axis=-1)


def _forward(xz, h0, c0, recurrent_kernel, quantize=None):
    """The recurrence: hs, cs (T, B, U), gate activations (T, B, G) and, with `quantize`
    (x, k) -> x, per step the [min, max] of z, c and h before it rounds them (T, 3, 2);
    without, None (and the float loop carries nothing more)."""

    def step(carry, z_x):
        h, c = carry[:2]
        z = z_x + tf.matmul(h, recurrent_kernel)
        act = _gates(z if quantize is None else quantize(z, 0))
        i, f, g, o = tf.split(act, 4, axis=-1)
        c_new = f * c + i * g
        if quantize is None:
            return o * tf.tanh(c_new), c_new, act
        c = quantize(c_new, 1)
        h_new = o * tf.tanh(c)
        stats = tf.stack([[tf.reduce_min(v), tf.reduce_max(v)] for v in (z, c_new, h_new)])
        return quantize(h_new, 2), c, act, stats

    initial = (h0, c0, tf.zeros_like(xz[0]))
    if quantize is None:
        return (*tf.scan(step, xz, initializer=initial), None)
    return tf.scan(step, xz, initializer=initial + (tf.zeros((3, 2)),))


def _backward(d_hs, d_c_last, h0, c0, recurrent_kernel, hs, cs, acts):
    """Gradients (d xz, d h0, d c0, d R) of the recurrence from its saved activations."""
    d_c_last = tf.zeros_like(c0) if d_c_last is None else d_c_last
    h_prev = tf.concat([h0[tf.newaxis], hs[:-1]], axis=0)  # (T, B, U)
    c_prev = tf.concat([c0[tf.newaxis], cs[:-1]], axis=0)  # (T, B, U)
    r_t = tf.transpose(recurrent_kernel)                    # (G, U)

    def back(carry, elems):
        dh_next, dc_next, _ = carry
        d_h, act, c, c_p = elems
        i, f, g, o = tf.split(act, 4, axis=-1)
        dh = d_h + dh_next
        tanh_c = tf.tanh(c)
        dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
        dz = tf.concat([dc * g * i * (1 - i), dc * c_p * f * (1 - f),
                        dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)], axis=-1)
        return tf.matmul(dz, r_t), dc * f, dz

    dhs, dcs, dzs = tf.scan(back, (d_hs, acts, cs, c_prev), reverse=True,
                            initializer=(tf.zeros_like(h0), d_c_last, tf.zeros_like(acts[0])))
    # One (U, T B) x (T B, G) matmul for R's gradient, outside the loop.
    d_recurrent = tf.einsum("tbu,tbg->ug", h_prev, dzs)
    return dzs, dhs[0], dcs[0], d_recurrent


@tf.custom_gradient
def lstm_sequence(xz, h0, c0, recurrent_kernel):
    """Runs the LSTM recurrence over time-major input projections.

    Args:
        xz: (T, B, G) input projections plus bias, x_t W + b.
        h0, c0: (B, U) initial states.
        recurrent_kernel: R, (U, G).

    Returns:
        hs (T, B, U), every step's output, and c_last (B, U), the final cell state.
    """
    hs, cs, acts, _ = _forward(xz, h0, c0, recurrent_kernel)

    def grad(d_hs, d_c_last):
        return _backward(d_hs, d_c_last, h0, c0, recurrent_kernel, hs, cs, acts)

    return (hs, cs[-1]), grad


@tf.custom_gradient
def lstm_sequence_quantized(xz, h0, c0, recurrent_kernel, ranges, active, widen):
    """lstm_sequence with the gate pre-activations z, the cell state c and the output h
    fake-quantized to int8 (quantization-aware training; an int8 TFLite model rounds
    them), over `ranges` (3, 2) = [min, max] of z, c, h, when `active`; when `widen`
    (training), each step's range also holds that step's values, so training rounds but
    never clips (a clipped state stalls learning while the ranges catch up). The gradient
    is the straight-through one (the float formula at the rounded values).

    Returns hs, c_last and per step the unrounded [min, max] of z, c, h (T, 3, 2)."""

    def quantize(x, k):
        low, high = ranges[k, 0], ranges[k, 1]
        low = tf.where(widen, tf.minimum(low, tf.reduce_min(x)), low)
        high = tf.where(widen, tf.maximum(high, tf.reduce_max(x)), high)
        rounded = tf.quantization.fake_quant_with_min_max_vars(x, low, high, num_bits=8)
        return tf.where(active, rounded, x)

    hs, cs, acts, stats = _forward(xz, h0, c0, recurrent_kernel, quantize)

    def grad(d_hs, d_c_last, d_stats):
        return (*_backward(d_hs, d_c_last, h0, c0, recurrent_kernel, hs, cs, acts),
                tf.zeros_like(ranges), None, None)

    return (hs, cs[-1], stats), grad


@register("tfllm")
class LSTMStateRanges(keras.layers.Layer):
    """The int8 ranges quantization-aware training rounds a FusedLSTM's gate
    pre-activations, cell state and output to (tfllm.compression.qat sets one as the
    layer's `state_ranges`): the first training batch's [min, max] (widened to hold 0),
    then an EMA of `decay`; no rounding before that first batch."""

    def __init__(self, decay=0.99, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay

    def build(self, input_shape=None):
        self.ranges = self.add_weight("ranges", shape=(3, 2), trainable=False,
                                      initializer=keras.initializers.Constant([[-6.0, 6.0]] * 3))
        self.seen = self.add_weight("seen", shape=(), dtype=tf.int32, trainable=False,
                                    initializer="zeros")
        super().build(input_shape)

    def update(self, stats):
        """Folds one batch's per-step [min, max] (T, 3, 2) into the ranges."""
        batch = tf.stack([tf.minimum(tf.reduce_min(stats[:, :, 0], axis=0), 0.0),
                          tf.maximum(tf.reduce_max(stats[:, :, 1], axis=0), 0.0)], axis=1)
        new = tf.where(self.seen > 0, self.decay * self.ranges + (1 - self.decay) * batch, batch)
        return tf.group(self.ranges.assign(new), self.seen.assign_add(1))

    def get_config(self):
        return {**super().get_config(), "decay": self.decay}


@register("tfllm")
class FusedLSTM(keras.layers.Layer):
    """LSTM (B, T, D) -> [outputs (B, T, U), h (B, U), c (B, U)], Keras's gate math and
    weight layout (`kernel` (D, G), `recurrent_kernel` (U, G), `bias` (G)), so weights
    copy between the two and results agree.

    Args:
        units: U.
        kernel_initializer, recurrent_initializer: as keras.layers.LSTM.
        unit_forget_bias: initialize the forget-gate bias to 1 (Jozefowicz et al. 2015).

    Call args:
        x: (B, T, D).
        initial_state: optional [h, c], each (B, U).

    Example:
        >>> outputs, h, c = FusedLSTM(32)(tf.zeros((2, 5, 8)))
        >>> outputs.shape
        TensorShape([2, 5, 32])
    """

    def __init__(self, units, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", unit_forget_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.unit_forget_bias = unit_forget_bias
        # int8 ranges of z, c and h, set by tfllm.compression.qat for quantization-aware
        # training (None: float).
        self.state_ranges = None

    def build(self, input_shape):
        u = self.units
        self.kernel = self.add_weight("kernel", shape=(input_shape[-1], 4 * u),
                                      initializer=fresh_initializer(self.kernel_initializer))
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", shape=(u, 4 * u),
            initializer=fresh_initializer(self.recurrent_initializer))
        forget = 1.0 if self.unit_forget_bias else 0.0
        self.bias = self.add_weight(
            "bias", shape=(4 * u,),
            initializer=keras.initializers.Constant([0.0] * u + [forget] * u + [0.0] * 2 * u))
        super().build(input_shape)

    def call(self, x, initial_state=None, training=None):
        if initial_state is None:
            zeros = tf.zeros((tf.shape(x)[0], self.units), self.compute_dtype)
            initial_state = [zeros, zeros]
        h0, c0 = (tf.cast(s, self.compute_dtype) for s in initial_state)
        x_tm = tf.transpose(x, [1, 0, 2])                          # (T, B, D)
        xz = tf.einsum("tbd,dg->tbg", x_tm, self.kernel) + self.bias  # (T, B, G)
        recurrent_kernel = tf.convert_to_tensor(self.recurrent_kernel)
        if self.state_ranges is None:
            hs, c_last = lstm_sequence(xz, h0, c0, recurrent_kernel)
        else:
            ranges = self.state_ranges
            if not ranges.built:
                ranges.build()
            hs, c_last, stats = lstm_sequence_quantized(
                xz, h0, c0, recurrent_kernel, tf.convert_to_tensor(ranges.ranges), ranges.seen > 0,
                tf.constant(bool(training)))
            if training:
                ranges.update(stats)
        return [tf.transpose(hs, [1, 0, 2]), hs[-1], c_last]

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, unit_forget_bias=self.unit_forget_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            recurrent_initializer=keras.initializers.serialize(self.recurrent_initializer),
        )
        return config
