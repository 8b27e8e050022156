"""Runs a config: data, model, optimizer, checkpoints, callbacks, `fit`."""

import json
import math
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from tfllm import config as config_lib
from tfllm.data import (DEFAULT_CORPUS, TokenStore, describe_source, eval_dataset,
                        read_configured_corpus, train_dataset)
from tfllm.data.pipeline import ShapeWarmup, eval_batches
from tfllm.errors import Interrupted, UserError
from tfllm.inference import generate
from tfllm.tokenizers import load_tokenizer, train_tokenizer
from tfllm.training import callbacks as cb
from tfllm.training import distribution, mfu
from tfllm.training import run_directory
from tfllm.training.rng import dropout_generators
from tfllm.training.training_setup import (apply_runtime_settings, build_training_setup,
                                           eval_length)


def process_start_time():
    """Wall-clock time at which this process started, read from /proc on Linux, so times
    "from process start" include the interpreter's and TensorFlow's start-up. Where /proc
    is missing, the time this module is imported."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # fields from the 3rd (state) on
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # starttime
    except (OSError, ValueError, IndexError):
        return time.time()


PROCESS_START = process_start_time()


class Trainer:
    """Trains the model a config describes in `run_dir`, resuming whatever is there.

    Everything a user can get wrong (config, corpus, run directory, resume compatibility,
    tokenizer match) is checked before anything is written; a fresh run directory that
    fails before its first checkpoint is removed again.

    Under a strategy (`strategy`, default the current one) or on a DTensor `mesh` the
    same config trains the same model: train.batch_size is the global batch, split
    across replicas (the mesh's batch axis). With several workers, all restore the
    chief's newest checkpoint; only the chief writes the run directory, metrics and
    output, the others save into a scratch directory (run_dir/.workers/<task>) that is
    removed when they finish, as TensorFlow prescribes.

    Example:
        >>> from tfllm.configs import default
        >>> summary = Trainer(default.get_config(), "runs/demo").train()
    """

    def __init__(self, config, run_dir, init_from=None, print_fn=print, strategy=None, mesh=None):
        self.config = config_lib.validate(config)
        self.run_dir = run_dir
        self.init_from = init_from
        self.mesh = mesh
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = distribution.is_chief(self.strategy)
        self.print_fn = print_fn if self.chief else (lambda *args: None)

    def train(self):
        cfg, run_dir = self.config, self.run_dir
        run_directory.check_writable(run_dir)
        saved = run_directory.load_config(run_dir)
        resuming = saved is not None
        if resuming:
            mismatch = config_lib.identity_mismatch(saved.to_dict(), cfg.to_dict())
            if mismatch:
                key, old, new = mismatch
                raise UserError(f"{run_dir} holds a run with {key}={old!r}, not {new!r}; rerun with "
                                "the same config to resume, or pass a new --run_dir.")
        created = not os.path.exists(run_dir)
        try:
            tokenizer, store = self._prepare_data(resuming)
            self._check_lengths(store)
            os.makedirs(run_dir, exist_ok=True)
            return self._run(tokenizer, store, resuming)
        except BaseException as e:
            latest = run_directory.latest_checkpoint(run_dir) if os.path.isdir(run_dir) else None
            if self.chief and created and latest is None:
                shutil.rmtree(run_dir, ignore_errors=True)
            if isinstance(e, KeyboardInterrupt):
                raise Interrupted(
                    f"interrupted; rerun the same command to resume from step "
                    f"{latest.rsplit('-', 1)[1]}, the last checkpoint." if latest else
                    "interrupted before the first checkpoint; rerun the same command to start "
                    "again.") from None
            raise

    def _prepare_data(self, resuming):
        d = self.config.data
        source = d.source or DEFAULT_CORPUS
        read = lambda: read_configured_corpus(d)
        if resuming:
            tokenizer = load_tokenizer(self.run_dir)
        elif self.init_from:
            tokenizer = load_tokenizer(self._init_dir())
            if tokenizer.name != d.tokenizer:
                raise UserError(f"--init_from run uses a {tokenizer.name} tokenizer, the config "
                                f"asks for {d.tokenizer}; set --config.data.tokenizer={tokenizer.name}.")
        else:
            tokenizer = train_tokenizer(d.tokenizer, read(), vocab_size=d.vocab_size,
                                        model_type=d.sp_model_type)
        self._cache_key = TokenStore.cache_key(describe_source(source, d.data_dir, d.split),
                                               tokenizer)
        store = TokenStore.load(self._tokens_path(), self._cache_key, d.val_fraction)
        self._tokenized = store is None  # the cache is missing or stale: rewrite it in _run
        if store is None:
            try:
                store = TokenStore(tokenizer.encode_to_array(read(), np.int32), d.val_fraction)
            except ValueError as e:
                raise UserError(f"the corpus does not fit the run's tokenizer: {e}") from None
        return tokenizer, store

    def _tokens_path(self):
        return os.path.join(self.run_dir, "tokens.npy")

    def _init_dir(self):
        path = self.init_from
        return path if os.path.isdir(path) else os.path.dirname(os.path.dirname(path))

    def _check_lengths(self, store):
        window = self.config.model.max_length + 1
        if len(store.train) <= window:
            raise UserError(f"the corpus gives {len(store.train)} training tokens, fewer than one "
                            f"window of {window}; use a longer corpus or a smaller "
                            "--config.model.max_length.")
        if len(store.val) < 2:
            raise UserError("the validation split is empty; use a longer corpus or a larger "
                            "--config.data.val_fraction.")

    def _write_run_files(self, tokenizer, store):
        run_directory.write_json(os.path.join(self.run_dir, run_directory.CONFIG_FILE),
                                 self.config.to_dict())
        tokenizer.save(self.run_dir)
        store.save(self._tokens_path(), self._cache_key)

    def _run(self, tokenizer, store, resuming):
        cfg, t = self.config, self.config.train
        strategy = self.strategy
        replicas = self.mesh.dim_size("batch") if self.mesh is not None else None
        if self.mesh is not None and t.get("qat_start_step", -1) >= 0:
            raise UserError("quantization-aware training does not run on a DTensor mesh; use "
                            "--strategy=one_device/mirrored or qat_start_step=-1.")
        if self.mesh is not None and t.get("prune_sparsity", 0.0):
            raise UserError("pruning does not run on a DTensor mesh; use "
                            "--strategy=one_device/mirrored or prune_sparsity=0.")
        distribution.check_batch(strategy, t.batch_size, t.grad_accum_steps, replicas=replicas)
        distribution.check_batch(strategy, cfg.eval.batch_size, key="eval.batch_size",
                                 replicas=replicas)
        warmup = ShapeWarmup(t.batch_size, cfg.model.max_length, t.get("shape_warmup_steps", 0),
                             t.get("batch_size_start", 0), t.get("seq_len_start", 0))
        if warmup.active and self.mesh is not None:
            raise UserError("a batch-size or sequence-length warm-up does not run on a DTensor "
                            "mesh (its batches have one shape); set train.batch_size_start=0 and "
                            "train.seq_len_start=0, or use --strategy=one_device/mirrored.")
        if warmup.batch_size_start:
            distribution.check_batch(strategy, warmup.batch_size_start, t.grad_accum_steps,
                                     key="train.batch_size_start", replicas=replicas)
        if self.chief and not resuming:
            self._write_run_files(tokenizer, store)
        elif self.chief and self._tokenized:
            store.save(self._tokens_path(), self._cache_key)
        apply_runtime_settings(cfg)
        setup = build_training_setup(cfg, tokenizer.vocab_size, strategy, self.mesh)
        model, optimizer, schedule = setup.model, setup.optimizer, setup.schedule
        with strategy.scope():
            best_val_loss = tf.Variable(math.inf, trainable=False, name="best_val_loss")
            generators = dropout_generators(model)
            # With weight averaging the last checkpoint's model holds the average; these
            # keep the training values beside it (see cb.CheckpointSaver).
            training_weights = [tf.Variable(v, trainable=False) for v in model.trainable_variables
                                ] if t.get("ema_decay", 0.0) else []
        # The data position is the optimizer step (batches are a function of it), so the
        # optimizer's `iterations` restores it; the dropout RNG streams are saved explicitly.
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, lr_scale=setup.lr_scale,
                                         best_val_loss=best_val_loss, rng=generators,
                                         training_weights=training_weights)
        # Every worker saves (saving may take part in collectives); a non-chief into scratch.
        save_dir = self.run_dir if self.chief else self._scratch_dir()
        manager = tf.train.CheckpointManager(checkpoint, os.path.join(save_dir, "checkpoints"),
                                             max_to_keep=cfg.checkpoint.keep)
        best_manager = tf.train.CheckpointManager(checkpoint, os.path.join(save_dir, "best"),
                                                  max_to_keep=1)
        latest = tf.train.latest_checkpoint(os.path.join(self.run_dir, "checkpoints"))
        if latest:
            run_directory.match_checkpoint(model, latest)  # saved after the switch to QAT/pruning
            try:
                checkpoint.restore(latest).assert_existing_objects_matched()
            except (AssertionError, ValueError) as e:  # unmatched objects, or shapes
                # e.g. an averaging run saved before checkpoints kept training_weights
                unmatched = str(e).strip().splitlines()[0][:200]
                raise UserError(f"{latest} does not hold what this run restores ({unmatched}); "
                                f"start a new --run_dir, with --init_from={self.run_dir} for its "
                                "weights.") from None
            for variable, value in zip(model.trainable_variables, training_weights):
                variable.assign(value)
        elif self.init_from:
            path = run_directory.latest_checkpoint(self.init_from)
            if path is None:
                raise UserError(f"--init_from={self.init_from} has no checkpoint; pass a trained "
                                "run directory or a checkpoint prefix.")
            run_directory.restore_weights(model, path)
        start_step = int(optimizer.iterations.numpy())
        if self.chief:
            self._truncate_metrics(start_step)
        if start_step >= t.steps:
            self.print_fn(f"{self.run_dir} is already trained to step {start_step} "
                          f"(train.steps={t.steps}); raise --config.train.steps to train further.")
            return self._summary(model, tokenizer, start_step, [], best_val_loss)
        if start_step:
            self.print_fn(f"resuming {self.run_dir} from step {start_step}")

        seq_len = cfg.model.max_length
        train_ds = distribution.distribute_dataset(lambda context: train_dataset(
            store.train, seq_len, t.batch_size, cfg.seed, start_step, context, warmup),
            t.batch_size, strategy, self.mesh)
        val_ds = distribution.distribute_dataset(lambda context: eval_dataset(
            store.val, eval_length(cfg), cfg.eval.batch_size, context), cfg.eval.batch_size,
            strategy, self.mesh)
        eval_steps = eval_batches(len(store.val), eval_length(cfg), cfg.eval.batch_size)
        evaluator = cb.Evaluator(val_ds, cfg.eval.every, t.steps, t.target_val_loss, eval_steps,
                                 cfg.eval.get("target_margin", config_lib.MARGIN_OFF))
        callbacks = [evaluator]
        if t.get("qat_start_step", -1) >= 0:
            from tfllm.compression import QuantizationAwareTraining

            callbacks.insert(0, QuantizationAwareTraining(t.qat_start_step))
        if t.get("prune_sparsity", 0.0):
            from tfllm.compression.pruning import MagnitudePruningCallback

            start, end = config_lib.pruning_steps(t)
            callbacks.insert(0, MagnitudePruningCallback(t.prune_sparsity, start, end,
                                                         t.prune_every))
        if t.reduce_on_plateau:
            callbacks.append(cb.ReduceLROnPlateau(setup.lr_scale, t.plateau_factor,
                                                  t.plateau_patience, t.steps))
        peak = mfu.matmul_peak(mfu.POLICY_DTYPES[t.precision])  # cached after a machine's first run
        # FLOPs per token count attention over the full context (12 L T D): during a
        # sequence-length warm-up the logged MFU is high by that term's shortfall.
        clock = cb.PauseClock()  # saving time, which the logged tokens/s leaves out
        callbacks += [
            cb.MetricsLogger(self.run_dir, cfg.log_every, t.steps, warmup.tokens_seen,
                             lambda step: schedule(step).numpy(), PROCESS_START, self.print_fn,
                             write=self.chief, flops_per_token=mfu.flops_per_token(model),
                             peak_flops=peak["flops_per_s"], clock=clock),
            cb.CheckpointSaver(manager, best_manager, best_val_loss, cfg.checkpoint.every, t.steps,
                               training_weights, clock=clock),
        ]
        setup.task.fit(train_ds, epochs=1, steps_per_epoch=t.steps - start_step,
                       callbacks=callbacks, verbose=0)
        step = int(optimizer.iterations.numpy())
        if not self.chief and not os.environ.get("TFLLM_KEEP_WORKER_SCRATCH"):
            shutil.rmtree(self._scratch_dir(), ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(self._scratch_dir()))  # .workers, once all are done
            except OSError:
                pass
        if step < t.steps:
            self.print_fn(f"reached val_loss {evaluator.history[-1][1]:.4f} <= "
                          f"train.target_val_loss={t.target_val_loss} at step {step}, "
                          f"{time.time() - PROCESS_START:.1f} s from process start")
        return self._summary(model, tokenizer, step, evaluator.history, best_val_loss)

    def _scratch_dir(self):
        return os.path.join(self.run_dir, ".workers", distribution.worker_id(self.strategy))

    def _truncate_metrics(self, step):
        """Drops records after the restored step: the resumed run logs those steps again."""
        path = os.path.join(self.run_dir, "metrics.jsonl")
        if not os.path.exists(path):
            return
        with open(path) as f:
            kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        with open(path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)

    def _summary(self, model, tokenizer, step, history, best_val_loss):
        s = self.config.sample
        summary = {"step": step, "run_dir": self.run_dir,
                   "final_val_loss": history[-1][1] if history else None,
                   "best_val_loss": float(best_val_loss.numpy())}
        if s.length and self.chief:
            if self.mesh is not None:
                model = distribution.gather_model(model, self.mesh)
            prompt = tokenizer.encode(s.prompt)
            limit = model.max_length - len(prompt)
            learned = self.config.model.name == "gpt" and self.config.model.position == "learned"
            length = min(s.length, limit) if learned else s.length
            ids = generate(model, prompt, length, temperature=s.temperature, top_k=s.top_k,
                           seed=self.config.seed)
            summary["sample"] = s.prompt + tokenizer.decode(ids[0])
            self.print_fn("sample:\n" + summary["sample"])
        return summary
