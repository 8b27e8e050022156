"""Optimizers by name, built as ordinary Keras optimizers."""

from tfllm._keras import keras

OPTIMIZERS = ("adamw", "adam", "lion", "sgd", "adagrad", "rmsprop")

# Variables whose names contain one of these are not weight-decayed: gains and shifts of
# normalizations and biases (decaying them only fights the normalization).
NO_DECAY_NAMES = ("gamma", "beta", "bias")


def build_optimizer(cfg, learning_rate):
    """The Keras optimizer `cfg.optimizer` names, clipping by `cfg.grad_clip` global norm.

    Args:
        cfg: the `train` config section.
        learning_rate: a float or a LearningRateSchedule.
    """
    clip = cfg.grad_clip if cfg.grad_clip > 0 else None
    name = cfg.optimizer
    if name == "adamw":
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay, beta_1=cfg.beta1,
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
        return keras.optimizers.Adam(learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2,
                                     epsilon=cfg.epsilon, global_clipnorm=clip)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                    global_clipnorm=clip)
    if name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate, epsilon=cfg.epsilon, global_clipnorm=clip)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=cfg.momentum, epsilon=cfg.epsilon,
                                        global_clipnorm=clip)
    raise ValueError(f"unknown optimizer {name!r}; use one of {OPTIMIZERS}.")
