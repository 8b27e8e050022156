"""Export a trained run for serving:
`python -m tfllm.export --run_dir=DIR --format=saved_model|tflite [--output=PATH]`.

- saved_model: a SavedModel with signatures `generate`, `score` (and `generate_text` for
  char/byte tokenizers), loadable with `tf.saved_model.load` without tfllm installed;
  default output DIR/export/saved_model.
- tflite: the score function (token ids (B, T) -> logits (B, T, V)) as float32.tflite and
  dynamic_int8.tflite (int8 weights) in DIR/export/tflite/; evaluate either with
  `python -m tfllm.evaluate --run_dir=DIR --tflite=FILE`.
"""

import os

from absl import flags

from tfllm import cli

flags.DEFINE_string("run_dir", None, "Run directory of a training run.", required=True)
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix; default the run's newest.")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"], "What to export.")
flags.DEFINE_string("output", None, "Where to write; default DIR/export/<format>.")
flags.DEFINE_integer("seq_len", 0, "tflite: the window the model reads; 0 = the run's "
                     "evaluation window.", lower_bound=0)
FLAGS = flags.FLAGS


def export_run(run_dir, fmt, output=None, checkpoint=None, seq_len=0):
    """Exports a run; returns {"path", "files": {name: bytes}}."""
    from tfllm.inference import exporting
    from tfllm.training.run_directory import CONFIG_FILE, load_run, write_json
    from tfllm.training.training_setup import checked_window

    config, tokenizer, model = load_run(run_dir, checkpoint)
    output = output or os.path.join(run_dir, "export", fmt)
    if fmt == "saved_model":
        extra = {name: os.path.join(run_dir, name)
                 for name in (CONFIG_FILE, "tokenizer.json", "sentencepiece.model")
                 if os.path.exists(os.path.join(run_dir, name))}
        exporting.export_saved_model(model, tokenizer, output, extra)
        return {"path": output, "files": {"saved_model": _tree_size(output)}}
    window = checked_window(config, seq_len)
    files = {}
    os.makedirs(output, exist_ok=True)
    for variant in exporting.TFLITE_VARIANTS:
        name = f"{variant}.tflite"
        files[name] = exporting.export_tflite(model, os.path.join(output, name), window, variant)
    write_json(os.path.join(output, "tflite.json"),
               {"run_dir": os.path.abspath(run_dir), "seq_len": window, "files": files})
    return {"path": output, "files": files}


def _tree_size(path):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, names in os.walk(path) for f in names)


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    result = export_run(FLAGS.run_dir, FLAGS.format, FLAGS.output, FLAGS.checkpoint, FLAGS.seq_len)
    for name, size in result["files"].items():
        print(f"{name}: {size / 1e6:.2f} MB")
    print(f"wrote {result['path']}")


if __name__ == "__main__":
    cli.run(main)
