"""Quantization-aware training of tfllm's models with tensorflow-model-optimization.

tfmot's `quantize_model` takes Sequential and Functional models only, and knows neither
EinsumDense nor tfllm's FusedLSTM. tfllm therefore wraps the quantizable sublayers of
its (subclassed) models in place with tfmot's own `QuantizeWrapperV2`, with the
QuantizeConfigs below:

    EinsumDense / Dense   the attention projections (query, key, value,
                          attention_output), the MLP (mlp_in, mlp_gate, mlp_out) and the
                          LSTM model's lm_head: the kernel fake-quantized to int8
                          (symmetric, per tensor), the output to int8 (asymmetric, a range
                          tracked over batches)
    FusedLSTM, GRU        kernel and recurrent kernel fake-quantized to int8; in the
                          FusedLSTM also the gate pre-activations, cell state and
                          output of every step (LSTMStateRanges), which the int8 TFLite
                          model rounds (the GRU has no TFLite export)

The attention scores, probabilities and their mix with the values are fake-quantized to
int8 too (FakeQuant layers the attention calls). Norms, embeddings, RoPE, the residual
stream and the logits stay float in training; the TFLite converter quantizes them from
representative data when it writes the full-integer model (tfllm.inference.exporting,
variant "int8").

Wrapping keeps the very same kernel variables, so the optimizer's slots and schedule
carry on; it adds the quantizers' range variables, which checkpoints then hold (a
checkpoint from before the switch restores into an unwrapped model, one from after it
into a wrapped one: tfllm.runs.run_directory.match_checkpoint).

Example:
    >>> quantize_model(model)   # in place; returns the number of wrapped layers
    >>> model.fit(...)          # quantization-aware from here on
"""

import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfllm._keras import keras
from tfllm.models.wrapping import replace_layers
from tfllm.errors import UserError
from tfllm.layers.causal_self_attention import CausalSelfAttention
from tfllm.layers.fused_lstm import FusedLSTM, LSTMStateRanges

Q = tfmot.quantization.keras

# tfmot's MovingAverageQuantizer starts its range at [-6, 6] and moves it by 0.1% a step,
# so a QAT phase of a few hundred steps would export ranges still mostly the initial
# guess. This quantizer takes its first training batch's range, then an EMA of 0.99.
RANGE_DECAY = 0.99


class RangeQuantizer(Q.quantizers.Quantizer):
    """8-bit asymmetric fake quantization of an activation over a range tracked in
    training: the first batch's [min, max] (widened to hold 0), then an EMA."""

    def build(self, tensor_shape, name, layer):
        def weight(suffix, value, dtype=tf.float32):
            return layer.add_weight(f"{name}_{suffix}", shape=(), dtype=dtype, trainable=False,
                                    initializer=keras.initializers.Constant(value))

        return {"min_var": weight("min", -6.0), "max_var": weight("max", 6.0),
                "seen": weight("seen", 0, tf.int32)}

    def __call__(self, inputs, training, weights, **kwargs):
        low, high = weights["min_var"], weights["max_var"]
        if training:
            batch_low = tf.minimum(tf.reduce_min(inputs), 0.0)
            batch_high = tf.maximum(tf.reduce_max(inputs), 0.0)
            first = tf.equal(weights["seen"], 0)
            new_low = tf.where(first, batch_low, RANGE_DECAY * low + (1 - RANGE_DECAY) * batch_low)
            new_high = tf.where(first, batch_high,
                                RANGE_DECAY * high + (1 - RANGE_DECAY) * batch_high)
            with tf.control_dependencies([low.assign(new_low), high.assign(new_high),
                                          weights["seen"].assign_add(1)]):
                return tf.quantization.fake_quant_with_min_max_vars(
                    inputs, tf.stop_gradient(new_low), tf.stop_gradient(new_high), num_bits=8)
        return tf.quantization.fake_quant_with_min_max_vars(inputs, low, high, num_bits=8)

    def get_config(self):
        return {}

    def __eq__(self, other):
        return isinstance(other, RangeQuantizer)

    def __ne__(self, other):
        return not self == other


class FakeQuant(keras.layers.Layer):
    """int8 fake quantization of an activation that is no layer's output: over a tracked
    range (RangeQuantizer), or a fixed one (`fixed=(min, max)`, e.g. (0, 1) for the
    attention probabilities, the range TFLite's int8 softmax writes)."""

    def __init__(self, fixed=None, **kwargs):
        super().__init__(**kwargs)
        self.fixed = fixed
        self.quantizer = RangeQuantizer()

    def build(self, input_shape):
        if self.fixed is None:
            self.range_weights = self.quantizer.build(input_shape, "range", self)
        super().build(input_shape)

    def call(self, x, training=None):
        if self.fixed is not None:
            return tf.quantization.fake_quant_with_min_max_args(
                x, min=self.fixed[0], max=self.fixed[1], num_bits=8)
        return self.quantizer(x, bool(training), self.range_weights)

    def get_config(self):
        return {**super().get_config(), "fixed": self.fixed}


def _kernel_quantizer():
    return Q.quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True,
                                           narrow_range=True)


class _WeightsQuantizeConfig(Q.QuantizeConfig):
    """Fake-quantizes the named weight attributes of a layer (of `owner(layer)`)."""

    attributes = ()

    def owner(self, layer):
        return layer

    def get_weights_and_quantizers(self, layer):
        return [(getattr(self.owner(layer), name), _kernel_quantizer())
                for name in self.attributes]

    def set_quantize_weights(self, layer, quantize_weights):
        for name, weight in zip(self.attributes, quantize_weights):
            setattr(self.owner(layer), name, weight)

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


class ProjectionQuantizeConfig(_WeightsQuantizeConfig):
    """EinsumDense or Dense: int8 kernel, int8 output."""

    attributes = ("kernel",)

    def get_output_quantizers(self, layer):
        return [RangeQuantizer()]


class LSTMQuantizeConfig(_WeightsQuantizeConfig):
    """FusedLSTM: int8 input and recurrent kernels (its outputs are a list, which tfmot's
    wrapper cannot fake-quantize; the converter calibrates them)."""

    attributes = ("kernel", "recurrent_kernel")


class GRUQuantizeConfig(LSTMQuantizeConfig):
    """keras GRU: int8 input and recurrent kernels of its cell."""

    def owner(self, layer):
        return layer.cell


QUANTIZE_CONFIGS = {
    keras.layers.EinsumDense: ProjectionQuantizeConfig,
    keras.layers.Dense: ProjectionQuantizeConfig,
    FusedLSTM: LSTMQuantizeConfig,
    keras.layers.GRU: GRUQuantizeConfig,
}
# Layers that stay float in training (the converter quantizes them from data) and hold
# no kernel of their own to wrap.
FLOAT_LAYERS = ("FakeQuant", "TokenEmbedding", "PositionEmbedding", "RMSNormalization",
                "LayerNormalization", "RotaryEmbedding", "Dropout")


def is_quantized(model):
    return any(isinstance(layer, Q.QuantizeWrapperV2) for layer in model.submodules)


def _config_for(layer):
    for cls, config in QUANTIZE_CONFIGS.items():
        if type(layer) is cls:
            return config()
    return None


def quantize_model(model):
    """Wraps every quantizable sublayer of a built tfllm model in place; returns how many.

    Raises UserError when the model holds a weight-bearing layer tfllm cannot quantize
    (anything but the projections, recurrent layers, embeddings and norms)."""
    if not model.built:
        raise ValueError("build the model (call it once) before quantize_model.")
    if is_quantized(model):
        return 0
    covered = set()
    for layer in model.submodules:
        if _config_for(layer) is not None:
            covered.update(id(child) for child in layer.submodules)
            covered.add(id(layer))
    for layer in model.submodules:
        own_weights = getattr(layer, "_trainable_weights", []) + getattr(
            layer, "_non_trainable_weights", [])
        if (id(layer) not in covered and isinstance(layer, keras.layers.Layer) and own_weights
                and type(layer).__name__ not in FLOAT_LAYERS):
            raise UserError(f"quantization-aware training cannot quantize layer {layer.name!r} "
                            f"({type(layer).__name__}); tfllm quantizes EinsumDense, Dense, "
                            "FusedLSTM and GRU layers: use those, or leave qat_start_step unset.")
    return _wrap(model)


def _wrap(model):
    """Wraps each quantizable layer of `model` in place (and gives each attention its
    score, probability and mix FakeQuants, each FusedLSTM its state ranges); returns how
    many were wrapped."""
    for layer in model.submodules:
        if isinstance(layer, FusedLSTM) and layer.state_ranges is None:
            layer.state_ranges = LSTMStateRanges(name="state_ranges")
        if isinstance(layer, CausalSelfAttention) and layer.score_quantizer is None:
            layer.score_quantizer = FakeQuant(name="score_quantizer")
            layer.prob_quantizer = FakeQuant(fixed=(0.0, 1.0), name="prob_quantizer")
            layer.mix_quantizer = FakeQuant(name="mix_quantizer")

    def wrapper(layer):
        config = _config_for(layer)
        if config is not None:
            return Q.QuantizeWrapperV2(layer, config, name=layer.name)
        return layer if isinstance(layer, Q.QuantizeWrapperV2) else None

    return replace_layers(model, wrapper)


class QuantizationAwareTraining(keras.callbacks.Callback):
    """Switches training to quantization-aware at optimizer step `start_step`.

    The callback's model is tfllm's TrainingModel (its `lm` is wrapped) or a plain
    tfllm model. Weights, optimizer state and schedule continue unchanged; the next step
    runs the retraced, fake-quantized step. Resuming a run from a checkpoint at or past
    `start_step` needs the model wrapped before the restore (tfllm.train does it).

    Example:
        >>> task.fit(dataset, steps_per_epoch=1000,
        ...          callbacks=[QuantizationAwareTraining(start_step=800)])
    """

    def __init__(self, start_step):
        super().__init__()
        self.start_step = start_step
        self.switched_at = None

    def _lm(self):
        return getattr(self.model, "lm", self.model)

    def on_train_begin(self, logs=None):
        self._done = is_quantized(self._lm())  # e.g. resumed from a QAT checkpoint

    def on_train_batch_begin(self, batch, logs=None):
        if self._done:
            return
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self.start_step:
            quantize_model(self._lm())
            self.switched_at, self._done = step, True
            # fit calls model.train_function every step: the retraced step takes over.
            self.model.train_function = self.model.make_train_function(force=True)
            self.model.test_function = None
            self.model.predict_function = None


def quantize_built(model):
    """quantize_model for a model that may not be built yet (before a restore)."""
    if not model.built:
        model(tf.zeros((1, 1), tf.int32))
    return quantize_model(model)
