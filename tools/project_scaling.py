"""Project a config's data- and tensor-parallel scaling to 8 GPUs and a TPU slice without
training it: `python tools/project_scaling.py --config=bench_small [--config.model.x=...]`.

Builds the model on the CPU to count its parameters and FLOPs per token, then prints
tfllm.bench.scaling's projection (`python -m tfllm.benchmark --overhead=...` prints the
same table after measuring each strategy's overhead here).
"""

from absl import flags

from tfllm import cli

cli.define_config_flag("default", "Config to project.")
flags.DEFINE_integer("vocab_size", 65, "Vocabulary size of a char config (65: the "
                     "bundled corpus's characters); other tokenizers use their own.")
flags.DEFINE_float("mfu", 0.4, "Assumed MFU on the targets.", lower_bound=0.01, upper_bound=1.0)
FLAGS = flags.FLAGS


def main(argv):
    from tfllm.config import validate

    config = validate(FLAGS.config)
    import tensorflow as tf

    from tfllm.tokenizers import ByteTokenizer
    from tfllm.training import mfu, scaling
    from tfllm.models import build_model

    vocab_size = {"char": FLAGS.vocab_size, "byte": ByteTokenizer().vocab_size}.get(
        config.data.tokenizer, config.data.vocab_size)
    model = build_model(config.model, vocab_size)
    model(tf.zeros((1, 1), tf.int32))
    params, flops_per_token, t = model.count_params(), mfu.flops_per_token(model), config.train
    rows = scaling.projection_table(config.model, params, flops_per_token, t.batch_size,
                                    t.precision, FLAGS.mfu)
    print(f"{config.model.name}, {params:,} parameters, {flops_per_token / 1e6:.2f} MFLOPs/token, "
          f"{t.batch_size} x {config.model.max_length} tokens per replica")
    print("\n".join(scaling.format_projection(rows, FLAGS.mfu)))


if __name__ == "__main__":
    cli.run(main)
