"""Checks a resolved config before any work starts. No TensorFlow import here, so a bad
value is reported in a fraction of a second."""

import math

import ml_collections

from tfllm.adapt import BASE_QUANTIZATIONS, LORA_TARGETS
from tfllm import hardware
from tfllm.errors import UserError
from tfllm.models import MODEL_CLASSES
from tfllm.optim import OPTIMIZERS, SCHEDULES
from tfllm.tokenizers import TOKENIZERS

# The choices a user types, each derived from the registry that builds it.
CHOICES = {
    "data.tokenizer": tuple(TOKENIZERS),
    "data.sp_model_type": ("bpe", "unigram"),
    "data.train_on": ("assistant", "all"),
    "model.name": tuple(MODEL_CLASSES),
    "model.position": ("learned", "rope"),
    "model.normalization": ("layer", "rms"),
    "model.activation": ("gelu", "swiglu", "relu2"),
    "model.cell": ("lstm", "gru"),
    "train.optimizer": OPTIMIZERS,
    "train.schedule": SCHEDULES,
    "train.precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    "train.lora_targets": tuple(LORA_TARGETS),
    "train.base_quantization": BASE_QUANTIZATIONS,
    "model.remat": ("none", "block"),
}
POSITIVE = ("model.num_layers", "model.num_heads", "model.hidden_dim", "model.max_length",
            "model.embedding_dim", "model.units", "train.steps", "train.batch_size",
            "train.grad_accum_steps", "train.learning_rate", "train.steps_per_execution",
            "train.decay_steps", "eval.every", "eval.batch_size", "log_every", "checkpoint.every",
            "checkpoint.keep", "data.vocab_size", "train.muon_scale", "train.muon_ns_steps",
            "train.precondition_every", "train.soap_max_dim", "train.hessian_every",
            "train.sophia_rho")
NON_NEGATIVE = ("model.num_kv_heads", "model.intermediate_dim", "model.dropout",
                "model.attention_dropout",
                "train.warmup_steps", "train.weight_decay", "train.grad_clip", "train.momentum",
                "sample.length", "train.min_lr_ratio", "train.inter_op_threads",
                "train.intra_op_threads", "eval.seq_len", "train.target_val_loss",
                "train.batch_size_start", "train.seq_len_start", "train.shape_warmup_steps",
                "train.max_loss", "eval.max_tokens", "model.head_dim", "model.norm_epsilon",
                "train.lora_rank", "eval.task_limit")
# lora_alpha scales the adapters' output: 0 would train adapters that change nothing.
POSITIVE += ("model.rope_max_wavelength", "train.lora_alpha")
# The keys that fix what a run's checkpoints and tokens mean: a run directory can only be
# resumed with the same values. The optimizer's variables are restored by position, so
# another optimizer would load them into the wrong slots (or fail on their shapes); SOAP's
# max_dim decides which factors exist.
RUN_IDENTITY = ("seed", "data", "model", "train.batch_size", "train.qat_start_step",
                "train.lora_rank", "train.lora_alpha", "train.lora_targets",
                "train.base_quantization", "train.prune_sparsity", "train.prune_start_step",
                "train.prune_end_step", "train.prune_every", "train.optimizer", "train.ema_decay",
                "train.precision", "train.teacher", "train.distill_weight",
                "train.distill_temperature", "train.soap_max_dim")
# Keys inside RUN_IDENTITY's sections that a resumed run may change: recomputation changes
# what a step keeps in memory, not what it computes.
NOT_IDENTITY = ("model.remat",)
# Keys of RUN_IDENTITY where only what a function of the value says must stay the same:
# averaging on or off (its variables), float16's loss scale or not.
IDENTITY_OF = {"train.ema_decay": bool, "train.precision": lambda p: p == "mixed_float16"}
# eval.target_margin's value that turns margin skipping off (evaluate whenever due).
MARGIN_OFF = -1.0
# The version of the config.json a run directory holds: 1 had no version key (and lacked
# the keys DEFAULTS lists, as runs older than each did); 2 added it and model.init_std.
CONFIG_VERSION = 2
VERSION_KEY = "version"
# Values of keys newer than some saved runs: what a run from before the key computed.
DEFAULTS = {"model.qk_norm": False, "model.attention_dropout": None, "model.head_dim": 0,
            "model.norm_epsilon": 0.0, "model.qkv_bias": False,
            "model.rope_max_wavelength": 10000.0,
            "train.qat_start_step": -1, "train.prune_sparsity": 0.0, "train.prune_start_step": 0,
            "train.prune_end_step": -1, "train.prune_every": 50, "train.ema_decay": 0.0,
            "train.lora_rank": 0, "train.lora_alpha": 16.0, "train.lora_targets": "attention",
            "model.remat": "none", "train.teacher": "", "train.distill_weight": 0.5,
            "train.distill_temperature": 2.0, "train.soap_max_dim": 4096,
            "data.chat_template": "", "data.train_on": "assistant", "data.chat_fields": "",
            "data.packing": True, "train.loss_chunk_rows": -1, "train.base_quantization": "none"}


def _get(config, dotted):
    node = config
    for part in dotted.split("."):
        if part not in node:
            return None
        node = node[part]
    return node


def _fail(key, value, allowed):
    raise UserError(f"--config.{key}={value!r} is not allowed: {allowed}.")


def validate(config):
    """The config, frozen (a FrozenConfigDict: readers index keys, nothing changes it
    afterwards); UserError naming the first bad key, its value and what is allowed.

    The same checks hold for a config from a file (`--config=FILE`) as for `--config.x.y`
    flags: every key must be one of configs/base.py's, of its type (an int may stand for a
    float), and every number finite."""
    _check_schema(config, _schema(config))
    _validate_values(config)
    _validate_ranges(config)
    if config.model.name == "gpt":
        _validate_gpt(config)
    _validate_steps(config)
    _validate_shape_warmup(config)
    _validate_qat(config.train)
    _validate_loss_chunks(config.train)
    _validate_pruning(config.train)
    _validate_lora(config)
    _validate_remat_and_distillation(config)
    # Last: on a CPU with bfloat16 units the automatic choice may measure the matmul rates
    # once (seconds), which a bad key should not wait for.
    return ml_collections.FrozenConfigDict(resolve_precision(config))


def precision_choice(config):
    """(precision, xla, why) that train.precision=auto stands for in `config` on this CPU
    (tfllm.hardware); float32 where the run needs it (quantization-aware training,
    pruning), and float32 keeps train.xla (bfloat16 runs without: XLA:CPU does not use the
    bfloat16 units)."""
    t = config.train
    if t.qat_start_step >= 0 or t.prune_sparsity:
        return "float32", t.xla, "quantization-aware training and pruning run in float32"
    width = config.model.get("hidden_dim") or config.model.get("units") or 0
    precision, xla, why = hardware.automatic_precision(config.model.name, width)
    return precision, (xla if precision != "float32" else t.xla), why


def settle_precision_for_strategy(config, strategy):
    """Sets train.precision=auto to float32 for `--strategy=dtensor`: a mesh trains in
    float32 (distribute.placement.check_config_on_mesh), whatever the CPU would choose."""
    if strategy == "dtensor" and config.train.get("precision") == "auto":
        config.train.precision = "float32"


def resolve_precision(config):
    """`config` with train.precision=auto replaced by `precision_choice`'s precision and
    XLA setting; other configs as they are."""
    if config.train.get("precision") != "auto":
        return config
    precision, xla, _ = precision_choice(config)
    config = config.copy_and_resolve_references()
    config.train.update(precision=precision, xla=xla)
    return config


def _validate_values(config):
    """Each key's own rule: one of its CHOICES, > 0 (POSITIVE), >= 0 (NON_NEGATIVE)."""
    for key, choices in CHOICES.items():
        value = _get(config, key)
        if value is not None and value not in choices:
            _fail(key, value, "use one of " + ", ".join(choices))
    for key in POSITIVE:
        value = _get(config, key)
        if value is not None and not value > 0:
            _fail(key, value, "it must be > 0")
    for key in NON_NEGATIVE:
        value = _get(config, key)
        if value is not None and value < 0:
            _fail(key, value, "it must be >= 0")


def _validate_ranges(config):
    """Fractions, rates and the settings that exclude each other."""
    m, t = config.model, config.train
    for key in ("train.decay_fraction", "train.pct_start"):
        if not 0 < _get(config, key) < 1:
            _fail(key, _get(config, key), "it must be between 0 and 1")
    ema = t.ema_decay
    if not 0 <= ema < 1:
        _fail("train.ema_decay", ema, "it must be in [0, 1); 0 turns averaging off")
    if ema and (t.qat_start_step >= 0 or t.prune_sparsity):
        _fail("train.ema_decay", ema, "weight averaging does not combine with "
              "quantization-aware training or pruning; set one of them off")
    for key in ("muon_momentum", "shampoo_beta"):
        if not 0 <= t[key] < 1:
            _fail(f"train.{key}", t[key], "it must be in [0, 1)")
    if t.optimizer == "sophia" and t.precision == "mixed_float16":
        _fail("train.optimizer", t.optimizer, "Sophia's Hessian estimate is not loss-scaled; "
              "use train.precision=mixed_bfloat16 or float32 with it")
    if config.eval.target_margin < MARGIN_OFF:
        _fail("eval.target_margin", config.eval.target_margin,
              "it must be > -1, or -1 to evaluate whenever due")
    if t.div_factor < 1:
        _fail("train.div_factor", t.div_factor, "it must be >= 1")
    if not 0 < config.data.val_fraction < 1:
        _fail("data.val_fraction", config.data.val_fraction, "it must be between 0 and 1")
    for key in ("dropout", "attention_dropout"):  # a recurrent model has no attention_dropout
        if (m.get(key) or 0) >= 1:
            _fail(f"model.{key}", m[key], "it must be < 1")


def _validate_gpt(config):
    """A GPT's heads, widths and windows fit each other."""
    m = config.model
    head_dim = m.head_dim or m.hidden_dim // m.num_heads
    if not m.head_dim and m.hidden_dim % m.num_heads:
        _fail("model.hidden_dim", m.hidden_dim,
              f"it must be divisible by model.num_heads={m.num_heads}")
    if m.num_kv_heads and m.num_heads % m.num_kv_heads:
        _fail("model.num_kv_heads", m.num_kv_heads,
              f"it must divide model.num_heads={m.num_heads}")
    if config.eval.seq_len > m.max_length:
        _fail("eval.seq_len", config.eval.seq_len,
              f"a GPT reads at most model.max_length={m.max_length} tokens; use 0 or less")
    if m.position == "rope" and head_dim % 2:
        _fail("model.num_heads", m.num_heads, "RoPE needs an even head size (model.head_dim, "
              "or hidden_dim/num_heads)")


def _validate_steps(config):
    """Batches split into micro-batches, and every period a multiple of a compiled call."""
    t = config.train
    if t.batch_size % t.grad_accum_steps:
        _fail("train.grad_accum_steps", t.grad_accum_steps,
              f"it must divide train.batch_size={t.batch_size}")
    for key in ("log_every", "eval.every", "checkpoint.every"):
        if _get(config, key) % t.steps_per_execution:
            _fail(key, _get(config, key),
                  f"it must be a multiple of train.steps_per_execution={t.steps_per_execution}")
    if t.steps % t.steps_per_execution:
        _fail("train.steps", t.steps,
              f"it must be a multiple of train.steps_per_execution={t.steps_per_execution}")


def _validate_qat(t):
    qat = t.qat_start_step
    if qat >= t.steps:
        _fail("train.qat_start_step", qat, f"it must be below train.steps={t.steps} (or -1 for no "
              "quantization-aware training)")
    if qat >= 0 and t.precision not in ("float32", "auto"):  # auto: float32 (precision_choice)
        _fail("train.qat_start_step", qat, "quantization-aware training runs in float32; set "
              "train.precision=float32 or qat_start_step=-1")
    if qat >= 0 and qat % t.steps_per_execution:
        _fail("train.qat_start_step", qat,
              f"it must be a multiple of train.steps_per_execution={t.steps_per_execution}")
    if qat < -1:
        _fail("train.qat_start_step", qat, "use a step >= 0, or -1 for none")


def _validate_loss_chunks(t):
    if t.loss_chunk_rows < -1:
        _fail("train.loss_chunk_rows", t.loss_chunk_rows, "use a number of positions per chunk, "
              "0 to size chunks from the vocabulary, or -1 for the whole batch's logits at once")


def _validate_remat_and_distillation(config):
    m, t = config.model, config.train
    if m.remat != "none" and m.name != "gpt":
        _fail("model.remat", m.remat, "a recurrent model has no blocks to recompute (its "
              "activations are the recurrent states); use model.remat=none")
    weight = t.distill_weight
    if not 0 <= weight <= 1:
        _fail("train.distill_weight", weight, "it must be in [0, 1] (the teacher term's share "
              "of the loss)")
    temperature = t.distill_temperature
    if not temperature > 0:
        _fail("train.distill_temperature", temperature, "it must be > 0")


def _validate_lora(config):
    t = config.train
    rank = t.lora_rank
    if not rank:
        if t.base_quantization != "none":
            _fail("train.base_quantization", t.base_quantization, "a quantized base is frozen, "
                  "so it needs LoRA adapters to train: set train.lora_rank (e.g. 8) or 'none'")
        return
    if not 0 <= t.lora_dropout < 1:
        _fail("train.lora_dropout", t.lora_dropout, "it must be in [0, 1)")
    if config.model.name != "gpt":
        _fail("train.lora_rank", rank, "LoRA adapts a GPT's projections; a recurrent model has "
              "none (set train.lora_rank=0)")
    for key, on in (("qat_start_step", t.qat_start_step >= 0),
                    ("prune_sparsity", t.prune_sparsity > 0),
                    ("ema_decay", t.ema_decay > 0)):
        if on:
            _fail("train.lora_rank", rank, f"LoRA does not combine with train.{key} (its "
                  f"wrappers would wrap the adapters); set one of them off")


def _schema(config):
    """base.py's config for the kind of model `config` names: every key and its type."""
    from tfllm.configs import base  # ml_collections only: no TensorFlow

    schema = base.get_config().to_dict()
    recurrent = (config.get("model") or {}).get("name") == "recurrent"
    schema["model"] = (base.recurrent_model() if recurrent else base.gpt_model()).to_dict()
    return schema


# Keys whose default is None (ml_collections placeholders), with the type a value must have.
OPTIONAL_FLOATS = ("model.attention_dropout",)


def _check_schema(config, schema, prefix=""):
    for key in config.keys():
        dotted = prefix + key
        if key not in schema:
            raise UserError(f"the config has no key {dotted!r}; configs/base.py lists every key "
                            "(a config file should start from tfllm.configs.base.get_config()).")
        value, expected = config[key], schema[key]
        if isinstance(expected, dict):
            if not hasattr(value, "keys"):
                _fail(dotted, value, "it is a section of keys, not a value")
            _check_schema(value, expected, dotted + ".")
            continue
        _check_value(dotted, value, expected)
    missing = [prefix + key for key in schema if key not in config.keys()]
    if missing:
        raise UserError(f"the config lacks {missing[0]!r}; start a config file from "
                        "tfllm.configs.base.get_config() and change what differs.")


def _check_value(key, value, default):
    if default is None and key in OPTIONAL_FLOATS:
        default = 0.0
        if value is None:
            return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        _fail(key, value, f"it must be {type(default).__name__ if default is not None else 'None'}")
    if isinstance(value, float) and not math.isfinite(value):
        _fail(key, value, "it must be a finite number")


def _validate_shape_warmup(config):
    t = config.train
    batch_start, len_start = t.batch_size_start, t.seq_len_start
    if not (batch_start or len_start):
        return
    if not t.shape_warmup_steps:
        _fail("train.shape_warmup_steps", t.shape_warmup_steps,
              "with train.batch_size_start or train.seq_len_start set, it must be > 0 (the "
              "steps the warm-up takes)")
    if batch_start >= t.batch_size:
        _fail("train.batch_size_start", batch_start,
              f"it must be below train.batch_size={t.batch_size} (0 = no batch-size warm-up)")
    if batch_start % t.grad_accum_steps:
        _fail("train.batch_size_start", batch_start,
              f"it must be a multiple of train.grad_accum_steps={t.grad_accum_steps}")
    if len_start >= config.model.max_length:
        _fail("train.seq_len_start", len_start, f"it must be below model.max_length="
              f"{config.model.max_length} (0 = no sequence-length warm-up)")
    if t.steps_per_execution > 1:
        _fail("train.steps_per_execution", t.steps_per_execution,
              "it must be 1 with a batch-size or sequence-length warm-up (each new shape is a "
              "new compiled step)")


def pruning_steps(train):
    """(start, end) steps of a config's pruning schedule, prune_end_step=-1 resolved."""
    end = train.prune_end_step
    return train.prune_start_step, train.steps if end == -1 else end


def _validate_pruning(t):
    sparsity = t.prune_sparsity
    if not 0 <= sparsity < 1:
        _fail("train.prune_sparsity", sparsity, "it must be in [0, 1); 0 turns pruning off")
    if not sparsity:
        return
    if t.qat_start_step >= 0:
        _fail("train.prune_sparsity", sparsity, "pruning and quantization-aware training do not "
              "combine (a QAT phase would not keep the zeros); set one of prune_sparsity=0 "
              "or qat_start_step=-1")
    if t.precision not in ("float32", "auto"):  # auto: float32 (precision_choice)
        _fail("train.prune_sparsity", sparsity, "pruning runs in float32; set "
              "train.precision=float32")
    start, end = pruning_steps(t)
    every = t.prune_every
    if not 0 <= start < t.steps:
        _fail("train.prune_start_step", start, f"it must be in [0, train.steps={t.steps})")
    if start % t.steps_per_execution:
        _fail("train.prune_start_step", start,
              f"it must be a multiple of train.steps_per_execution={t.steps_per_execution}")
    if not start < end <= t.steps:
        _fail("train.prune_end_step", t.prune_end_step,
              f"it must be in (prune_start_step={start}, train.steps={t.steps}], or -1 for "
              "train.steps")
    if every <= 0 or (end - start) % every:
        _fail("train.prune_every", every, f"it must be > 0 and divide prune_end_step - "
              f"prune_start_step = {end - start}, so the last update reaches prune_sparsity")


def saved_config(config):
    """The dict a run directory's config.json holds: the config and its version."""
    return {VERSION_KEY: CONFIG_VERSION, **config.to_dict()}


def upgrade(saved):
    """A run's config.json (a dict) as this tfllm builds configs: every key of
    configs/base.py for its kind of model, a key newer than the file holding the value that
    keeps the run's meaning (DEFAULTS), the version key dropped. Readers then index keys.
    UserError for a file a newer tfllm wrote."""
    saved = dict(saved)
    version = saved.pop(VERSION_KEY, 1)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        raise UserError(f"the run's config.json has version {version!r}, newer than this "
                        f"tfllm's {CONFIG_VERSION}; upgrade tfllm (pip install -U tfllm).")
    return _filled(saved, _schema(saved))


def _filled(saved, schema, prefix=""):
    out = dict(saved)
    for key, default in schema.items():
        dotted = prefix + key
        if isinstance(default, dict):
            out[key] = _filled(saved.get(key) or {}, default, dotted + ".")
        elif key not in saved:
            out[key] = DEFAULTS.get(dotted, default)
    return out


def identity_mismatch(saved, current):
    """The first RUN_IDENTITY key whose value differs between two configs (as dicts), or None."""
    for key in RUN_IDENTITY:
        a, b = (_get(config, key) for config in (saved, current))
        a = DEFAULTS.get(key) if a is None else a
        b = DEFAULTS.get(key) if b is None else b
        if isinstance(a, dict) and isinstance(b, dict):
            # "name" first: a GPT run resumed under an LSTM config differs in its kind of
            # model before any of the keys that kind has.
            for sub in sorted(set(a) | set(b), key=lambda sub: (sub != "name", sub)):
                if f"{key}.{sub}" in NOT_IDENTITY:
                    continue
                default = DEFAULTS.get(f"{key}.{sub}")
                a_sub, b_sub = a.get(sub, default), b.get(sub, default)
                if a_sub != b_sub:
                    return f"{key}.{sub}", a_sub, b_sub
        elif a != b and (key not in IDENTITY_OF or IDENTITY_OF[key](a) != IDENTITY_OF[key](b)):
            return key, a, b
    return None


def eval_length(cfg):
    """The evaluation window of a config: eval.seq_len, or the training context when 0
    (or when the config predates eval.seq_len)."""
    return cfg.eval.seq_len or cfg.model.max_length


def checked_window(cfg, seq_len=0):
    """The window to read a run's split in: `seq_len`, or the run's `eval_length`.
    Raises UserError if a GPT would read past its context."""
    window = seq_len or eval_length(cfg)
    if cfg.model.name == "gpt" and window > cfg.model.max_length:
        raise UserError(f"--seq_len={window} exceeds the GPT's context of "
                        f"{cfg.model.max_length}; use --seq_len={cfg.model.max_length} or less.")
    return window


# An evaluation holds one batch's float32 logits (B x T x V x 4 bytes) at once: with a large
# vocabulary eval.batch_size windows would take gigabytes (64 x 256 x 32,000 ids: 2.1 GB).
EVAL_LOGITS_BYTES = 1 << 29  # 512 MB


def eval_batch_size(cfg, vocab_size, replicas=1):
    """eval.batch_size, lowered until one batch's logits take at most EVAL_LOGITS_BYTES
    (a multiple of `replicas`, at least one window per replica)."""
    fits = EVAL_LOGITS_BYTES // (eval_length(cfg) * vocab_size * 4)
    batch = min(cfg.eval.batch_size, max(fits, 1))
    return max(replicas, batch // replicas * replicas)
