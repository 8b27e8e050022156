"""Deployable exports of a trained language model: a SavedModel with `generate` and
`score` signatures (loadable without tfllm), and TFLite models of the score function.

Dimensions: B batch, P prompt length, N new tokens, T positions, V vocabulary.
"""

import os
import shutil
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from tfllm._keras import weight_name
from tfllm.errors import UserError
from tfllm.inference.decoding import Decoder, decodes_with_xla
from tfllm.models import RecurrentLM

TFLITE_VARIANTS = ("float32", "dynamic_int8")  # what --format=tflite writes
INT8_VARIANT = "int8"  # full integer: --format=tflite_int8


class ServingModule(tf.Module):
    """What `export_saved_model` saves: the model, its Decoder and, for char and byte
    tokenizers, the vocabulary as a lookup table so text goes in and out.

    Signatures (all inputs tensors; see `export_saved_model`):
        generate(prompt (B, P) int32, max_new_tokens, temperature, top_k, top_p, seed,
                 end_token) -> {"tokens" (B, N), "num_tokens" (B,)}
        generate_text(prompt string, num_samples, max_new_tokens, ...) -> {"text" (B,)}
        score(token_ids (B, T) int32) -> {"log_probs" (B, T - 1)}: log p(ids[t+1] | ids[:t+1])
    """

    def __init__(self, model, tokenizer):
        super().__init__(name="tfllm_serving")
        self.model = model
        self.decoder = Decoder(model, jit_compile=decodes_with_xla(model))  # as generate()
        self.vocab_size = model.vocab_size
        pieces = _graph_pieces(tokenizer)
        self.text_split = None
        if pieces is not None:
            self.text_split = tokenizer.name
            # One extra empty piece (id V) stands for "no token" when joining text.
            self.pieces = tf.constant(pieces + [b""])
            self.lookup = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(pieces),
                                                    tf.range(len(pieces), dtype=tf.int32)),
                default_value=-1)

    def generate_ids(self, prompt, max_new_tokens, temperature, top_k, top_p, seed, end_token):
        batch = tf.shape(prompt)[0]
        tf.debugging.assert_positive(tf.shape(prompt)[1], message="the prompt is empty")
        tf.debugging.assert_positive(max_new_tokens, message="max_new_tokens must be >= 1")
        tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1]")
        tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]")
        # The same bounds as tfllm.generate's check_sampling_args.
        tf.debugging.assert_non_negative(temperature, message="temperature must be >= 0 (0 = greedy)")
        tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0 (0 = off)")
        tf.debugging.assert_less_equal(top_k, self.vocab_size,
                                       message="top_k exceeds the vocabulary")
        logits, state, position = self.decoder.prefill(prompt)
        tokens, _, _, _, _ = self.decoder.decode(
            logits, state, position, tf.stack([seed, tf.constant(0, tf.int64)]), 0,
            max_new_tokens, temperature, top_k, top_p, end_token, tf.zeros([batch], tf.bool))
        # Tokens up to and including the first end_token.
        is_end = tf.equal(tokens, end_token)
        after_end = tf.cumsum(tf.cast(is_end, tf.int32), axis=1, exclusive=True) > 0
        num_tokens = tf.reduce_sum(tf.cast(~after_end, tf.int32), axis=1)
        return tokens, num_tokens

    def score(self, token_ids):
        logits = self.model(token_ids, training=False)[:, :-1]  # (B, T-1, V)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        return tf.gather(log_probs, token_ids[:, 1:], batch_dims=2)

    def encode_text(self, text):
        if self.text_split == "char":
            pieces = tf.strings.unicode_split(text, "UTF-8")
        else:
            pieces = tf.strings.bytes_split(text)
        ids = self.lookup.lookup(pieces)
        tf.debugging.assert_non_negative(
            ids, message="the prompt has characters outside the tokenizer's vocabulary")
        return ids

    def decode_text(self, tokens, num_tokens):
        valid = tf.sequence_mask(num_tokens, tf.shape(tokens)[1])
        ids = tf.where(valid, tokens, self.vocab_size)
        return tf.strings.reduce_join(tf.gather(self.pieces, ids), axis=-1)


def _graph_pieces(tokenizer):
    """The byte strings of a char or byte tokenizer's ids, or None (sentencepiece)."""
    if tokenizer.name == "char":
        return [c.encode("utf-8") for c in tokenizer.chars]
    if tokenizer.name == "byte":
        return [bytes([i]) for i in range(256)]
    return None


def export_saved_model(model, tokenizer, path, extra_files=None):
    """Saves a SavedModel at `path` (replaced atomically) with serving signatures
    `generate`, `score` and, for char/byte tokenizers, `generate_text`; `extra_files`
    ({name: source path}) are copied into its assets.extra/ (the tokenizer and config).

    Load it anywhere TensorFlow runs, without tfllm:
        >>> m = tf.saved_model.load(path)
        >>> m.signatures["generate"](prompt=tf.constant([[18, 47]]), max_new_tokens=tf.constant(50),
        ...     temperature=tf.constant(0.8), top_k=tf.constant(0), top_p=tf.constant(1.0),
        ...     seed=tf.constant(0, tf.int64), end_token=tf.constant(-1))["tokens"]
    """
    module = ServingModule(model, tokenizer)
    sampling = [tf.TensorSpec((), tf.int32, "max_new_tokens"), tf.TensorSpec((), tf.float32, "temperature"),
                tf.TensorSpec((), tf.int32, "top_k"), tf.TensorSpec((), tf.float32, "top_p"),
                tf.TensorSpec((), tf.int64, "seed"), tf.TensorSpec((), tf.int32, "end_token")]

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, "prompt")] + sampling)
    def generate(prompt, max_new_tokens, temperature, top_k, top_p, seed, end_token):
        tokens, num_tokens = module.generate_ids(prompt, max_new_tokens, temperature, top_k,
                                                 top_p, seed, end_token)
        return {"tokens": tokens, "num_tokens": num_tokens}

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, "token_ids")])
    def score(token_ids):
        return {"log_probs": module.score(token_ids)}

    signatures = {"generate": generate, "score": score}
    module.generate = generate
    module.score_fn = score
    if module.text_split is not None:
        @tf.function(input_signature=[tf.TensorSpec((), tf.string, "prompt"),
                                      tf.TensorSpec((), tf.int32, "num_samples")] + sampling)
        def generate_text(prompt, num_samples, max_new_tokens, temperature, top_k, top_p, seed,
                          end_token):
            ids = tf.tile(module.encode_text(prompt)[tf.newaxis], [num_samples, 1])
            tokens, num_tokens = module.generate_ids(ids, max_new_tokens, temperature, top_k,
                                                     top_p, seed, end_token)
            return {"text": module.decode_text(tokens, num_tokens)}

        signatures["generate_text"] = generate_text
        module.generate_text = generate_text

    def write(tmp):
        tf.saved_model.save(module, tmp, signatures=signatures)
        if extra_files:
            os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
            for name, source in extra_files.items():
                shutil.copy(source, os.path.join(tmp, "assets.extra", name))

    _write_atomically(path, write)
    return path


def export_tflite(model, path, seq_len, variant="float32", representative=None, sparse=False):
    """Writes a TFLite model of the score function and returns the file size in bytes.

    A GPT: token ids (B, seq_len) int32 -> {"logits" (B, seq_len, V) float32}, B resizable.
    A RecurrentLM (LSTM): token ids (B, seq_len) and states {"h_i", "c_i"} (B, U) per layer
    -> {"logits", "h_i", "c_i"}: it reads a long text `seq_len` tokens at a time, carrying
    its state from call to call (tflite_loss does).

    Variants:
        float32       the float model.
        dynamic_int8  int8 weights, float activations (tf.lite.Optimize.DEFAULT with no
                      representative data).
        int8          full integer: int8 weights and activations, only int8 builtin
                      ops inside (token ids in, logits dequantized out). Activation ranges
                      come from the model's fake-quant ops (a QAT model) and, for every
                      other tensor, from `representative`: (N, W) int32 windows of
                      training data (for a RecurrentLM, W a multiple of seq_len: each
                      window is read seq_len tokens at a time, so the states it passes on
                      are representative too).

    `sparse` (a pruned model): the float32 variant stores sparse kernels in TFLite's
    sparse format (tf.lite.Optimize.EXPERIMENTAL_SPARSITY; 68% of the dense file at 50%
    sparsity, docs/quantization.md). The int8 variants stay dense: sparse int8 kernels
    were larger than dense ones, and XNNPACK could not run them (TF 2.21).
    """
    if variant not in TFLITE_VARIANTS + (INT8_VARIANT,):
        raise UserError(f"unknown TFLite variant {variant!r}; use one of "
                        f"{list(TFLITE_VARIANTS + (INT8_VARIANT,))}.")
    if variant == INT8_VARIANT and (representative is None or not len(representative)):
        raise UserError("a full-integer int8 model needs representative data to set its "
                        "activation ranges; pass training windows (tfllm.export does).")
    with tempfile.TemporaryDirectory(prefix=".tmp-tflite-") as tmp:
        if isinstance(model, RecurrentLM):
            converter = _recurrent_converter(model, seq_len, tmp)
            samples = lambda: _recurrent_samples(model, seq_len, representative)  # noqa: E731
        else:
            @tf.function(input_signature=[tf.TensorSpec((None, seq_len), tf.int32, "token_ids")])
            def logits(token_ids):
                return {"logits": model(token_ids, training=False)}

            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [logits.get_concrete_function()], model)
            samples = lambda: ([window[np.newaxis]] for window in representative)  # noqa: E731
        if variant != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        if variant == INT8_VARIANT:
            converter.representative_dataset = samples
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            # Per-tensor int8 kernels, as quantization-aware training fake-quantizes them
            # (tfllm.compression.qat); per-channel scales also cost 12 bytes a channel, which
            # at tfllm's model sizes is 3% of the float file. (A private converter switch:
            # TF 2.21 has no public one.)
            converter._experimental_disable_per_channel = True
        try:
            flatbuffer = converter.convert()
        except Exception as e:  # the converter raises ConverterError with pages of MLIR
            if variant != INT8_VARIANT:
                raise
            reasons = [line.rsplit("error:", 1)[1].strip() for line in str(e).splitlines()
                       if "error:" in line]
            raise UserError(f"the TFLite converter cannot make this {type(model).__name__} "
                            f"full-integer int8 ({(reasons or [str(e)])[0][:160]}); export "
                            "--format=tflite (float32 and dynamic_int8) instead.") from None

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(flatbuffer)

    _write_atomically(path, write)
    return len(flatbuffer)


def _state_names(model):
    return [f"{name}_{i}" for i in range(model.num_layers) for name in ("h", "c")]


def _recurrent_chunk_function(model, chunk):
    """(token_ids (B, chunk), {"h_i", "c_i"}) -> {"logits", "h_i", "c_i"} of an LSTM model,
    its time loop unrolled: TF 2.21's converter cannot lower the scan loop FusedLSTM runs
    (with a dynamic batch its TensorList needs a static element shape; with a static batch
    int8 conversion crashes). Same math as FusedLSTM, gate order i, f, g, o."""
    if model.cell != "lstm":
        raise UserError(f"TFLite export of a {model.cell.upper()} model is not built (only the "
                        "LSTM's); export --format=saved_model instead.")
    model(tf.zeros((1, 1), tf.int32))  # builds (restores) any quantization wrapper's ranges
    units = model.units
    specs = {name: tf.TensorSpec((None, units), tf.float32, name) for name in _state_names(model)}

    def weights(layer):
        """kernel, recurrent kernel, bias; of a quantization-aware model the kernels as QAT
        rounds them to int8 (its ranges then become the int8 model's weight scales)."""
        # By name: a quantization-aware wrapper's layer attributes are tensors of its trace.
        named = {weight_name(w): w for w in layer.weights}
        kernels = [named["kernel"], named["recurrent_kernel"]]
        if "kernel_min" in named:
            kernels = [tf.quantization.fake_quant_with_min_max_vars(
                k, named[f"{n}_min"], named[f"{n}_max"], num_bits=8, narrow_range=True)
                for k, n in zip(kernels, ("kernel", "recurrent_kernel"))]
        return (*kernels, named["bias"])

    def state_quantizer(lstm):
        """Rounds z, c, h (k = 0, 1, 2) as quantization-aware training did: its ranges
        become the int8 model's. Identity for a float model."""
        ranges = lstm.state_ranges
        if ranges is None or not int(ranges.seen.numpy()):
            return lambda x, k: x
        return lambda x, k: tf.quantization.fake_quant_with_min_max_vars(
            x, ranges.ranges[k, 0], ranges.ranges[k, 1], num_bits=8)

    quantizers = [state_quantizer(getattr(layer, "layer", layer))
                  for layer in model.recurrent.rnn_layers]

    @tf.function(input_signature=[tf.TensorSpec((None, chunk), tf.int32, "token_ids"), specs])
    def step(token_ids, states):
        x = model.token_embedding(token_ids)
        outputs = {}
        for i, layer in enumerate(model.recurrent.rnn_layers):
            kernel, recurrent_kernel, bias = weights(layer)
            quantize = quantizers[i]
            h, c = states[f"h_{i}"], states[f"c_{i}"]
            xz = tf.einsum("btd,dg->btg", x, kernel) + bias
            hs = []
            for t in range(chunk):
                z = quantize(xz[:, t] + tf.matmul(h, recurrent_kernel), 0)
                i_g, f_g, g, o_g = tf.split(z, 4, axis=-1)
                c = quantize(tf.sigmoid(f_g) * c + tf.sigmoid(i_g) * tf.tanh(g), 1)
                h = quantize(tf.sigmoid(o_g) * tf.tanh(c), 2)
                hs.append(h)
            x = tf.stack(hs, axis=1)
            outputs[f"h_{i}"], outputs[f"c_{i}"] = h, c
        outputs["logits"] = tf.cast(model.lm_head(x), tf.float32)
        return outputs

    return step


def _recurrent_converter(model, chunk, tmp):
    """A converter of the unrolled chunk function, through a SavedModel in `tmp` (from a
    concrete function with several inputs the converter writes no signature, and
    tflite_loss runs models by their signature's names)."""
    step = _recurrent_chunk_function(model, chunk)
    concrete = step.get_concrete_function()
    module = tf.Module()
    module.variables_ = list(model.variables)  # the weights step reads, not the Keras model
    module.step = step
    path = os.path.join(tmp, "saved_model")
    tf.saved_model.save(module, path, signatures={"serving_default": concrete})
    return tf.lite.TFLiteConverter.from_saved_model(path)


def _recurrent_samples(model, chunk, windows):
    """Representative inputs of the chunk function: each window read chunk by chunk from a
    zero state, with the states the model carries between chunks."""
    if windows.shape[1] % chunk:
        raise ValueError(f"representative windows of {windows.shape[1]} tokens are not whole "
                         f"chunks of {chunk}.")
    step = _recurrent_chunk_function(model, chunk)
    for window in windows:
        states = {name: tf.zeros((1, model.units)) for name in _state_names(model)}
        for start in range(0, len(window), chunk):
            tokens = window[np.newaxis, start:start + chunk]
            yield {"token_ids": tokens, **{k: v.numpy() for k, v in states.items()}}
            outputs = step(tf.constant(tokens), states)
            states = {name: outputs[name] for name in states}


def tflite_loss(path, inputs, targets, weights, batch_size=64):
    """Token-weighted mean cross-entropy of a TFLite score model over (inputs, targets,
    weights) windows (N, T) as `tfllm.data.eval_windows` makes them. A recurrent model
    reads each window in its chunks, carrying its state (T a multiple of the chunk)."""
    interpreter = tflite_interpreter(path, num_threads=os.cpu_count())
    if is_full_integer(interpreter):
        # TFLite's default XNNPACK delegate computes this model's int8 attention wrong
        # (TF 2.21: the default run's QAT int8 model scores 1.78 with it, 1.55 with the
        # builtin kernels, docs/quantization.md); the builtin int8 kernels are the reference.
        interpreter = tflite_interpreter(path, num_threads=os.cpu_count(), reference=True)
    signature = interpreter.get_signature_runner()
    inputs_ = signature.get_input_details()
    chunk = int(inputs_["token_ids"]["shape_signature"][1])
    states = {name: int(detail["shape_signature"][1]) for name, detail in inputs_.items()
              if name != "token_ids"}
    if states and inputs.shape[1] % chunk:
        raise UserError(f"the TFLite model reads chunks of {chunk} tokens, and {inputs.shape[1]} is "
                        f"not a multiple; evaluate with a --seq_len that is.")
    if not states and inputs.shape[1] != chunk:
        raise UserError(f"the TFLite model reads windows of {chunk} tokens, not {inputs.shape[1]}; "
                        f"evaluate with --seq_len={chunk} (or export with the window you want).")
    total, count = 0.0, 0.0
    for start in range(0, len(inputs), batch_size):
        batch = slice(start, start + batch_size)
        carried = {name: np.zeros((len(inputs[batch]), width), np.float32)
                   for name, width in states.items()}
        for t in range(0, inputs.shape[1], chunk):
            span = (batch, slice(t, t + chunk))
            outputs = signature(token_ids=inputs[span].astype(np.int32), **carried)
            carried = {name: outputs[name] for name in states}
            logits = outputs["logits"].astype(np.float64)
            logits -= logits.max(axis=-1, keepdims=True)
            log_z = np.log(np.exp(logits).sum(axis=-1))
            picked = np.take_along_axis(logits, targets[span][..., None].astype(np.int64),
                                        -1)[..., 0]
            total += float(((log_z - picked) * weights[span]).sum())
            count += float(weights[span].sum())
    return total / count


def tflite_interpreter(path, reference=False, **kwargs):
    """tf.lite.Interpreter, without its deprecation warning (its successor, the
    ai-edge-litert package, is not a dependency of tfllm yet); `reference`: the builtin
    kernels only, without the default (XNNPACK) delegate."""
    if reference:
        kwargs["experimental_op_resolver_type"] = \
            tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        return tf.lite.Interpreter(model_path=path, **kwargs)


def is_full_integer(interpreter):
    """Whether a TFLite model computes in int8 (a QUANTIZE op turns its input or its
    embedding into int8), not only stores int8 weights."""
    return any(op["op_name"] == "QUANTIZE" for op in interpreter._get_ops_details())


def _write_atomically(path, write):
    """Runs write(tmp) on a temporary sibling of `path`, then moves it into place: a
    failed export leaves nothing half-written."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    tmp = os.path.join(tmp_dir, os.path.basename(path))
    try:
        write(tmp)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
