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

    def step(carry, z_x):
        h, c, _ = carry
        act = _gates(z_x + tf.matmul(h, recurrent_kernel))
        i, f, g, o = tf.split(act, 4, axis=-1)
        c = f * c + i * g
        return o * tf.tanh(c), c, act

    hs, cs, acts = tf.scan(step, xz, initializer=(h0, c0, tf.zeros_like(xz[0])))

    def grad(d_hs, d_c_last):
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
                                initializer=(tf.zeros_like(h0), d_c_last, tf.zeros_like(xz[0])))
        # One (U, T B) x (T B, G) matmul for R's gradient, outside the loop.
        d_recurrent = tf.einsum("tbu,tbg->ug", h_prev, dzs)
        return dzs, dhs[0], dcs[0], d_recurrent

    return (hs, cs[-1]), grad


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
        hs, c_last = lstm_sequence(xz, h0, c0, tf.convert_to_tensor(self.recurrent_kernel))
        return [tf.transpose(hs, [1, 0, 2]), hs[-1], c_last]

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, unit_forget_bias=self.unit_forget_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            recurrent_initializer=keras.initializers.serialize(self.recurrent_initializer),
        )
        return config
