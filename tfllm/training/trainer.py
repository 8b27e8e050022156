"""Runs a config: data, model, optimizer, checkpoints, callbacks, `fit`."""

import json
import math
import os
import shutil
import time
import types

import tensorflow as tf

from tfllm import config as config_lib
from tfllm import hardware
from tfllm.configs import editable
from tfllm.adapt import chat_tuning
from tfllm.data.chat_data import (chat_eval_batches, chat_eval_dataset, chat_train_dataset,
                                  chat_eval_windows)
from tfllm.bench import mfu
from tfllm.data.pipeline import (ShapeWarmup, eval_batches, eval_dataset, eval_targets,
                                 train_dataset)
from tfllm.data.prepared_dataset import is_prepared
from tfllm.data.sources import adopt_prepared, configured_dataset, open_prepared
from tfllm.distribute import distribution
from tfllm.distribute.placement import check_config_on_mesh
from tfllm.errors import Interrupted, UserError
from tfllm.inference import generate
from tfllm.pretrained.checkpoint import (adopt_pretrained, check_checkpoint, pretrained_path,
                                         keep_settings)
from tfllm.pretrained.conversion import load_pretrained
from tfllm.runs import resume_check, run_directory
from tfllm.tokenizers import load_tokenizer
from tfllm.training import callbacks as cb
from tfllm.training.rng import dropout_generators
from tfllm.training.teacher import (check_teacher, configured_teacher, pinned_checkpoint,
                                    teacher_checkpoint)
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


# What a collective op raises when a worker it waits for is gone.
COLLECTIVE_FAILURES = (tf.errors.UnavailableError, tf.errors.AbortedError,
                       tf.errors.CancelledError, tf.errors.DeadlineExceededError)


def _out_of_space(error):
    """Whether `error` (an OSError or a TensorFlow error) says the disk is full."""
    import errno

    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)


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
        # train.precision=auto is decided again once an imported architecture replaces the
        # config's model section, and the start-up line says why it chose what it did.
        self._requested_precision = (dict(precision="auto", xla=config.train.xla)
                                     if config.train.get("precision") == "auto" else None)
        self.config = config_lib.validate(config)
        self.run_dir = run_dir
        self.init_from = init_from
        self.pretrained = None  # the Hugging Face Checkpoint of --init_from=hf:PATH
        self.mesh = mesh
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = distribution.is_chief(self.strategy)
        self.print_fn = print_fn if self.chief else (lambda *args: None)
        self._pending_lines = []

    def train(self):
        run_dir = self.run_dir
        run_directory.check_writable(run_dir)
        # Resolved before anything is written: a missing --init_from fails here.
        self._resolve_init_from()
        created = not os.path.exists(run_dir)
        lock = None
        try:
            if self.chief:  # the other workers write only their scratch directories
                os.makedirs(run_dir, exist_ok=True)
                lock = run_directory.RunLock(run_dir).acquire()
            self._adopt_prepared_source()
            resuming = self._check_resume()
            tokenizer, dataset = self._prepare_data(resuming)
            for line in self._pending_lines:
                self.print_fn(line)
            self._check_lengths(dataset)
            os.makedirs(run_dir, exist_ok=True)
            summary = self._run(tokenizer, dataset, resuming)
            distribution.barrier(self.strategy)
            return summary
        except BaseException as e:
            latest = run_directory.latest_checkpoint(run_dir) if os.path.isdir(run_dir) else None
            # Only the process that holds the lock may remove what it created.
            if self.chief and lock is not None and created and latest is None:
                shutil.rmtree(run_dir, ignore_errors=True)
            explained = self._explain(e, latest)
            if explained is None:
                raise
            raise explained from None
        finally:
            if lock is not None:
                lock.release()

    def _resolve_init_from(self):
        """--init_from: a tfllm run's checkpoint, or a Hugging Face checkpoint (hf:PATH)
        whose architecture and tokenizer the config then takes (one line says so)."""
        self.init_checkpoint = None
        path = pretrained_path(self.init_from)
        if path is None:
            if self.init_from:
                self.init_checkpoint = run_directory.resolve_init_from(self.init_from)
            adopted = resume_check.adopt_resumed_import(self.config, self.run_dir, self.init_from)
            if adopted is not self.config:  # the architecture of the run's import
                adopted = self._decide_precision_again(adopted)
            self.config = adopted
            return
        self.pretrained = check_checkpoint(path, self.config.model.max_length)
        self.config, changed = adopt_pretrained(self.config, self.pretrained)
        self.config = self._decide_precision_again(self.config)
        m = self.config.model
        # Said once the data is ready too: an error before then is the only line printed.
        self._pending_lines.append(f"model: {self.pretrained.architecture} from {path}: {m.num_layers} x "
                      f"{m.hidden_dim}, {m.num_heads} heads ({m.num_kv_heads} key/value), its "
                      f"tokenizer ({self.pretrained.vocab_size} tokens); "
                      f"{len(changed)} model keys set from its config.json"
                      + (f" ({', '.join(changed)})" if changed else ""))

    def _decide_precision_again(self, config):
        """`config` validated, train.precision=auto decided on its model section: an
        imported architecture (SmolLM2's width 576) replaces the flags' (the default 128)
        after the first decision."""
        if self._requested_precision is not None:
            config = editable(config)
            config.train.update(self._requested_precision)
        return config_lib.validate(config)

    def _explain(self, error, latest):
        """The one-line error for a run stopped by `error` (Ctrl-C, a full disk, a worker
        of the job gone), saying where a rerun resumes (`latest`); None for any other."""
        resume = (f"step {latest.rsplit('-', 1)[1]}, the last checkpoint." if latest else
                  "the start.")
        if isinstance(error, KeyboardInterrupt):
            return Interrupted(f"interrupted; rerun the same command to resume from {resume}"
                               if latest else "interrupted before the first checkpoint; rerun "
                               "the same command to start again.")
        if isinstance(error, (OSError, tf.errors.OpError)) and _out_of_space(error):
            run_directory.remove_partial_saves(self.run_dir)
            return UserError(f"no space left on the device of {self.run_dir} while writing the "
                             f"run; free some space and rerun the same command to resume from "
                             f"{resume}")
        if isinstance(error, COLLECTIVE_FAILURES) and distribution.in_multi_worker_mode(
                self.strategy):
            reason = " ".join(str(error).split())[:120]
            return UserError(f"another worker of this job stopped ({type(error).__name__}: "
                             f"{reason}...); rerun the job to resume from {resume}")
        return None

    def _check_resume(self):
        """Whether the run directory holds a run to resume; raises UserError when the
        config or --init_from do not fit that run (or train.teacher names no teacher)."""
        check_teacher(self.config)
        return resume_check.check_resume(self.run_dir, self.config, self.init_from)

    def _prepare_data(self, resuming):
        """The run's tokenizer and PreparedDataset: a prepared data.source read where it is
        (the config takes its tokenizer and split), a raw corpus prepared into the run's
        data/ directory. Raises UserError for a resumed run whose dataset changed."""
        d = self.config.data
        tokenizer = None
        if resuming:
            tokenizer = load_tokenizer(self.run_dir)
        elif self.pretrained is not None:
            tokenizer = self.pretrained.tokenizer()
        elif self.init_from:
            tokenizer = load_tokenizer(run_directory.run_of_checkpoint(self.init_checkpoint))
            if tokenizer.name != d.tokenizer and not is_prepared(d.source):
                raise UserError(f"--init_from run uses a {tokenizer.name} tokenizer, the config "
                                f"asks for {d.tokenizer}; set --config.data.tokenizer={tokenizer.name}.")
        data_dir = os.path.join(self.run_dir if self.chief else self._scratch_dir(),
                                run_directory.DATA_DIR)
        if chat_tuning.is_chat_source(d.source):
            return tokenizer, self._chat_dataset(tokenizer, resuming, data_dir)
        try:
            dataset = configured_dataset(d, data_dir, tokenizer, print_fn=self.print_fn,
                                         progress=self.chief)
        except ValueError as e:  # e.g. a vocabulary the corpus cannot give
            if isinstance(e, UserError):
                raise
            raise UserError(f"the corpus does not fit the run's tokenizer: {e}") from None
        if is_prepared(d.source):
            self._check_dataset(dataset, resuming)
        return dataset.tokenizer if tokenizer is None else tokenizer, dataset

    def _chat_dataset(self, tokenizer, resuming, data_dir):
        """The ChatDataset of a chat run (.jsonl files prepared into `data_dir`, or a
        prepared chat dataset), with its template."""
        checkpoint_template = self.pretrained.chat_template if self.pretrained else None
        text, origin = chat_tuning.run_template(self.run_dir, self.config.data,
                                                checkpoint_template, resuming)
        dataset = chat_tuning.chat_dataset(self.config, tokenizer, text, data_dir,
                                           progress=self.chief)
        if is_prepared(self.config.data.source):
            self._check_dataset(dataset, resuming)
        self._pending_lines.append(f"chat: {origin} template, the loss on "
                      f"{'the answers' if self.config.data.train_on == 'assistant' else 'every token'}"
                      f", {'packed' if self.config.data.packing else 'one example per'} window"
                      f"{'s' if self.config.data.packing else ''}")
        return dataset

    def _adopt_prepared_source(self):
        """A prepared data.source fixes the tokenizer and split: the config takes them."""
        source = self.config.data.source
        if not is_prepared(source):
            return
        self.config, changed = adopt_prepared(self.config, open_prepared(source))
        if changed:
            values = ", ".join(f"{key}={self.config.data[key[5:]]!r}" for key in changed)
            self.print_fn(f"data: {values}, as the prepared dataset {source} was made")

    def _check_dataset(self, dataset, resuming):
        """UserError if the run resumes on another prepared dataset than it started on."""
        recorded = run_directory.load_run_file(self.run_dir).get("dataset") if resuming else None
        if recorded and recorded["fingerprint"] != dataset.fingerprint:
            raise UserError(f"{self.run_dir} was trained on the prepared dataset "
                            f"{recorded['path']} (fingerprint {recorded['fingerprint'][:12]}), "
                            f"--config.data.source={dataset.directory} is another "
                            f"({dataset.fingerprint[:12]}); pass the run's dataset, or a new "
                            "--run_dir.")

    def _check_lengths(self, dataset):
        if getattr(dataset, "kind", None) == "chat":
            if not len(dataset.val) and self.config.data.val_fraction > 0:
                raise UserError("the chat data has too few examples for a validation split; "
                                "add examples or set --config.data.val_fraction=0.")
            return
        window = self.config.model.max_length + 1
        if len(dataset.train) <= window:
            raise UserError(f"the corpus gives {len(dataset.train)} training tokens, fewer than one "
                            f"window of {window}; use a longer corpus or a smaller "
                            "--config.model.max_length.")
        if len(dataset.val) < 2:
            raise UserError("the validation split is empty; use a longer corpus or a larger "
                            "--config.data.val_fraction.")

    def _write_run_files(self, tokenizer, dataset):
        prepared = is_prepared(self.config.data.source)  # else its own copy in data/
        run_directory.write_json(os.path.join(self.run_dir, run_directory.RUN_FILE), {
            "init_from": resume_check.init_from_record(self.init_from),
            "init_checkpoint": self.init_checkpoint and os.path.abspath(self.init_checkpoint),
            "dataset": {"path": os.path.abspath(dataset.directory),
                        "fingerprint": dataset.fingerprint} if prepared else None,
            "teacher_checkpoint": teacher_checkpoint(self.config.train.teacher)})
        run_directory.write_json(os.path.join(self.run_dir, run_directory.CONFIG_FILE),
                                 config_lib.saved_config(self.config))
        tokenizer.save(self.run_dir)
        if getattr(dataset, "kind", None) == "chat":
            chat_tuning.save_template(self.run_dir, dataset.template_text)
        if self.pretrained is not None:  # what an export back to its layout keeps
            keep_settings(self.pretrained, self.run_dir)

    def _run(self, tokenizer, dataset, resuming):
        cfg, t = self.config, self.config.train
        warmup = ShapeWarmup(t.batch_size, cfg.model.max_length, t.shape_warmup_steps,
                             t.batch_size_start, t.seq_len_start)
        self._check_placement(warmup)
        if self.chief and not resuming:
            self._write_run_files(tokenizer, dataset)
        apply_runtime_settings(cfg)
        # A run's starting weights, unless it resumes from a checkpoint of its own.
        has_checkpoint = run_directory.latest_checkpoint(self.run_dir) is not None
        init = None if has_checkpoint else lambda model: self._init_weights(model, tokenizer)
        setup = build_training_setup(cfg, tokenizer.vocab_size, self.strategy, self.mesh, init,
                                     teacher=self._teacher(tokenizer))
        state = self._checkpointing(setup)
        self._restore(state, setup.model, tokenizer)
        self._announce(dataset, setup)
        start_step = int(setup.optimizer.iterations.numpy())
        elapsed_before = self._truncate_metrics(start_step) if self.chief else 0.0
        if start_step >= t.steps:
            self.print_fn(f"{self.run_dir} is already trained to step {start_step} "
                          f"(train.steps={t.steps}); raise --config.train.steps to train further.")
            return self._summary(setup.model, tokenizer, start_step, [], state.best_val_loss)
        if start_step:
            self.print_fn(f"resuming {self.run_dir} from step {start_step}")
        if getattr(dataset, "kind", None) == "chat":
            def make_train(context):
                return chat_train_dataset(dataset.train, t.batch_size, cfg.seed, start_step,
                                          context)
        else:
            def make_train(context):
                return train_dataset(dataset.train, cfg.model.max_length, t.batch_size,
                                     cfg.seed, start_step, context, warmup)
        train_ds = distribution.distribute_dataset(make_train, t.batch_size, self.strategy,
                                                   self.mesh)
        evaluator = self._evaluator(dataset)
        callbacks = self._callbacks(setup, state, evaluator, warmup, elapsed_before)
        setup.task.fit(train_ds, epochs=1, steps_per_epoch=t.steps - start_step,
                       callbacks=callbacks, verbose=0)
        step = int(setup.optimizer.iterations.numpy())
        if not self.chief and not os.environ.get("TFLLM_KEEP_WORKER_SCRATCH"):
            self._remove_scratch()
        if step < t.steps:
            self.print_fn(f"reached val_loss {evaluator.history[-1][1]:.4f} <= "
                          f"train.target_val_loss={t.target_val_loss} at step {step}, "
                          f"{time.time() - PROCESS_START:.1f} s from process start")
        if self.chief and t.lora_rank:
            from tfllm.adapt import lora

            lora.save_adapter(setup.model, os.path.join(self.run_dir, lora.ADAPTER_FILE),
                              lora.base_fingerprint(setup.model), t.lora_targets)
        return self._summary(setup.model, tokenizer, step, evaluator.history, state.best_val_loss)

    def _announce(self, dataset, setup):
        """The start-up lines: what the run found and what each step does."""
        cfg, t = self.config, self.config.train
        self.print_fn(f"data: {dataset.describe()}")
        window = eval_length(cfg)
        if getattr(dataset, "kind", None) == "chat":
            scored = dataset.val.trained_in(chat_eval_windows(dataset.val, cfg.eval.max_tokens))
        else:
            scored = eval_targets(len(dataset.val), window, cfg.eval.max_tokens)
        if self.mesh is not None:
            place = f"DTensor mesh {dict(zip(self.mesh.dim_names, self.mesh.shape()))}"
        else:
            try:
                devices = [d.split("device:")[-1] for d in self.strategy.extended.worker_devices]
                name = type(self.strategy).__name__
            except RuntimeError:  # the default strategy
                devices = [tf.config.list_logical_devices()[0].name.split("device:")[-1]]
                name = "one device"
            place = f"{name}: {self.strategy.num_replicas_in_sync} replica(s) on {', '.join(devices)}"
        self.print_fn(f"model: {cfg.model.name}, {setup.model.count_params() / 1e6:,.2f} M "
                      f"parameters; {t.batch_size * cfg.model.max_length:,} tokens per step "
                      f"({t.batch_size} x {cfg.model.max_length}); {place}")
        # precision_choice reads the model and the CPU, not train.precision: the resolved
        # config gives the reason the choice was made for.
        auto = (f" (train.precision=auto: {config_lib.precision_choice(cfg)[2]})"
                if self._requested_precision else "")
        self.print_fn(f"precision: {t.precision}, XLA {'on' if t.xla else 'off'}{auto}")
        if t.lora_rank:
            trained = sum(int(tf.size(v)) for v in setup.model.trainable_variables)
            base = ("" if self._imported() else "; the base is randomly initialized (no "
                    "--init_from): pass --init_from=hf:DIR or a trained run to adapt trained "
                    "weights")
            self.print_fn(f"LoRA: rank {t.lora_rank} adapters on {t.lora_targets}, "
                          f"{trained:,} trainable parameters; the rest frozen{base}")
        if t.schedule != "one_cycle" and t.warmup_steps > t.steps:
            self.print_fn(f"note: train.warmup_steps={t.warmup_steps} is longer than "
                          f"train.steps={t.steps}: the learning rate never reaches its peak "
                          f"{t.learning_rate:g}; lower train.warmup_steps to use it")
        self.print_fn(f"evaluation: {scored:,} validation tokens every {cfg.eval.every} steps; "
                      f"run directory {self.run_dir}")

    def _imported(self):
        """Whether the model starts from trained weights: --init_from now, or (resumed)
        the run was started so."""
        record = run_directory.load_run_file(self.run_dir)
        return bool(self.init_from or record.get("init_from") or record.get("init_checkpoint"))

    def _check_placement(self, warmup):
        """UserError for what the strategy or mesh cannot run: batches that do not split
        across replicas, and what a DTensor mesh does not support."""
        cfg, t, strategy = self.config, self.config.train, self.strategy
        replicas = self.mesh.dim_size("batch") if self.mesh is not None else None
        if self.mesh is not None:
            check_config_on_mesh(cfg)
        distribution.check_batch(strategy, t.batch_size, t.grad_accum_steps, replicas=replicas)
        distribution.check_batch(strategy, cfg.eval.batch_size, key="eval.batch_size",
                                 replicas=replicas)
        if warmup.active and self.mesh is not None:
            raise UserError("a batch-size or sequence-length warm-up does not run on a DTensor "
                            "mesh (its batches have one shape); set train.batch_size_start=0 and "
                            "train.seq_len_start=0, or use --strategy=one_device/mirrored.")
        if warmup.batch_size_start:
            distribution.check_batch(strategy, warmup.batch_size_start, t.grad_accum_steps,
                                     key="train.batch_size_start", replicas=replicas)

    def _checkpointing(self, setup):
        """What a checkpoint holds, and the managers that save it (latest and best)."""
        cfg, model = self.config, setup.model
        with self.strategy.scope():
            best_val_loss = tf.Variable(math.inf, trainable=False, name="best_val_loss")
            generators = dropout_generators(model)
            # With weight averaging the last checkpoint's model holds the average; these
            # keep the training values beside it (see cb.CheckpointSaver).
            training_weights = [tf.Variable(v, trainable=False) for v in model.trainable_variables
                                ] if cfg.train.ema_decay else []
        # The data position is the optimizer step (batches are a function of it), so the
        # optimizer's `iterations` restores it; the dropout RNG streams are saved explicitly.
        checkpoint = tf.train.Checkpoint(model=model, optimizer=setup.optimizer,
                                         lr_scale=setup.lr_scale, best_val_loss=best_val_loss,
                                         rng=generators, training_weights=training_weights)
        # Every worker saves (saving may take part in collectives); a non-chief into scratch.
        save_dir = self.run_dir if self.chief else self._scratch_dir()
        return types.SimpleNamespace(
            checkpoint=checkpoint, best_val_loss=best_val_loss, training_weights=training_weights,
            manager=tf.train.CheckpointManager(checkpoint, os.path.join(save_dir, "checkpoints"),
                                               max_to_keep=cfg.checkpoint.keep),
            best_manager=tf.train.CheckpointManager(checkpoint, os.path.join(save_dir, "best"),
                                                    max_to_keep=1))

    def _restore(self, state, model, tokenizer):
        """The run's newest checkpoint into everything it holds, strictly (a new run's
        starting weights are loaded by `_init_weights` as the model is built)."""
        latest = tf.train.latest_checkpoint(os.path.join(self.run_dir, "checkpoints"))
        if latest:
            run_directory.match_checkpoint(model, latest)  # saved after the switch to QAT/pruning
            try:
                state.checkpoint.restore(latest).assert_existing_objects_matched()
            except (AssertionError, ValueError) as e:  # unmatched objects, or shapes
                # e.g. an averaging run saved before checkpoints kept training_weights
                unmatched = str(e).strip().splitlines()[0][:200]
                raise UserError(f"{latest} does not hold what this run restores ({unmatched}); "
                                f"start a new --run_dir, with --init_from={self.run_dir} for its "
                                "weights.") from None
            for variable, value in zip(model.trainable_variables, state.training_weights):
                variable.assign(value)

    def _teacher(self, tokenizer):
        """The frozen model train.teacher names (distillation), or None."""
        t = self.config.train
        recorded = run_directory.load_run_file(self.run_dir).get("teacher_checkpoint")
        pinned = pinned_checkpoint(t.teacher, recorded)
        teacher = configured_teacher(self.config, tokenizer, self.strategy, pinned)
        if pinned is not None and pinned != teacher_checkpoint(t.teacher):
            self.print_fn(f"teacher: {pinned}, the checkpoint this run started with (the "
                          "teacher run has trained further since)")
        if teacher is not None:
            self.print_fn(f"teacher: {t.teacher}, {teacher.count_params() / 1e6:,.2f} M "
                          f"parameters (frozen); loss = {t.distill_weight} x T^2 KL + "
                          f"{1 - t.distill_weight:g} x cross-entropy at "
                          f"T = {t.distill_temperature}")
        return teacher

    def _init_weights(self, model, tokenizer):
        """A new run's starting weights: --init_from's (a tfllm run or hf:PATH), strictly."""
        if self.pretrained is not None:
            load_pretrained(model, self.pretrained)
        elif self.init_checkpoint:
            run_directory.restore_weights(model, self.init_checkpoint, "--init_from",
                                          self.config.model, tokenizer.vocab_size)

    def _evaluator(self, dataset):
        cfg = self.config
        replicas = (self.mesh.dim_size("batch") if self.mesh is not None
                    else self.strategy.num_replicas_in_sync)
        window = eval_length(cfg)
        batch = config_lib.eval_batch_size(cfg, dataset.tokenizer.vocab_size, replicas)
        budget = cfg.eval.max_tokens
        if getattr(dataset, "kind", None) == "chat":
            val_ds = distribution.distribute_dataset(
                lambda context: chat_eval_dataset(dataset.val, batch, context, budget), batch,
                self.strategy, self.mesh)
            batches = chat_eval_batches(dataset.val, batch, budget)
        else:
            val_ds = distribution.distribute_dataset(
                lambda context: eval_dataset(dataset.val, window, batch, context, budget), batch,
                self.strategy, self.mesh)
            batches = eval_batches(len(dataset.val), window, batch, budget)
        return cb.Evaluator(val_ds, cfg.eval.every, cfg.train.steps, cfg.train.target_val_loss,
                            batches, cfg.eval.target_margin, self._task_scores(dataset))

    def _task_scores(self, dataset):
        """eval.tasks' scorer (its tasks indexed and checked now, before any step), or None."""
        cfg = self.config
        if not cfg.eval.tasks:
            return None
        from tfllm.harness.tasks import TaskScores

        return TaskScores(cfg.eval.tasks, cfg.eval.task_limit, dataset.tokenizer,
                          cfg.model.max_length, getattr(dataset, "template_text", None))

    def _callbacks(self, setup, state, evaluator, warmup, elapsed_before):
        """The training loop's callbacks, in the order they must run at a step: compression
        schedules, evaluation, the plateau rule, the divergence guard (before anything of
        the step is logged or saved), metrics, checkpoints."""
        cfg, t = self.config, self.config.train
        callbacks = []
        if t.prune_sparsity:
            from tfllm.compression.pruning import MagnitudePruningCallback

            start, end = config_lib.pruning_steps(t)
            callbacks.append(MagnitudePruningCallback(t.prune_sparsity, start, end, t.prune_every))
        if t.qat_start_step >= 0:
            from tfllm.compression import QuantizationAwareTraining

            callbacks.append(QuantizationAwareTraining(t.qat_start_step))
        callbacks.append(evaluator)
        if t.reduce_on_plateau:
            callbacks.append(cb.ReduceLROnPlateau(setup.lr_scale, t.plateau_factor,
                                                  t.plateau_patience, t.steps))
        peak = hardware.matmul_peak(mfu.POLICY_DTYPES[t.precision])  # cached after a machine's first run
        # FLOPs per token count attention over the full context (12 L T D): during a
        # sequence-length warm-up the logged MFU is high by that term's shortfall.
        clock = cb.PauseClock()  # saving time, which the logged tokens/s leaves out
        schedule = setup.schedule
        return callbacks + [
            cb.DivergenceGuard(cfg.log_every, cfg.checkpoint.every, t.steps, state.manager,
                               t.learning_rate, t.max_loss),
            cb.MetricsLogger(self.run_dir, cfg.log_every, t.steps, warmup.tokens_seen,
                             lambda step: schedule(step).numpy(), PROCESS_START, self.print_fn,
                             write=self.chief, flops_per_token=mfu.flops_per_token(setup.model),
                             peak_flops=peak["flops_per_s"], clock=clock,
                             elapsed_before=elapsed_before),
            cb.CheckpointSaver(state.manager, state.best_manager, state.best_val_loss,
                               cfg.checkpoint.every, t.steps, state.training_weights, clock=clock),
        ]

    def _remove_scratch(self):
        shutil.rmtree(self._scratch_dir(), ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(self._scratch_dir()))  # .workers, once all are done
        except OSError:
            pass

    def _scratch_dir(self):
        return os.path.join(self.run_dir, ".workers", distribution.worker_id(self.strategy))

    def _truncate_metrics(self, step):
        """Drops records after the restored step (the resumed run logs those steps again);
        returns the elapsed_s of the last record kept, where the resumed run's clock goes on."""
        path = os.path.join(self.run_dir, "metrics.jsonl")
        if not os.path.exists(path):
            return 0.0
        with open(path) as f:
            kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        with open(path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)
        return json.loads(kept[-1])["elapsed_s"] if kept else 0.0

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
