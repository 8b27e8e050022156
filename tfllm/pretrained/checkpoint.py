"""What a Hugging Face checkpoint directory holds, checked without TensorFlow."""

import os

from tfllm.configs import editable
from tfllm.errors import UserError
from tfllm.pretrained import hf_config

HF_PREFIX = "hf:"
GGUF_PREFIX = "gguf:"
PRETRAINED_PREFIXES = (HF_PREFIX, GGUF_PREFIX)
TOKENIZER_FILE = "tokenizer.json"


def pretrained_path(spec):
    """The checkpoint of a pretrained spec (`hf:DIR`, a Hugging Face checkpoint directory;
    `gguf:FILE`, a GGUF file), ~ expanded as the shell would; None for a tfllm run."""
    for prefix in PRETRAINED_PREFIXES:
        if spec and spec.startswith(prefix):
            return os.path.expanduser(spec[len(prefix):])
    return None


def spec_prefix(spec):
    """The prefix (hf: or gguf:) of a pretrained spec, or None."""
    return next((p for p in PRETRAINED_PREFIXES if spec and spec.startswith(p)), None)


def open_checkpoint(path):
    """The Checkpoint of a Hugging Face directory, or the GGUFCheckpoint of a GGUF file."""
    if os.path.isfile(path) or path.endswith(".gguf"):
        from tfllm.pretrained.gguf_checkpoint import GGUFCheckpoint

        return GGUFCheckpoint(path)
    return Checkpoint(path)


class Checkpoint:
    """A checkpoint directory: its config.json, the tfllm model section it maps to, its
    context length and end-of-text id. Raises UserError for a directory tfllm cannot
    import exactly (no config.json, no weights, an unsupported architecture or option)."""

    def __init__(self, path):
        self.path = path
        self.config = hf_config.read_config(path)
        self.model_section, self.context = hf_config.model_section(self.config)
        weights = [f for f in ("model.safetensors", "model.safetensors.index.json")
                   if os.path.exists(os.path.join(path, f))]
        if not weights:
            bins = [f for f in os.listdir(path) if f.endswith((".bin", ".pt", ".h5", ".msgpack"))]
            hint = (f" (it has {bins[0]}: convert it with transformers' save_pretrained("
                    "safe_serialization=True))" if bins else "")
            raise UserError(f"{path} has no model.safetensors{hint}; tfllm reads safetensors "
                            "weights only.")
        self.vocab_size = self.config.get("vocab_size")
        if not isinstance(self.vocab_size, int):
            raise UserError(f"{path}/config.json has no vocab_size; download the checkpoint again.")
        from tfllm.pretrained.hf_weights import check_weight_files

        check_weight_files(path)

    @property
    def architecture(self):
        return self.config["model_type"]

    @property
    def chat_template(self):
        """The checkpoint's chat template (chat_template.jinja, else tokenizer_config.json's
        chat_template), or None."""
        jinja = os.path.join(self.path, "chat_template.jinja")
        if os.path.isfile(jinja):
            with open(jinja, encoding="utf-8") as f:
                return f.read()
        try:
            import json

            with open(os.path.join(self.path, "tokenizer_config.json"), encoding="utf-8") as f:
                template = json.load(f).get("chat_template")
        except (OSError, ValueError, AttributeError):
            return None
        return template if isinstance(template, str) else None

    def tensors(self):
        from tfllm.pretrained.hf_weights import CheckpointTensors

        return CheckpointTensors(self.path)

    @property
    def eos_id(self):
        """The end-of-text token (config.json's eos_token_id, the first of a list)."""
        eos = self.config.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        return eos

    def tokenizer_file(self):
        """The checkpoint's tokenizer.json; UserError if it has none."""
        file = os.path.join(self.path, TOKENIZER_FILE)
        if not os.path.exists(file):
            raise UserError(f"{self.path} has no {TOKENIZER_FILE}; tfllm reads the fast "
                            "tokenizer's file (transformers writes it with "
                            "AutoTokenizer.from_pretrained(...).save_pretrained(DIR)).")
        return file

    def tokenizer(self):
        """The checkpoint's tokenizer.json as a tfllm HFTokenizer."""
        from tfllm.tokenizers.hf_tokenizer import HFTokenizer

        file = self.tokenizer_file()
        try:
            tokenizer = HFTokenizer.from_file(file, self.vocab_size, self.eos_id,
                                              _first(self.config.get("bos_token_id")))
        except Exception as e:  # tokenizers raises its own Exception type
            raise UserError(f"{file} is not a tokenizer the tokenizers library reads "
                            f"({str(e).splitlines()[0][:120]}).") from None
        ids = tokenizer.tokenizer_size
        if ids > self.vocab_size:
            raise UserError(f"{file} has {ids:,} ids, more than the {self.vocab_size:,} rows of "
                            f"the model's embedding (config.json's vocab_size); pass the "
                            "tokenizer that belongs to these weights.")
        return tokenizer


def _first(token):
    """A config.json token id: an int, or the first of a list."""
    if isinstance(token, list):
        return token[0] if token else None
    return token


def check_checkpoint(path, max_length=None):
    """The Checkpoint (a directory) or GGUFCheckpoint (a file) at `path`, checked with its
    tokenizer (and, given a training window, that the model computes exactly at it);
    UserError otherwise. No TensorFlow."""
    checkpoint = open_checkpoint(path)
    if max_length is not None:
        hf_config.check_context(checkpoint.config, max_length)
    checkpoint.tokenizer()  # a missing or mismatched tokenizer is answered here, before TensorFlow
    return checkpoint


# A checkpoint's own settings beside its weights, kept in a run started from it (in
# PRETRAINED_DIR) so that an export back to this layout carries them: its context, start and
# end tokens, generation settings, special tokens and chat template.
SETTINGS_FILES = ("config.json", "generation_config.json", "tokenizer_config.json",
                  "special_tokens_map.json", "chat_template.jinja")
PRETRAINED_DIR = "pretrained"


def keep_settings(checkpoint, run_dir):
    """Keeps the checkpoint's settings in `run_dir`/PRETRAINED_DIR: a directory's
    SETTINGS_FILES, a GGUF file's config (as config.json) and chat template."""
    import shutil

    from tfllm.files import write_json

    target = os.path.join(run_dir, PRETRAINED_DIR)
    os.makedirs(target, exist_ok=True)
    if not isinstance(checkpoint, Checkpoint):
        write_json(os.path.join(target, hf_config.CONFIG_FILE), checkpoint.config)
        if checkpoint.chat_template:
            with open(os.path.join(target, "chat_template.jinja.tmp"), "w", encoding="utf-8") as f:
                f.write(checkpoint.chat_template)
            os.replace(os.path.join(target, "chat_template.jinja.tmp"),
                       os.path.join(target, "chat_template.jinja"))
        return
    for name in SETTINGS_FILES:
        source = os.path.join(checkpoint.path, name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(target, name + ".tmp"))
            os.replace(os.path.join(target, name + ".tmp"), os.path.join(target, name))


# The model keys a run keeps from its own config when it starts from a checkpoint: how
# long its windows are, how much dropout it trains with and whether it recomputes
# activations. Every other key of the model section is the checkpoint's architecture.
RUN_MODEL_KEYS = ("max_length", "dropout", "attention_dropout", "remat")


def adopt_model_section(config, section):
    """A copy of `config` whose model section is `section` except RUN_MODEL_KEYS, with
    the checkpoint's tokenizer ("hf"); and the config keys that changed."""
    config = editable(config)
    changed = []
    with config.unlocked():
        for key, value in section.items():
            if key in RUN_MODEL_KEYS or key not in config.model:
                continue
            if config.model[key] != value:
                changed.append(f"model.{key}")
            config.model[key] = value
        if config.data.tokenizer != "hf":
            changed.append("data.tokenizer")
            config.data.tokenizer = "hf"
    return config, changed


def adopt_pretrained(config, checkpoint):
    """`config` with the architecture and tokenizer of a Checkpoint: (config, changed keys)."""
    if config.model.name != "gpt":
        config = editable(config)
        from tfllm.configs import base

        with config.unlocked():
            kept = {key: config.model.get(key) for key in RUN_MODEL_KEYS}
            config.model = base.gpt_model()
            config.model.update({k: v for k, v in kept.items() if k in config.model})
    return adopt_model_section(config, checkpoint.model_section)
