"""The best whole-validation loss on char-level Tiny Shakespeare within 30 minutes of
wall time on 2 CPU cores (issue 5):

    python -m tfllm.speedrun --config=shakespeare_char_30min --target=0 --budget=1800

The speedrun recipe (rotary positions, RMSNorm, SwiGLU, QK normalization, Muon for the
hidden matrices and AdamW for the rest) on a model sized for this machine: 6 blocks of
width 192 (6 heads), context 128, batch 32, an evaluation of the whole validation split
every 100 steps. 1500 steps (6.1 M tokens, ~6 passes over the training split) took
1,409-1,532 s of the 1,800 in three runs (4,600 tokens/s by `python -m tfllm.benchmark`),
leaving room for a slow stretch of the VM. Against memorizing: a weight decay of 2.0
(0.1 -> 2.0 took the best loss of 950 steps from 1.4995 to 1.4773), an exponential moving
average of the weights (decay 0.99) for evaluation (1.4773 -> 1.4582), and dropout 0.1 on
the residual branches only, which loses in 950 steps (1.4922 against 1.4773) and wins in
1500 (1.4544 at step 1500 against 1.4599 at step 900 of the 950-step recipe).
docs/speedrun.md condenses each measurement (docs/results/speedrun-log.md has them all).
"""

from tfllm.configs import base


def get_config():
    config = base.get_config()
    config.model.update(num_layers=6, num_heads=6, hidden_dim=192, max_length=128,
                        position="rope", normalization="rms", activation="swiglu", qk_norm=True,
                        dropout=0.1, attention_dropout=0.0)
    config.train.update(optimizer="muon", batch_size=32, steps=1500, learning_rate=3e-3,
                        warmup_steps=30, weight_decay=2.0, ema_decay=0.99)
    config.eval.update(every=100)
    config.checkpoint.every = 100
    config.log_every = 50
    config.sample.length = 0
    return config
