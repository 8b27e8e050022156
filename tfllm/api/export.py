"""Export of a run for serving: SavedModel, TFLite (float, dynamic int8, full int8), the
Hugging Face layout and GGUF (llama.cpp), a LoRA run's adapters merged first; or a LoRA
run's adapters alone in PEFT's format. `tfllm.export` is this with
flags; `tfllm.export_run` in Python."""

import os

from tfllm.errors import UserError


def export_run(run_dir, fmt, output=None, checkpoint=None, seq_len=0, representative_windows=128,
               gguf_type="f32"):
    """Exports a run (or a pretrained model, hf:DIR or gguf:FILE, as it is) in `fmt`
    (saved_model, tflite, tflite_int8, hf, gguf or peft); returns {"path", "files": {name: bytes}}."""
    from tfllm.config import checked_window
    from tfllm.runs.run_directory import (CONFIG_FILE, check_writable, find_run,
                                              write_json)

    if fmt == "tflite_int8" and representative_windows < 1:
        raise UserError("--representative_windows=0: a full-integer int8 model needs windows "
                            "of training data to set the ranges of the activations that "
                            "quantization-aware training does not fake-quantize; use e.g. 128.")
    from tfllm.runs.run_directory import is_pretrained_spec

    if output is None and is_pretrained_spec(run_dir):
        raise UserError(f"{run_dir} is a pretrained model with no run directory to export "
                        "into; pass --output=DIR.")
    output = output or os.path.join(run_dir, "export", "tflite" if fmt == "tflite_int8" else fmt)
    # What a user can get wrong is checked before TensorFlow loads and converts (seconds).
    check_writable(output, "--output", "export directory")
    if fmt == "peft":
        return _export_peft(run_dir, output, checkpoint)
    config, _, _ = find_run(run_dir, checkpoint)
    recurrent = config.model.name == "recurrent"
    if fmt in ("hf", "gguf"):
        return _export_pretrained_format(run_dir, config, output, checkpoint, fmt, gguf_type)
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
    sparse = config.train.prune_sparsity > 0  # a pruned run
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
    from tfllm.adapt.lora import merge_lora
    from tfllm.runs.run_directory import load_run

    config, tokenizer, model = load_run(run_dir, checkpoint)
    merge_lora(model)
    return config, tokenizer, model


def _export_pretrained_format(run_dir, config, output, checkpoint, fmt, gguf_type):
    """The run in the Hugging Face layout or as a GGUF file; the architecture is checked
    before TensorFlow."""
    from tfllm.pretrained.hf_config import export_architecture

    try:
        export_architecture(config.model.to_dict())
    except UserError as e:  # its words are the hf format's
        raise UserError(str(e).replace("--format=hf", f"--format={fmt}")
                        .replace("no Hugging Face architecture", "no architecture of "
                                 + ("Hugging Face's" if fmt == "hf" else "llama.cpp's"))) from None
    if config.train.qat_start_step >= 0:
        raise UserError(f"--format={fmt} writes float weights; a quantization-aware run "
                        "exports as --format=tflite_int8.")
    _, tokenizer, model = _load_merged(run_dir, checkpoint)
    if fmt == "hf":
        from tfllm.pretrained import save_pretrained

        save_pretrained(model, tokenizer, output, _pretrained_settings(run_dir))
        _write_run_template(run_dir, output)
    else:
        _write_gguf(run_dir, model, tokenizer, output, gguf_type)
    return {"path": output, "files": {name: os.path.getsize(os.path.join(output, name))
                                      for name in sorted(os.listdir(output))}}


def _export_peft(run_dir, output, checkpoint):
    """A LoRA run's adapters in PEFT's format (tfllm.adapt.peft_format); what a user can
    get wrong is checked before TensorFlow."""
    from tfllm.pretrained.hf_config import export_architecture
    from tfllm.runs.run_directory import find_run, is_pretrained_spec, load_config

    if is_pretrained_spec(run_dir):
        raise UserError(f"--format=peft writes a LoRA run's adapters; {run_dir} is a "
                        "pretrained model without any: export it with --format=hf.")
    config = load_config(run_dir)
    if config is not None and not config.train.lora_rank:
        raise UserError(f"--format=peft writes a LoRA run's adapters; {run_dir} trained every "
                        "weight (train.lora_rank=0): export it with --format=hf.")
    config, _, _ = find_run(run_dir, checkpoint)  # a run with a checkpoint
    try:
        arch = export_architecture(config.model.to_dict())
    except UserError as e:
        raise UserError(str(e).replace("--format=hf", "--format=peft")) from None
    if arch == "gpt2":
        raise UserError("--format=peft: PEFT adapts GPT-2's attention as one fused c_attn "
                        "projection, tfllm one adapter per query, key and value; export the "
                        "merged model with --format=hf.")
    from tfllm.adapt.peft_format import save_peft_adapter
    from tfllm.pretrained.checkpoint import pretrained_path
    from tfllm.runs.run_directory import load_run, load_run_file

    _, _, model = load_run(run_dir, checkpoint)
    base = pretrained_path(load_run_file(run_dir).get("init_from") or "")
    return {"path": output,
            "files": save_peft_adapter(model, output, config.train.lora_targets, base)}


def _write_gguf(run_dir, model, tokenizer, output, gguf_type):
    """model-<type>.gguf in `output`, with the imported checkpoint's settings and chat
    template where the run has them."""
    import json

    from tfllm.pretrained.checkpoint import pretrained_path
    from tfllm.pretrained.gguf_export import save_gguf

    settings, template = None, None
    directory = _pretrained_settings(run_dir)
    if directory is not None:
        with open(os.path.join(directory, "config.json")) as f:
            settings = json.load(f)
        jinja = os.path.join(directory, "chat_template.jinja")
        if os.path.isfile(jinja):
            with open(jinja, encoding="utf-8") as f:
                template = f.read()
    elif pretrained_path(run_dir) and os.path.isfile(pretrained_path(run_dir)):
        from tfllm.pretrained.gguf_checkpoint import GGUFCheckpoint

        source = GGUFCheckpoint(pretrained_path(run_dir))
        settings, template = source.config, source.chat_template
    template = _run_template(run_dir) or template  # a chat fine-tune's own first
    os.makedirs(output, exist_ok=True)
    save_gguf(model, tokenizer, os.path.join(output, f"model-{gguf_type}.gguf"), gguf_type,
              template, settings)


def _run_template(run_dir):
    """The chat template a chat fine-tuning run trained with, or None."""
    from tfllm.data.chat_data import saved_template
    from tfllm.runs.run_directory import is_pretrained_spec

    return None if is_pretrained_spec(run_dir) else saved_template(run_dir)


def _write_run_template(run_dir, output):
    """A chat run's template into a Hugging Face export: chat_template.jinja, and
    tokenizer_config.json's chat_template where the export has one."""
    import json

    from tfllm.files import write_json, write_text

    template = _run_template(run_dir)
    if template is None:
        return
    write_text(os.path.join(output, "chat_template.jinja"), template)
    config_path = os.path.join(output, "tokenizer_config.json")
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        if "chat_template" in config:
            config["chat_template"] = template
            write_json(config_path, config)


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


def _pretrained_settings(run_dir):
    """The settings of the checkpoint a run was imported from: the run's copy of them, or
    (a run from before runs kept one) the checkpoint directory run.json names, if it is
    still there; None for a run that was not imported."""
    from tfllm.pretrained.checkpoint import PRETRAINED_DIR, pretrained_path
    from tfllm.pretrained.hf_config import CONFIG_FILE
    from tfllm.runs.run_directory import load_run_file

    if pretrained_path(run_dir) and os.path.isdir(pretrained_path(run_dir)):
        return pretrained_path(run_dir)  # hf:DIR exported as it is
    for directory in (os.path.join(run_dir, PRETRAINED_DIR),
                      pretrained_path(load_run_file(run_dir).get("init_from") or "")):
        if directory and os.path.isfile(os.path.join(directory, CONFIG_FILE)):
            return directory
    return None
