"""The compiled training step that `tfllm.train`, the benchmark and user code all run."""

import tensorflow as tf

from tfllm._keras import Keras2Model, keras
from tfllm.adapt.distillation import distillation_loss
from tfllm.losses.chunked_cross_entropy import cross_entropy_sum


def token_cross_entropy(targets, logits):
    """Per-token cross-entropy (B, T) in float32, from float32 logits (B, T, V)."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(targets, tf.int32), logits=tf.cast(logits, tf.float32))


class TrainingModel(Keras2Model):
    """Wraps a language model with the step tfllm trains it with.

    - The loss is the mean next-token cross-entropy over every token of the *global*
      batch, whatever the number of replicas, so a strategy changes nothing about it.
    - `grad_accum_steps` splits each batch into that many micro-batches whose gradients
      are summed before one optimizer update (one step = one update = one batch).
    - Clipping is the optimizer's `global_clipnorm`; float16 uses a LossScaleOptimizer.
    - Evaluation (`test_step`) takes (inputs, targets, weights) and reports the
      token-weighted mean loss, exact over a whole split.
    - With a Sophia optimizer, every `hessian_every` steps the step also takes the
      Hessian estimate Sophia needs (`hessian_estimate`: one more forward and backward
      pass, on labels sampled from the model).
    - With a `teacher`, training minimizes the distillation loss
      (tfllm.adapt.distillation) instead of the cross-entropy; evaluation still
      reports the cross-entropy on the text.

    Args:
        lm: a Keras model mapping token ids (B, T) to logits (B, T, V).
        grad_accum_steps: micro-batches per step.
        mesh: the DTensor mesh the model lives on, if any: the loss trackers are then
            replicated on it and embedding gradients (IndexedSlices) are made dense
            before the update (DTensor has no sparse variable updates).
        teacher: a model over the same vocabulary whose next-token distributions the
            LM learns (frozen: run in inference mode, given no gradient).
        distill_weight, distill_temperature: w and T of the distillation loss.
        loss_chunk_rows: positions per chunk of the cross-entropy
            (tfllm.losses.chunked_cross_entropy: the (B, T, V) logits never held whole,
            positions of weight 0 skipped); 0 = sized from the vocabulary; -1 = the whole
            batch's logits at once.

    Example (distillation in user code):
        >>> task = TrainingModel(student, teacher=teacher, distill_weight=0.5)
        >>> task.compile(optimizer=keras.optimizers.AdamW(1e-3))
        >>> task.fit(dataset_of_inputs_and_targets, steps_per_epoch=100)
    """

    def __init__(self, lm, grad_accum_steps=1, mesh=None, teacher=None, distill_weight=0.5,
                 distill_temperature=2.0, loss_chunk_rows=0, **kwargs):
        super().__init__(**kwargs)
        self.lm = lm
        self.loss_chunk_rows = int(loss_chunk_rows)
        self.teacher = teacher
        if teacher is not None:
            if mesh is not None:
                raise ValueError("distillation does not run on a DTensor mesh; use "
                                 "--strategy=mirrored or one device.")
            teacher.trainable = False
        self.distill_weight = float(distill_weight)
        self.distill_temperature = float(distill_temperature)
        self.grad_accum_steps = grad_accum_steps
        self.mesh = mesh
        if mesh is not None and grad_accum_steps > 1:
            raise ValueError("gradient accumulation is not supported on a DTensor mesh "
                             "(DTensor cannot split a batch-sharded tensor); use grad_accum_steps=1.")
        # The steps return values already reduced over replicas (equal on all of them):
        # Keras must take one replica's, not sum them (its default off TPU).
        self.distribute_reduction_method = "first"
        # Mean of the step losses since the last log (the logger resets it).
        metric_args = {} if mesh is None else {"mesh": mesh}  # DTensor: replicated on the mesh
        self.train_loss = keras.metrics.Mean("loss", **metric_args)
        self.eval_loss = keras.metrics.Mean("loss", **metric_args)

    @property
    def metrics(self):
        # Keras would report (and reset) listed metrics in place of the step logs; the
        # steps below already return exact global values, so nothing is listed.
        return []

    def reset_metrics(self):
        # Called by Keras at the start of evaluate (and of each fit epoch). The train loss
        # is reset by the logger instead, so an evaluation inside fit leaves it alone.
        self.eval_loss.reset_state()

    def call(self, token_ids, training=None):
        return self.lm(token_ids, training=training)

    # The steps are traced without AutoGraph (nothing in them, the optimizers' updates
    # included, branches on a tensor): converting them and everything they call only
    # adds tracing time (docs/speedrun.md).
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        loss, grads = self.loss_and_gradients(data)
        if getattr(self.optimizer, "estimates_hessian", False):  # Sophia
            grads = self.optimizer.with_estimate(grads, self.hessian_estimate(data[0]))
        self.optimizer.apply_gradients(zip(grads, self.lm.trainable_variables))
        self.train_loss.update_state(loss)
        # The step's own loss; the mean since the last log is `train_loss.result()`, read
        # outside the step (under DTensor a read in the step can precede the update).
        return {"loss": loss}

    @tf.autograph.experimental.do_not_convert
    def loss_and_gradients(self, data):
        """(global mean loss, gradients of the LM's trainable variables) of one batch."""
        inputs, targets = data[0], data[1]
        weights = data[2] if len(data) > 2 else None  # chat: 1 on the trained targets
        context = tf.distribute.get_replica_context()
        # Normalize by the global count of trained tokens (every token of a text batch):
        # summing replica gradients gives the mean.
        if weights is None:
            global_tokens = tf.cast(tf.size(targets) * context.num_replicas_in_sync, tf.float32)
        else:
            weights = tf.cast(weights, tf.float32)
            global_tokens = tf.maximum(context.all_reduce(tf.distribute.ReduceOp.SUM,
                                                          tf.reduce_sum(weights)), 1.0)
        scaled_loss = isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer)
        variables = self.lm.trainable_variables
        micro = _micro_batches((inputs, targets, weights), self.grad_accum_steps)
        grads, loss = None, 0.0
        # Python loop: unrolled in the graph; accumulation counts are small (<= 16).
        for x, y, w in micro:
            with tf.GradientTape() as tape:
                micro_loss = self._loss_sum(x, y, w) / global_tokens
                to_differentiate = (self.optimizer.get_scaled_loss(micro_loss) if scaled_loss
                                    else micro_loss)
            micro_grads = tape.gradient(to_differentiate, variables)
            grads = micro_grads if grads is None else [_add(g, m) for g, m in zip(grads, micro_grads)]
            loss += micro_loss
        if scaled_loss:
            grads = self.optimizer.get_unscaled_gradients(grads)
        if self.mesh is not None:  # DTensor cannot scatter into a variable (sparse updates)
            grads = [tf.convert_to_tensor(g) for g in grads]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, loss), grads

    @tf.autograph.experimental.do_not_convert
    def hessian_estimate(self, inputs):
        """sqrt(N) g_hat per trainable variable on a step where the optimizer takes a
        Hessian estimate (zeros on the others): g_hat the gradient of the mean
        cross-entropy of the N tokens of the first micro-batch (all replicas' together)
        against labels sampled from the model's own predictions, so that N g_hat^2 is the
        Gauss-Newton-Bartlett estimate of the Hessian's diagonal (Sophia-G). The labels are
        a function of the step and of the row's place in the global batch: a resumed run,
        and one over replicas, draws those one device would."""
        variables = self.lm.trainable_variables
        if self.grad_accum_steps > 1:
            inputs = tf.split(inputs, self.grad_accum_steps, axis=0)[0]
        context = tf.distribute.get_replica_context()
        tokens = tf.cast(tf.size(inputs) * context.num_replicas_in_sync, tf.float32)

        def estimate():
            with tf.GradientTape() as tape:
                logits = tf.cast(self.lm(inputs, training=True), tf.float32)
                # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits)
                # (XLA has no kernel for tf.random.stateless_categorical).
                noise = -tf.math.log(-tf.math.log(self._global_uniform(logits, context)))
                labels = tf.argmax(logits + noise, axis=-1)
                loss = tf.reduce_sum(token_cross_entropy(tf.stop_gradient(labels), logits)) / tokens
            return [tf.convert_to_tensor(g) * tf.sqrt(tokens) for g in tape.gradient(loss, variables)]

        return tf.cond(self.optimizer.estimate_due(), estimate,
                       lambda: [tf.zeros(v.shape, getattr(v, "true_dtype", v.dtype)) for v in variables])

    def _global_uniform(self, logits, context):
        """Uniform noise in (0, 1) shaped like `logits`: this replica's rows of the noise of
        the global batch, drawn from the step (replica r holds the r-th consecutive slice of
        the global batch, tfllm.data.pipeline)."""
        rows, replicas = tf.shape(logits)[0], context.num_replicas_in_sync
        shape = tf.concat([[rows * replicas], tf.shape(logits)[1:]], axis=0)
        seed = tf.stack([tf.constant(0, tf.int64), tf.cast(self.optimizer.iterations, tf.int64)])
        noise = tf.random.stateless_uniform(shape, seed, minval=1e-20, maxval=1.0)
        if replicas == 1:
            return noise
        first = tf.cast(context.replica_id_in_sync_group, tf.int32) * rows
        return noise[first:first + rows]

    def _loss_sum(self, inputs, targets, weights, training=True):
        """The training loss summed over the batch's positions, each times its weight
        (weights None: 1 each): the cross-entropy, chunked where the LM allows it, or the
        distillation loss."""
        head = self._chunked_head(training)
        if head is not None:
            matrix, vocab_first, trainable = head
            return cross_entropy_sum(self.lm.features(inputs, training=training), matrix, targets,
                                     weights, self.loss_chunk_rows, vocab_first,
                                     head_gradient=trainable and training, gradients=training)
        logits = self.lm(inputs, training=training)
        if self.teacher is None or not training:
            token_losses = token_cross_entropy(targets, logits)
        else:
            teacher_logits = tf.stop_gradient(self.teacher(inputs, training=False))
            token_losses = distillation_loss(targets, logits, teacher_logits, self.distill_weight,
                                             self.distill_temperature)
        return tf.reduce_sum(token_losses if weights is None else token_losses * weights)

    def _chunked_head(self, training):
        """The LM's head weights when the loss runs in chunks (tfllm.losses), else None:
        chunking off, distillation's training loss (it needs the student's logits), a
        DTensor mesh (the loop is not laid out), or an LM without a plain head matrix."""
        if (self.loss_chunk_rows < 0 or (self.teacher is not None and training)
                or self.mesh is not None or not hasattr(self.lm, "head_weights")):
            return None
        return self.lm.head_weights()

    def make_train_function(self, force=False):
        if self.mesh is None:
            return super().make_train_function(force)
        if self.train_function is not None and not force:
            return self.train_function
        # On a DTensor mesh the gradients are one compiled function, the update runs
        # eagerly: DTensor's expansion of a compiled update reads an optimizer slot before
        # the write that precedes it (TF 2.21), so a compiled AdamW or momentum step
        # applies the previous step's moments. Eagerly every op runs in order.
        gradients = tf.function(self.loss_and_gradients)

        def train_function(iterator):
            loss, grads = gradients(next(iterator))
            self.optimizer.apply_gradients(zip(grads, self.lm.trainable_variables))
            self.train_loss.update_state(loss)
            return {"loss": loss}

        self.train_function = train_function
        return train_function

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        inputs, targets, weights = data
        weights = tf.cast(weights, tf.float32)
        loss_sum = self._loss_sum(inputs, targets, weights, training=False)
        # Global sums over replicas: every replica's tracker then holds the same exact totals.
        context = tf.distribute.get_replica_context()
        total, count = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                          [loss_sum, tf.reduce_sum(weights)])
        self.eval_loss.update_state(total / tf.maximum(count, 1.0), sample_weight=count)
        return {"loss": self.eval_loss.result()}


def _micro_batches(batch, count):
    """(inputs, targets, weights) split into `count` equal slices along the batch axis:
    a list of such triples (inputs a tensor or a dict of them; weights may be None)."""
    if count <= 1:
        return [batch]
    inputs, targets, weights = batch

    def split(t):
        return tf.split(t, count, axis=0)

    if isinstance(inputs, dict):
        parts = {k: split(v) for k, v in inputs.items()}
        micro_inputs = [{k: parts[k][i] for k in parts} for i in range(count)]
    else:
        micro_inputs = split(inputs)
    micro_weights = split(weights) if weights is not None else [None] * count
    return list(zip(micro_inputs, split(targets), micro_weights))


def _add(a, b):
    """a + b for gradients, IndexedSlices (an embedding lookup's) made dense first."""
    if isinstance(a, tf.IndexedSlices) or isinstance(b, tf.IndexedSlices):
        return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)
    return a + b
