"""Speedrun: the fastest route to a whole-validation loss target on char-level Tiny
Shakespeare (the last 10% of the bundled corpus, evaluated in full).

    python tools/speedrun.py --config=speedrun_shakespeare_char --target=1.88 --repeats=3

The best recipe measured so far (docs/speedrun.md): the default GPT's size with rotary
positions, RMSNorm and a SwiGLU MLP, a 700-step cosine at a higher peak, evaluated every
100 steps. The baseline of the ablations is this with position=learned,
normalization=layer, activation=gelu.
"""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(position="rope", normalization="rms", activation="swiglu")
    config.train.update(steps=700, learning_rate=3e-3, warmup_steps=50, target_val_loss=1.88)
    config.eval.every = 100
    config.checkpoint.every = 700
    config.log_every = 50
    config.sample.length = 0
    return config
