"""Evaluation of a run: the loss, perplexity and bits per token of its checkpoint (or of
an exported TFLite model) on a split of its own corpus or another. `tfllm.evaluate` is
this with flags; `tfllm.evaluate_run` in Python."""

import math
import os

from tfllm.errors import UserError

# The flags of this command that set each corpus setting, for error messages.
CORPUS_FLAGS = {"source": "--data", "data_dir": "--tfds_data_dir", "split": "--tfds_split",
                "text_key": "--tfds_text_key"}


def evaluate_run(run_dir, checkpoint=None, data=None, split="val", batch_size=None, seq_len=0,
                 tflite=None, tfds_data_dir=None, tfds_split=None, tfds_text_key=None,
                 max_tokens=None):
    """{"loss", "perplexity", "bits_per_token", "tokens"} of a run on a split, read in
    windows of `seq_len` tokens (0: the run's own evaluation window, or the TFLite
    model's). With `tflite`, that exported model is evaluated instead of the checkpoint;
    without, "kernel_sparsity" is the fraction of zeros in the kernels pruning prunes.
    A TFDS corpus is read with the run's data settings unless `tfds_*` are given.
    `max_tokens` (None: the run's eval.max_tokens) caps the tokens scored, as training does."""
    from tfllm.config import checked_window
    from tfllm.data.sources import run_dataset
    from tfllm.runs.run_directory import find_run

    # What a user can get wrong is checked before TensorFlow loads (seconds).
    config, tokenizer, _ = find_run(run_dir, checkpoint)
    section = _data_section(config.data, data, tfds_data_dir, tfds_split, tfds_text_key)
    from tfllm.data.chat_data import is_chat_source

    if is_chat_source((section or config.data).source):
        if tflite is not None:
            raise UserError("--tflite evaluates text windows; a chat run's conversations are "
                            "evaluated on its checkpoint: drop --tflite.")
        return _evaluate_chat(run_dir, checkpoint, config, tokenizer, section or config.data,
                              split, batch_size, max_tokens)
    if tflite is not None:
        if not os.path.isfile(tflite):
            raise UserError(f"--tflite={tflite} is not a file; pass a .tflite file written by "
                            "tfllm.export.")
        with open(tflite, "rb") as f:
            identifier = f.read(8)[4:]  # a TFLite flatbuffer's file identifier
        if identifier != b"TFL3":
            raise UserError(f"--tflite={tflite} is not a TFLite model (no TFL3 identifier); pass "
                            "a file written by tfllm.export --format=tflite.")
    dataset = run_dataset(run_dir, config, tokenizer, section, CORPUS_FLAGS)
    tokens = {"val": dataset.val, "train": dataset.train, "all": dataset.tokens}[split]
    # A recurrent model's TFLite file carries its state: it reads the run's own windows;
    # a GPT's reads its own (known once the file is open).
    window = (checked_window(config, seq_len)
              if tflite is None or config.model.name == "recurrent" or seq_len else None)
    if max_tokens is None:
        max_tokens = config.eval.max_tokens
    if batch_size is None:
        from tfllm.config import eval_batch_size

        batch_size = eval_batch_size(config, tokenizer.vocab_size)
    from tfllm.data.pipeline import eval_dataset, eval_targets, eval_windows

    if tflite is not None:
        from tfllm.inference.exporting import tflite_loss

        chunk = _tflite_window(tflite, tokenizer.vocab_size)
        window = window or checked_window(config, chunk)
        loss = tflite_loss(tflite, *eval_windows(tokens, window, batch_size, max_tokens),
                           batch_size=batch_size)
        return _result(loss, eval_targets(len(tokens), window, max_tokens))
    from tfllm.compression.pruning import sparsity
    from tfllm.runs.run_directory import load_run
    from tfllm.training.training_model import TrainingModel

    model = load_run(run_dir, checkpoint)[2]
    task = TrainingModel(model)
    task.compile(weighted_metrics=[])
    loss = task.evaluate(eval_dataset(tokens, window, batch_size, max_tokens=max_tokens),
                         verbose=0, return_dict=True)["loss"]
    return {**_result(loss, eval_targets(len(tokens), window, max_tokens)),
            "kernel_sparsity": sparsity(model)["pruned_fraction"]}


def _evaluate_chat(run_dir, checkpoint, config, tokenizer, data, split, batch_size,
                   max_tokens):
    """The loss on the trained (answer) tokens of a chat source's split, its examples
    split and packed as the run trained (tfllm.data.chat_data), within `max_tokens` (None:
    the run's eval.max_tokens) as training scores it: the run's own prepared copy of its
    data when it holds the same, else the source prepared anew."""
    from tfllm.data.chat_data import chat_eval_dataset, chat_eval_windows, load_chat_dataset
    from tfllm.data.packing import pack
    from tfllm.runs.chat_template import chat_template_of
    from tfllm.runs.run_directory import DATA_DIR, load_run
    from tfllm.training.training_model import TrainingModel

    template, _ = chat_template_of(run_dir)
    dataset = load_chat_dataset(data, tokenizer, template, config.model.max_length, config.seed,
                                config.data.packing, reuse=os.path.join(run_dir, DATA_DIR))
    if split == "all":  # the loss is a mean over trained tokens: packing does not change it
        packed = pack(dataset.store, config.model.max_length, config.data.packing)
    else:
        packed = dataset.val if split == "val" else dataset.train
    if not len(packed):
        raise UserError(f"the chat data has no {split} examples; pass --split=train or more "
                        "examples.")
    batch_size = batch_size or config.eval.batch_size
    budget = config.eval.max_tokens if max_tokens is None else max_tokens
    task = TrainingModel(load_run(run_dir, checkpoint)[2])
    task.compile(weighted_metrics=[])
    loss = task.evaluate(chat_eval_dataset(packed, batch_size, max_tokens=budget), verbose=0,
                         return_dict=True)["loss"]
    return _result(loss, packed.trained_in(chat_eval_windows(packed, budget)))


def _data_section(data, source, tfds_data_dir, tfds_split, tfds_text_key):
    """The run's data section with --data and the --tfds_* flags in place of its settings;
    None when none is given (the run's own data)."""
    if source is None and not (tfds_data_dir or tfds_split or tfds_text_key):
        return None
    section = data.copy_and_resolve_references()
    section.source = source or data.source
    section.data_dir = tfds_data_dir or data.data_dir
    section.split = tfds_split or data.split
    section.text_key = tfds_text_key or data.text_key
    return section


def _tflite_window(path, vocab_size):
    """The window the TFLite model at `path` reads; UserError unless it is a TFLite model
    whose logits cover exactly the run's `vocab_size` tokens."""
    from tfllm.inference.exporting import tflite_interpreter

    try:
        interpreter = tflite_interpreter(path)
    except ValueError as e:
        reason = " ".join(str(e).split()).rstrip(".")
        raise UserError(f"--tflite={path} is not a TFLite model ({reason}); pass a file written by "
                        "tfllm.export --format=tflite.") from None
    scored = int(interpreter.get_signature_runner().get_output_details()["logits"]["shape"][-1])
    if scored != vocab_size:
        raise UserError(f"--tflite={path} scores {scored} tokens, the run's tokenizer has "
                        f"{vocab_size}; pass a model exported from this run "
                        "(tfllm.export --run_dir=RUN --format=tflite).")
    return int(interpreter.get_input_details()[0]["shape_signature"][1])


def _result(loss, scored):
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
            "bits_per_token": loss / math.log(2), "tokens": int(scored)}
