"""Export a trained run for serving:
`python -m tfllm.export --run_dir=DIR --format=saved_model|tflite|tflite_int8|hf|gguf|peft [--output=PATH]`.

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
- gguf: DIR/export/gguf/model-<--gguf_type>.gguf, which llama.cpp, Ollama and LM Studio run:
  the same architectures, the tokenizer and the chat template in its metadata (docs/gguf.md).
- peft: a LoRA run's adapters alone, in PEFT's format (adapter_config.json,
  adapter_model.safetensors) in DIR/export/peft: `peft.PeftModel.from_pretrained` puts them
  onto the transformers model of the base the run was imported from (Llama, Mistral, Qwen;
  docs/finetuning.md).

--model=hf:DIR or gguf:FILE exports a pretrained model as it is (with --output).
"""

from absl import flags

from tfllm import cli

cli.define_model_flags()
cli.define_path("checkpoint", None, "A checkpoint prefix; default the run's newest.")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite", "tflite_int8", "hf", "gguf",
                                             "peft"],
                  "What to export.")
flags.DEFINE_enum("gguf_type", "f32", ["f32", "f16", "bf16", "q8_0"], "gguf: the type of the "
                  "matrices (norms and biases stay f32, as llama.cpp keeps them).")
cli.define_path("output", None, "Where to write; default DIR/export/<format>.")
flags.DEFINE_integer("seq_len", 0, "tflite: the window a GPT reads (0 = the run's evaluation "
                     "window), or the chunk a recurrent model reads at a time, carrying its state "
                     "(0 = model.max_length).", lower_bound=0)
flags.DEFINE_integer("representative_windows", 128, "tflite_int8: windows of training data "
                     "that set the activation ranges.", lower_bound=0)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    from tfllm.api.export import export_run

    result = export_run(cli.model_spec(), FLAGS.format, FLAGS.output, FLAGS.checkpoint, FLAGS.seq_len,
                        FLAGS.representative_windows, FLAGS.gguf_type)
    for name, size in result["files"].items():
        print(f"{name}: {size / 1e6:.2f} MB")
    print(f"wrote {result['path']}")


if __name__ == "__main__":
    cli.run(main)
