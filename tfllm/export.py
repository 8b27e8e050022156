"""Export a trained run for serving:
`python -m tfllm.export --run_dir=DIR --format=saved_model|tflite|tflite_int8|hf [--output=PATH]`.

- saved_model: a SavedModel with signatures `generate`, `score` (and `generate_text` for
  char/byte tokenizers), loadable with `tf.saved_model.load` without tfllm installed;
  default output DIR/export/saved_model.
- tflite: the score function (token ids (B, T) -> logits (B, T, V)) as float32.tflite and
  dynamic_int8.tflite (int8 weights) in DIR/export/tflite/; evaluate either with
  `python -m tfllm.evaluate --run_dir=DIR --tflite=FILE`.
- tflite_int8: a full-integer int8 model of the score function, DIR/export/tflite/int8.tflite:
  int8 weights and activations, ranges from the quantization-aware training of a run with
  train.qat_start_step (its fake-quant ops) and from --representative_windows windows of
  the run's training data for the rest; of a float run, post-training quantization.
- hf: the Hugging Face layout (config.json, model.safetensors, tokenizer.json) in
  DIR/export/hf, which `transformers.AutoModelForCausalLM.from_pretrained` loads: GPT-2
  for learned positions, LayerNorm and GELU; Llama, Qwen2 or Qwen3 for RoPE, RMSNorm and
  SwiGLU (docs/finetuning.md).
"""

import os

from absl import flags

from tfllm import cli

cli.define_path("run_dir", None, "Run directory of a training run.", required=True)
cli.define_path("checkpoint", None, "A checkpoint prefix; default the run's newest.")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite", "tflite_int8", "hf"],
                  "What to export.")
cli.define_path("output", None, "Where to write; default DIR/export/<format>.")
flags.DEFINE_integer("seq_len", 0, "tflite: the window a GPT reads (0 = the run's evaluation "
                     "window), or the chunk a recurrent model reads at a time, carrying its state "
                     "(0 = model.max_length).", lower_bound=0)
flags.DEFINE_integer("representative_windows", 128, "tflite_int8: windows of training data "
                     "that set the activation ranges.", lower_bound=0)
FLAGS = flags.FLAGS


def export_run(run_dir, fmt, output=None, checkpoint=None, seq_len=0, representative_windows=128):
    """Exports a run; returns {"path", "files": {name: bytes}}."""
    from tfllm.config import checked_window
    from tfllm.training.run_directory import (CONFIG_FILE, check_writable, find_run,
                                              write_json)

    if fmt == "tflite_int8" and representative_windows < 1:
        raise cli.UserError("--representative_windows=0: a full-integer int8 model needs windows "
                            "of training data to set the ranges of the activations that "
                            "quantization-aware training does not fake-quantize; use e.g. 128.")
    output = output or os.path.join(run_dir, "export", "tflite" if fmt == "tflite_int8" else fmt)
    # What a user can get wrong is checked before TensorFlow loads and converts (seconds).
    check_writable(output, "--output", "export directory")
    config, _, _ = find_run(run_dir, checkpoint)
    recurrent = config.model.name == "recurrent"
    if fmt == "hf":
        return _export_hf(run_dir, config, output, checkpoint)
    if fmt != "saved_model" and not recurrent:
        checked_window(config, seq_len)
    from tfllm.inference import exporting

    config, tokenizer, model = _load_merged(run_dir, checkpoint)
    if fmt == "saved_model":
        extra = {name: os.path.join(run_dir, name)
                 for name in (CONFIG_FILE, "tokenizer.json", "sentencepiece.model",
                              "hf_tokenizer.json")
                 if os.path.exists(os.path.join(run_dir, name))}
        exporting.export_saved_model(model, tokenizer, output, extra)
        return {"path": output, "files": {"saved_model": _tree_size(output)}}
    # A GPT's file scores windows of seq_len (default: the run's evaluation window); a
    # recurrent model's reads chunks of seq_len (default: its training context) and
    # carries its state, so it scores text of any length.
    window = (seq_len or config.model.max_length) if recurrent else checked_window(config, seq_len)
    sparse = config.train.get("prune_sparsity", 0.0) > 0  # a pruned run
    written = {}
    if fmt == "tflite_int8":
        if recurrent:  # windows of 8 chunks, so the states between chunks are sampled too
            windows = _training_windows(run_dir, config, 8 * window,
                                        -(-representative_windows // 8))
        else:
            windows = _training_windows(run_dir, config, window, representative_windows)
        name = f"{exporting.INT8_VARIANT}.tflite"
        written[name] = exporting.export_tflite(model, os.path.join(output, name), window,
                                                exporting.INT8_VARIANT, windows)
    else:
        for variant in exporting.TFLITE_VARIANTS:
            name = f"{variant}.tflite"
            written[name] = exporting.export_tflite(model, os.path.join(output, name), window,
                                                    variant, sparse=sparse)
    listing = os.path.join(output, "tflite.json")
    listed = {}
    if os.path.exists(listing):  # keep the other format's files listed
        import json

        with open(listing) as f:
            listed = json.load(f).get("files", {})
    write_json(listing, {"run_dir": os.path.abspath(run_dir), "seq_len": window,
                         "files": {**listed, **written}})
    return {"path": output, "files": written}


def _load_merged(run_dir, checkpoint):
    """load_run, with a LoRA run's adapters folded into plain kernels: every format
    exports an ordinary model."""
    from tfllm.training.lora import merge_lora
    from tfllm.training.run_directory import load_run

    config, tokenizer, model = load_run(run_dir, checkpoint)
    merge_lora(model)
    return config, tokenizer, model


def _export_hf(run_dir, config, output, checkpoint):
    """The run in the Hugging Face layout; the architecture is checked before TensorFlow."""
    from tfllm.pretrained.hf_config import export_architecture

    export_architecture(config.model.to_dict())
    if config.train.get("qat_start_step", -1) >= 0:
        raise cli.UserError("--format=hf writes float weights; a quantization-aware run "
                            "exports as --format=tflite_int8.")
    from tfllm.pretrained import save_pretrained

    _, tokenizer, model = _load_merged(run_dir, checkpoint)
    save_pretrained(model, tokenizer, output)
    return {"path": output, "files": {name: os.path.getsize(os.path.join(output, name))
                                      for name in sorted(os.listdir(output))}}


def _training_windows(run_dir, config, window, count):
    """`count` windows of `window` tokens from the run's training split, at random
    (seeded) places: the representative data of post-training / int8 conversion."""
    import numpy as np

    from tfllm.data.sources import run_dataset
    from tfllm.tokenizers import load_tokenizer

    tokens = run_dataset(run_dir, config, load_tokenizer(run_dir)).train
    starts = np.random.default_rng(config.seed).integers(0, len(tokens) - window, count)
    return np.stack([tokens[s:s + window] for s in starts]).astype(np.int32)


def _tree_size(path):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, names in os.walk(path) for f in names)


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    result = export_run(FLAGS.run_dir, FLAGS.format, FLAGS.output, FLAGS.checkpoint, FLAGS.seq_len,
                        FLAGS.representative_windows)
    for name, size in result["files"].items():
        print(f"{name}: {size / 1e6:.2f} MB")
    print(f"wrote {result['path']}")


if __name__ == "__main__":
    cli.run(main)
