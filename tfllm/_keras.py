"""The one place tfllm imports Keras.

tfllm is built on tf_keras (the Keras 2 API): tensorflow-model-optimization's
quantization-aware training and DTensor layout maps with `model.fit` work only
there today. `tfllm/__init__.py` sets TF_USE_LEGACY_KERAS before TensorFlow is
imported, which makes `tf.keras` *be* tf_keras, so user code written against
`tf.keras` composes with tfllm layers and models. A later move to another Keras
changes this file, not the package.
"""

import tensorflow as tf
import tf_keras as keras
from tf_keras.src.utils import control_flow_util as _control_flow_util

# Dropout draws from a tf.random.Generator whose state is a tracked object, so
# it is saved in checkpoints and a resumed run continues the same random stream.
keras.backend.experimental.enable_tf_random_generator()

register = keras.saving.register_keras_serializable


def in_xla_context():
    """True while tracing a function XLA compiles (jit_compile=True). tf_keras's private
    test, which its own layers use the same way; the one place tfllm relies on it."""
    return _control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


# The weights quantization and pruning act on, and Muon updates (by their own names).
KERNEL_NAMES = ("kernel", "recurrent_kernel")


def weight_name(variable):
    """A variable's own name: "kernel" for "block_0/attention/query/kernel:0"."""
    return variable.name.split("/")[-1].split(":")[0]


def fresh_initializer(initializer):
    """A new instance of `initializer` (name, config or instance).

    tf_keras returns the same values every time one unseeded initializer instance is
    called, so each weight gets its own instance: no two weights start correlated.
    """
    return keras.initializers.get(keras.initializers.serialize(keras.initializers.get(initializer)))


class Keras2Model(keras.Model):
    """A tf_keras Model whose `compile` refuses Keras 3 objects in one clear line.

    A Keras 3 optimizer, loss or metric (from the `keras` package, or from `tf.keras`
    used before tfllm was imported, which then resolves to Keras 3) fails deep in tf_keras
    with "Could not interpret optimizer identifier", which does not say why.
    """

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        for what, value in (("optimizer", optimizer), ("loss", loss), ("metrics", metrics),
                            ("weighted_metrics", kwargs.get("weighted_metrics"))):
            for obj in tf.nest.flatten(value):
                if type(obj).__module__.split(".")[0] == "keras":
                    raise TypeError(
                        f"the {what} {type(obj).__name__} is a Keras 3 object; tfllm models are "
                        "tf_keras (Keras 2) models: import tfllm before the first use of "
                        "tf.keras (or set TF_USE_LEGACY_KERAS=1), or build it from tf_keras.")
        return super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)


__all__ = ["keras", "register", "fresh_initializer", "in_xla_context", "Keras2Model"]


def map_layouts(model, layout_map):
    """Re-creates the variables a subclassed `model` made under `layout_map.scope()` as
    DTensor variables with their layouts. tf_keras does this itself only on a model's
    first call, and only if the model was not built in its constructor (tfllm's are, so
    they have weights at once); this calls the same tf_keras function directly."""
    from tf_keras.src.dtensor import layout_map as layout_map_lib

    layout_map_lib._map_subclass_model_variable(model, layout_map)
    return model
