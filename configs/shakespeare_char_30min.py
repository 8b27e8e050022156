"""The best whole-validation loss on char-level Tiny Shakespeare within 30 minutes of
wall time on 2 CPU cores (issue 5):

    python tools/speedrun.py --config=shakespeare_char_30min --target=1.47 --budget=1800

The speedrun recipe (rotary positions, RMSNorm, SwiGLU, QK normalization, Muon for the
hidden matrices and AdamW for the rest) on a model sized for 30 minutes of this machine:
6 blocks of width 192 (6 heads), context 128, batch 32 (~2,800 tokens/s measured by
`python -m tfllm.benchmark`), so 950 steps (3.9 M tokens, ~4 passes over the training
split) leave room for an evaluation of the whole validation split every 100 steps.
The model memorizes from about step 500 on. Weight decay costs nothing per step and took
the best loss (each time at step 900) from 1.4995 (0.1) to 1.4857 (0.5), 1.4794 (1.0) and
1.4773 (2.0, the value here); dropout 0.1 on top of it regularized too much (1.4922).
Evaluating an exponential moving average of the weights (decay 0.99) took step 900 from
1.4773 to 1.4582 (docs/speedrun.md).
"""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(num_layers=6, num_heads=6, hidden_dim=192, max_length=128,
                        position="rope", normalization="rms", activation="swiglu", qk_norm=True)
    config.train.update(optimizer="muon", batch_size=32, steps=950, learning_rate=3e-3,
                        warmup_steps=30, weight_decay=2.0, ema_decay=0.99)
    config.eval.update(every=100)
    config.checkpoint.every = 100
    config.log_every = 50
    config.sample.length = 0
    return config
