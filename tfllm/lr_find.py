"""Learning-rate range test: `python -m tfllm.lr_find --config=NAME [--plot=lr_find.png]`.

Trains the config's model from its initialization, on its data and with its optimizer,
for --steps steps while the learning rate (train.learning_rate: for Muon the matrices
take it times train.muon_scale, as in training) rises geometrically from --min_lr to
--max_lr, with no warm-up and no decay. It stops early once the loss diverges (the smoothed
loss above 4x its lowest, or not finite). It prints the smoothed loss against the learning
rate, plots it to --plot (PNG), and suggests a peak learning rate: the learning rate at the
lowest smoothed loss divided by --divisor (docs/optimizers.md gives how that suggestion
compared with learning-rate sweeps of full runs).

    python -m tfllm.lr_find --config=speedrun_shakespeare_char --config.train.optimizer=soap
"""

import json
import math
import os

from absl import flags

from tfllm import cli
from tfllm.optim.lr_range import DIVERGED, analyse

cli.define_config_flag("default", "Config whose model, data and optimizer to test (a packaged "
                       "name or a file); override keys with --config.<section>.<key>=<value>.")
flags.DEFINE_float("min_lr", 1e-5, "The first step's learning rate.", lower_bound=0.0)
flags.DEFINE_float("max_lr", 1.0, "The last step's learning rate.", lower_bound=0.0)
flags.DEFINE_integer("steps", 100, "Steps of the rise (fewer if the loss diverges first).",
                     lower_bound=10)
flags.DEFINE_float("divisor", 3.0, "Suggested peak = the learning rate at the lowest smoothed "
                   "loss / this.", lower_bound=1.0)
cli.define_path("plot", "lr_find.png", "Write the curve to this PNG file; '' = no plot.")
flags.DEFINE_bool("json", False, "Print one JSON object instead of a report.")
FLAGS = flags.FLAGS

def range_test(config, min_lr, max_lr, steps):
    """(learning rates, losses) of the steps run, one each."""
    from tfllm._keras import keras
    from tfllm.data.pipeline import train_dataset
    from tfllm.optim.schedules import Geometric
    from tfllm.api.step_benchmark import training_data
    from tfllm.training.training_setup import apply_runtime_settings, build_training_setup

    from tfllm.config import validate
    from tfllm.configs import editable

    config = editable(config)
    config.train.steps, config.train.steps_per_execution = steps, 1  # one loss per step
    config = validate(config)
    t = config.train
    data = training_data(config)
    apply_runtime_settings(config)
    schedule = Geometric(min_lr, max_lr, steps)
    setup = build_training_setup(config, data.tokenizer.vocab_size, schedule=schedule)
    dataset = train_dataset(data.train, config.model.max_length, t.batch_size, config.seed)
    lrs = [min_lr * (max_lr / min_lr) ** (i / (steps - 1)) for i in range(steps)]
    losses = []

    class Recorder(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))
            lowest = min(losses)
            window = losses[-5:]
            if not math.isfinite(losses[-1]) or sum(window) / len(window) > DIVERGED * lowest:
                self.model.stop_training = True

    setup.task.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=[Recorder()], verbose=0)
    return lrs[:len(losses)], losses


def write_plot(result, path, title):
    """The raw and smoothed loss against the learning rate (log axis), with the lowest
    point and the suggestion marked; written whole or not at all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot(result["lr"], result["loss"], color="0.75", lw=1, label="loss per step")
    ax.plot(result["lr"], result["smoothed"], color="C0", lw=2, label="smoothed")
    ax.axvline(result["min_loss_lr"], color="C3", ls=":", label=f"lowest: {result['min_loss_lr']:.2g}")
    ax.axvline(result["suggested_lr"], color="C2", ls="--",
               label=f"suggested peak: {result['suggested_lr']:.2g}")
    ax.set_xscale("log")
    # Up to a little above the starting loss: a divergence's climb would squash the rest.
    ax.set_ylim(0.95 * result["min_loss"], 1.1 * result["smoothed"][0])
    ax.set_xlabel("learning rate (train.learning_rate)")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def report(result, title):
    lines = [title, f"{'learning rate':>14} {'smoothed loss':>14}"]
    stride = max(1, len(result["lr"]) // 20)
    for i in range(0, len(result["lr"]), stride):
        lines.append(f"{result['lr'][i]:>14.3g} {result['smoothed'][i]:>14.4f}")
    lines.append(f"lowest smoothed loss {result['min_loss']:.4f} at learning rate "
                 f"{result['min_loss_lr']:.3g}" + ("; still falling at the end: try a larger "
                                                    "--max_lr" if result["still_falling"] else
                                                    "; rose after it" if result["rose_after"] else ""))
    lines.append(f"suggested peak learning rate {result['suggested_lr']:.3g} "
                 f"(--config.train.learning_rate={result['suggested_lr']:.2g})")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    from tfllm.config import validate
    from tfllm.files import check_writable

    if not 0 < FLAGS.min_lr < FLAGS.max_lr:
        raise cli.UserError(f"--min_lr={FLAGS.min_lr} and --max_lr={FLAGS.max_lr}: the rise "
                            "needs 0 < min_lr < max_lr.")
    if FLAGS.plot:
        if not FLAGS.plot.lower().endswith(".png"):
            raise cli.UserError(f"--plot={FLAGS.plot} must name a .png file.")
        check_writable(os.path.dirname(FLAGS.plot) or ".", "--plot", "the plot's directory")
    config = validate(FLAGS.config)
    lrs, losses = range_test(config, FLAGS.min_lr, FLAGS.max_lr, FLAGS.steps)
    result = analyse(lrs, losses, FLAGS.divisor)
    title = (f"{cli.config_name()}: {config.train.optimizer}, batch {config.train.batch_size} x "
             f"{config.model.max_length}, {len(lrs)} steps")
    if FLAGS.json:
        print(json.dumps({**result, "optimizer": config.train.optimizer, "plot": FLAGS.plot}))
    else:
        print(report(result, title))
    if FLAGS.plot:  # after the table: a plot that cannot be written loses none of it
        write_plot(result, FLAGS.plot, title)
        if not FLAGS.json:
            print(f"plot: {FLAGS.plot}")


if __name__ == "__main__":
    cli.run(main)
