"""Optimizers by name, built as ordinary Keras optimizers."""

from tfllm._keras import keras
from tfllm.errors import UserError

OPTIMIZERS = ("adamw", "adam", "lion", "sgd", "adagrad", "rmsprop")

# Variables whose names contain one of these are not weight-decayed: gains and shifts of
# normalizations and biases (decaying them only fights the normalization).
NO_DECAY_NAMES = ("gamma", "beta", "bias")


# Optimizers tf_keras has in a DTensor version (keras.dtensor.experimental.optimizers).
DTENSOR_OPTIMIZERS = ("adamw", "adam", "sgd", "adagrad", "rmsprop")


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
    if mesh is not None:
        if name not in DTENSOR_OPTIMIZERS:
            raise UserError(f"train.optimizer={name} has no DTensor version; on a mesh use one of "
                            f"{', '.join(DTENSOR_OPTIMIZERS)}.")
        optimizers = _MeshOptimizers(mesh)
    if name == "adamw":
        opt = optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay, beta_1=cfg.beta1,
                                     beta_2=cfg.beta2, epsilon=cfg.epsilon, global_clipnorm=clip)
        opt.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
        return opt
    if name == "lion":
        # Lion (Chen et al. 2023), tf_keras's own: sign updates, so it wants a learning rate
        # 3-10x below AdamW's and a weight decay as much larger.
        opt = keras.optimizers.Lion(learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2,
                                    weight_decay=cfg.weight_decay, global_clipnorm=clip)
        opt.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
        return opt
    if name == "adam":
        return optimizers.Adam(learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2,
                                     epsilon=cfg.epsilon, global_clipnorm=clip)
    if name == "sgd":
        return optimizers.SGD(learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                    global_clipnorm=clip)
    if name == "adagrad":
        return optimizers.Adagrad(learning_rate, epsilon=cfg.epsilon, global_clipnorm=clip)
    if name == "rmsprop":
        return optimizers.RMSprop(learning_rate, momentum=cfg.momentum, epsilon=cfg.epsilon,
                                        global_clipnorm=clip)
    raise ValueError(f"unknown optimizer {name!r}; use one of {OPTIMIZERS}.")


class _MeshOptimizers:
    """keras.optimizers' constructors for the DTensor versions, bound to a mesh."""

    def __init__(self, mesh):
        self.mesh = mesh

    def __getattr__(self, name):
        cls = getattr(keras.dtensor.experimental.optimizers, name)
        return lambda *args, **kwargs: cls(*args, mesh=self.mesh, **kwargs)
