"""Every config key, with its default and meaning. Other configs start from this one.

Override any key from the command line: `--config.train.batch_size=64`. Unknown keys and
values of the wrong type are errors.
"""

from ml_collections import ConfigDict, config_dict


def gpt_model():
    """The `model` section of a GPT config: a char-level GPT that trains in minutes on 2 cores."""
    return ConfigDict(dict(
        name="gpt",               # "gpt" or "recurrent"
        num_layers=4,             # L, Transformer blocks
        num_heads=4,              # query heads per block
        num_kv_heads=0,           # key/value heads (grouped-query attention); 0 = num_heads
        hidden_dim=128,           # D, model width; divisible by num_heads
        intermediate_dim=0,       # MLP width; 0 = 4 D (8/3 D for swiglu)
        max_length=64,            # T, context length (training window)
        position="learned",       # "learned" or "rope"
        normalization="layer",    # "layer" or "rms"
        activation="gelu",        # "gelu", "swiglu" or "relu2"
        dropout=0.0,              # on embeddings, attention and residual branches
        attention_dropout=config_dict.placeholder(float),  # on attention only; None = dropout
        use_bias=True,            # biases in projections and LayerNorm
        tie_embeddings=True,      # output projection = transposed token embedding
        qk_norm=False,            # RMS-normalize queries and keys per head (QK normalization)
        head_dim=0,               # width of a head; 0 = hidden_dim / num_heads
        norm_epsilon=0.0,         # epsilon of every normalization; 0 = tfllm's (1e-5, QK norm 1e-6)
        qkv_bias=False,           # biases on query/key/value even when use_bias is off (Qwen2)
        rope_max_wavelength=10000.0,  # RoPE frequency base (Hugging Face's rope_theta)
        init_std=0.02,            # std of the initial weights (residual projections: / sqrt(2 L))
        remat="none",             # activation recomputation: "none", or "block" (each Transformer
                                  # block's activations recomputed in the backward pass: less
                                  # memory, a second forward pass; the same gradients)
    ))


def recurrent_model():
    """The `model` section of a recurrent (LSTM/GRU) config."""
    return ConfigDict(dict(
        name="recurrent",
        cell="lstm",              # "lstm" or "gru"
        num_layers=2,             # stacked recurrent layers
        embedding_dim=128,        # E, token embedding width
        units=384,                # U, recurrent units per layer
        max_length=128,           # T, training window (truncated backprop length)
        dropout=0.0,              # on embeddings and between recurrent layers
        remat="none",             # "none": a recurrent model has no blocks to recompute
    ))


def get_config():
    return ConfigDict(dict(
        seed=1337,                # model init, data order and dropout
        deterministic=False,      # TF op determinism (bitwise-reproducible runs, slower)
        data=dict(
            source="",            # text file, folder, glob, tfds:<name>, or a directory tfllm.prepare
                                  # wrote (which then sets tokenizer, vocab_size, sp_model_type
                                  # and val_fraction); "" = bundled Tiny Shakespeare
            data_dir="",          # TFDS data_dir for prepared datasets; "" = TFDS default
            split="train",        # TFDS split to read
            text_key="",          # TFDS text feature; "" = the only text feature
            val_fraction=0.1,     # the last fraction of the tokens is the validation split
            tokenizer="char",     # "char", "byte" or "sentencepiece" ("hf": a checkpoint's
                                  # tokenizer.json, set by --init_from=hf:PATH)
            vocab_size=1000,      # sentencepiece vocabulary size
            sp_model_type="bpe",  # sentencepiece model: "bpe" or "unigram"
            # Chat and instruction data: a source of .jsonl files (docs/chat.md).
            chat_template="",     # a Jinja chat template file; "" = the checkpoint's, else ChatML
            train_on="assistant",  # "assistant": the loss on the answers only; "all": every token
            chat_fields="",       # other field names, e.g. "messages=dialog,role=speaker"
            packing=True,         # several examples per window, each attending only to itself
        ),
        model=gpt_model(),
        train=dict(
            steps=1000,           # optimizer steps in all (a resumed run continues to this)
            target_val_loss=0.0,  # stop at the first evaluation with val_loss <= this; 0 = off
            batch_size=32,        # global batch, in windows of model.max_length tokens
            grad_accum_steps=1,   # micro-batches per step; divides batch_size
            batch_size_start=0,   # batch-size warm-up: the first steps take this many windows,
                                  # doubling up to batch_size at step shape_warmup_steps; 0 = off
            seq_len_start=0,      # sequence-length warm-up: the first steps' windows are this long,
                                  # doubling up to model.max_length at step shape_warmup_steps; 0 = off
            shape_warmup_steps=0,  # steps of those warm-ups (each size doubling = one more XLA compile)
            optimizer="adamw",    # "adamw", "adam", "lion", "muon", "soap", "sophia", "sgd",
                                  # "adagrad" or "rmsprop"
            learning_rate=2e-3,   # peak learning rate
            schedule="warmup_cosine",  # "constant", "warmup_cosine", "wsd" (warmup-stable-decay),
                                       # "one_cycle", "step" or "exponential"
            warmup_steps=100,     # linear warm-up steps
            min_lr_ratio=0.1,     # warmup_cosine, wsd, one_cycle: final lr = lr * min_lr_ratio
            decay_fraction=0.2,   # wsd: the last fraction of the steps decays linearly
            pct_start=0.3,        # one_cycle: the first fraction of the steps rises to the peak
            div_factor=25.0,      # one_cycle: the rise starts at learning_rate / div_factor
            decay_steps=1000,     # step: steps between decays; exponential: steps per decay_rate
            decay_rate=0.5,       # step / exponential decay factor
            reduce_on_plateau=False,  # also scale lr by plateau_factor when val loss stalls
            plateau_factor=0.5,
            plateau_patience=2,   # evaluations without improvement before reducing
            weight_decay=0.1,     # adamw decoupled weight decay (not on norms and biases)
            beta1=0.9,
            beta2=0.99,
            epsilon=1e-8,
            momentum=0.9,         # sgd / rmsprop momentum
            muon_scale=10.0,      # muon: the matrices' learning rate is learning_rate x this
            muon_momentum=0.95,   # muon: Nesterov momentum of the matrices' gradients
            muon_ns_steps=5,      # muon: Newton-Schulz iterations orthogonalizing each update
            precondition_every=10,  # soap: steps between refreshes of the factors' eigenbases
            shampoo_beta=0.95,    # soap: moving-average factor of Shampoo's factors G G^T, G^T G
            soap_max_dim=4096,    # soap: a matrix side longer than this is not rotated (memory)
            hessian_every=10,     # sophia: steps between Hessian estimates (one more forward
                                  # and backward pass each)
            sophia_rho=0.04,      # sophia: the update is clip(m / (rho h), 1) x learning_rate
            nesterov=False,       # sgd Nesterov momentum
            grad_clip=1.0,        # clip gradients by global norm; 0 = off
            max_loss=0.0,         # stop (exit 2) once the mean training loss since the last log
                                  # is above this; 0 = no bound. A loss that is not finite
                                  # always stops the run, and nothing diverged is saved
            ema_decay=0.0,        # weight averaging: evaluations, best/ and the final weights
                                  # use this exponential moving average of the weights; 0 = off
            precision="auto",     # "auto", "float32", "mixed_bfloat16" or "mixed_float16"; auto:
                                  # bfloat16 without XLA for a GPT of width >= 256 where this
                                  # CPU's bfloat16 matmuls measure >= 1.3x float32's (measured
                                  # once, cached), else float32 (tfllm/hardware.py; the
                                  # start-up line says which and why)
            xla=True,             # compile the train step with XLA (2x faster here in float32)
            loss_chunk_rows=0,    # the cross-entropy a chunk of this many positions at a time, the
                                  # (batch, time, vocabulary) logits never held whole, positions of
                                  # loss weight 0 skipped; 0 = sized from the vocabulary; -1 = off
            steps_per_execution=1,  # train steps per compiled call; divides the intervals below
            lora_rank=0,          # LoRA: train rank-r adapters on lora_targets, every other
                                  # weight frozen; 0 = off (full fine-tuning / training)
            lora_alpha=16.0,      # LoRA: the adapters' output is scaled by lora_alpha / lora_rank
            lora_targets="attention",  # "query_value", "attention" (q, k, v, output),
                                       # "attention_mlp" or "all" (+ an untied lm_head)
            lora_dropout=0.0,     # LoRA: dropout on the adapters' input
            base_quantization="none",  # LoRA: the frozen base's projections and token embedding
                                       # held as "int8" (one scale per output channel / token):
                                       # a quarter of the bytes in checkpoints; peak memory not
                                       # lower yet (docs/finetuning.md); "none" = float
            teacher="",           # distillation: a tfllm run directory or hf:PATH whose model
                                  # (frozen, same tokenizer) the student learns from; "" = off
            distill_weight=0.5,   # distillation: loss = w x T^2 x KL(teacher_T || student_T)
                                  # + (1 - w) x cross-entropy on the text; in [0, 1]
            distill_temperature=2.0,  # distillation: T, softening both distributions; > 0
            qat_start_step=-1,    # switch to int8 quantization-aware training at this step; -1 = never
            prune_sparsity=0.0,   # magnitude pruning: the fraction of each kernel zeroed; 0 = off
            prune_start_step=0,   # pruning starts here (sparsity 0) ...
            prune_end_step=-1,    # ... and reaches prune_sparsity here (-1 = train.steps); masks fixed after
            prune_every=50,       # steps between mask updates; divides prune_end_step - prune_start_step
            inter_op_threads=1,   # TensorFlow inter-op threads; 0 = TF's default (1 is faster on 2 cores)
            intra_op_threads=0,   # TensorFlow intra-op (matmul) threads; 0 = one per core
        ),
        eval=dict(
            every=200,            # evaluate on the validation split every N steps (and at the end)
            max_tokens=114688,    # tokens an evaluation scores: the whole split if it has at most
                                  # this many, else this many in windows spread evenly over it (the
                                  # same at every evaluation and in tfllm.evaluate); 0 = whole split
            batch_size=64,        # windows per evaluation batch
            seq_len=0,            # evaluation window; 0 = model.max_length. Each window starts from
                                  # an empty context; a recurrent model may read longer windows
                                  # than it trains on (every token is still predicted once)
            target_margin=-1.0,   # with train.target_val_loss: skip a due evaluation while the mean
                                  # training loss since the last log is above target + this
                                  # margin (it cannot be at the target yet); may be negative
                                  # down to -1, which means never skip
            tasks="",             # lm-eval tasks scored at each evaluation: names or task YAML
                                  # files, comma-separated (needs tfllm[eval]); "" = none
            task_limit=100,       # examples per task at each evaluation (its first ones); 0 = all
        ),
        log_every=50,             # metrics.jsonl / TensorBoard / progress line every N steps
        checkpoint=dict(
            every=200,            # save a checkpoint every N steps (and at the end)
            keep=2,               # recent checkpoints kept (the best by val loss is kept apart)
        ),
        sample=dict(
            length=200,           # characters/tokens sampled at the end of training; 0 = none
            prompt="\n",
            temperature=0.8,
            top_k=0,              # 0 = no top-k filtering
        ),
    ))
