"""Magnitude pruning of tfllm's models with tensorflow-model-optimization.

The same kernels quantization-aware training quantizes are pruned: the attention
projections and the MLP (EinsumDense), Dense layers (the LSTM model's lm_head) and the
LSTM/GRU input and recurrent kernels. Embeddings (the tied output head of the GPT),
norms and biases stay dense.

tfmot's `PruneLowMagnitude` wrapper does the work (a mask per kernel, recomputed from
the weights' magnitudes on its schedule, and `kernel = kernel * mask` before every call);
tfllm puts it in place inside its subclassed models (tfllm.models.wrapping) and
changes one thing, in `MagnitudePruning`: the schedule is stepped by the optimizer's
step instead of by tfmot's count of the wrapper's training calls, which gradient
accumulation (several calls per step) would miscount; so its `call` drops that counter
(and the assert on it, which XLA ignores with a warning every trace).

The schedule is tfmot's PolynomialDecay: sparsity 0 at `start_step` rising (cubic) to
`sparsity` at `end_step`, masks recomputed every `every` steps in between and fixed after.

Example:
    >>> task.fit(dataset, steps_per_epoch=1000,
    ...          callbacks=[MagnitudePruningCallback(0.5, start_step=200, end_step=800)])
    >>> strip_pruning(model)   # in place: masks applied, wrappers removed
"""

import inspect

import tensorflow as tf
import tensorflow_model_optimization as tfmot
# PruneLowMagnitude and the Pruning object behind it are not exported by tfmot's API.
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

from tfllm._keras import KERNEL_NAMES, keras, weight_name
from tfllm.models.wrapping import replace_layers
from tfllm.layers.fused_lstm import FusedLSTM

S = tfmot.sparsity.keras


def _prunable_weights(layer):
    """The kernels pruning masks, by layer type (None: the layer is not pruned)."""
    if type(layer) in (keras.layers.EinsumDense, keras.layers.Dense):
        return [layer.kernel]
    if type(layer) is FusedLSTM:
        return [layer.kernel, layer.recurrent_kernel]
    if type(layer) is keras.layers.GRU:
        return [layer.cell.kernel, layer.cell.recurrent_kernel]
    return None


def schedule(sparsity, start_step, end_step, every):
    return S.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity,
                             begin_step=start_step, end_step=end_step, frequency=every)


class MagnitudePruning(PruneLowMagnitude):
    """tfmot's PruneLowMagnitude whose schedule reads `step_fn()` (the optimizer's step)."""

    def __init__(self, layer, pruning_schedule, step_fn=None, **kwargs):
        super().__init__(layer, pruning_schedule=pruning_schedule, **kwargs)
        self.step_fn = step_fn

    def build(self, input_shape):
        super().build(input_shape)
        self.configure(self.pruning_schedule, self.step_fn)

    def configure(self, pruning_schedule, step_fn):
        """Sets the schedule and the step it reads (e.g. after a restore)."""
        self.pruning_schedule, self.step_fn = pruning_schedule, step_fn
        if self.built:
            self.pruning_obj = pruning_impl.Pruning(
                training_step_fn=step_fn or (lambda: self.pruning_step),
                pruning_vars=self.pruning_vars, pruning_schedule=pruning_schedule,
                block_size=self.block_size, block_pooling_type=self.block_pooling_type)

    def call(self, inputs, training=None, **kwargs):
        if training is None:
            training = keras.backend.learning_phase()
        if training:
            self.pruning_obj.conditional_mask_update()  # on the schedule's steps only
        self.pruning_obj.weight_mask_op()  # kernel = kernel * mask
        if "training" in inspect.signature(self.layer.call).parameters:
            kwargs["training"] = training
        return self.layer.call(inputs, **kwargs)

    def apply_masks(self):
        for weight, mask, _ in self.pruning_vars:
            weight.assign(weight * mask)


def wrappers(model):
    return [layer for layer in model.submodules if isinstance(layer, MagnitudePruning)]


def is_pruned(model):
    return bool(wrappers(model))


def prune_model(model, pruning_schedule, step_fn=None):
    """Wraps every prunable sublayer of a built tfllm model in place, builds the wrappers
    (one forward pass) and returns how many were wrapped."""
    if not model.built:
        raise ValueError("build the model (call it once) before prune_model.")
    if is_pruned(model):
        return 0

    def wrapper(layer):
        weights = _prunable_weights(layer)
        if weights is None:
            return layer if isinstance(layer, PruneLowMagnitude) else None
        layer.get_prunable_weights = lambda: weights  # what tfmot asks a custom layer for
        return MagnitudePruning(layer, pruning_schedule, step_fn)

    count = replace_layers(model, wrapper)
    model(tf.zeros((1, 1), tf.int32), training=False)  # creates masks, thresholds
    for layer in wrappers(model):
        layer.configure(pruning_schedule, step_fn)
    return count


def prune_built(model):
    """prune_model for a model that may not be built yet, before restoring a pruned
    checkpoint into it (the schedule is not used then)."""
    if not model.built:
        model(tf.zeros((1, 1), tf.int32))
    return prune_model(model, S.ConstantSparsity(0.0, 0))


def strip_pruning(model):
    """In place: kernels times their masks, wrappers replaced by the layers they wrap.
    Returns how many wrappers were removed."""
    for layer in wrappers(model):
        layer.apply_masks()
    return replace_layers(model, lambda layer: layer.layer if isinstance(
        layer, MagnitudePruning) else None)


def sparsity(model):
    """{"pruned_fraction": zeros among the kernels pruning prunes, "model_fraction": zeros
    among all parameters, "prunable_parameters": their count} of any tfllm model."""
    masked = {id(weight): weight * mask for layer in wrappers(model)
              for weight, mask, _ in layer.pruning_vars}
    # By variable name: a quantization-aware wrapper swaps its layer's kernel attribute
    # for a fake-quantized tensor of its last trace.
    kernels = [masked.get(id(w), w) for w in model.trainable_weights
               if weight_name(w) in KERNEL_NAMES]
    zeros = sum(int(tf.math.count_nonzero(tf.equal(k, 0.0))) for k in kernels)
    prunable = sum(int(tf.size(k)) for k in kernels)
    total = sum(int(tf.size(w)) for w in model.trainable_weights)
    return {"pruned_fraction": zeros / max(prunable, 1), "model_fraction": zeros / max(total, 1),
            "prunable_parameters": prunable}


class MagnitudePruningCallback(keras.callbacks.Callback):
    """Prunes the model's kernels from optimizer step `start_step` to `sparsity` (a
    fraction of each kernel) at `end_step`, recomputing masks every `every` steps.

    The callback's model is tfllm's TrainingModel (its `lm` is pruned) or a plain tfllm
    model. At `start_step` the kernels are wrapped in place (same variables: optimizer
    slots and schedule continue) and the step is retraced. Every call multiplies the kernels
    by their masks first; at the end of training the masks are applied once more, so the
    final weights hold the zeros (a checkpoint holds the masks: tfllm strips them on load).
    """

    def __init__(self, sparsity, start_step, end_step, every=50):
        super().__init__()
        self.schedule = schedule(sparsity, start_step, end_step, every)
        self.start_step = start_step

    def _lm(self):
        return getattr(self.model, "lm", self.model)

    def _step(self):
        return self.model.optimizer.iterations

    def on_train_begin(self, logs=None):
        for layer in wrappers(self._lm()):  # resumed from a pruned checkpoint
            layer.configure(self.schedule, self._step)

    def on_train_batch_begin(self, batch, logs=None):
        if is_pruned(self._lm()) or int(self._step().numpy()) < self.start_step:
            return
        with self.model.distribute_strategy.scope():
            prune_model(self._lm(), self.schedule, self._step)
        # fit calls model.train_function every step: the retraced step takes over.
        self.model.train_function = self.model.make_train_function(force=True)
        self.model.test_function = None
        self.model.predict_function = None

    def on_train_end(self, logs=None):
        for layer in wrappers(self._lm()):
            layer.apply_masks()
