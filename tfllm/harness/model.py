"""The lm-eval model `tfllm`: lm-evaluation-harness's three requests answered by a tfllm
model, with the conventions of lm-eval's own `hf` model, so that scores compare.

- `loglikelihood(context, continuation)`: context and continuation encoded together, the
  continuation's tokens scored in one forward pass; `is_greedy` when each of its tokens is
  the arg max. Requests are batched longest first (`batch_size`); a request longer than
  the model's window keeps its last `max_length` + 1 tokens (cut from the left, as the
  `hf` model cuts, and said once per call).
- `loglikelihood_rolling(text)`: the text in disjoint windows of the model's context, each
  prediction made once, the first conditioned on the prefix token (lm-eval's windows).
- `generate_until(context, kwargs)`: tfllm's compiled sampler with the KV cache, greedy
  unless `do_sample`; stops at the end-of-text token or once a stop string appears, the
  text cut at the first stop string.
- Chat hooks for `--apply_chat_template`: the run's (or checkpoint's) chat template,
  rendered as transformers renders it (tfllm.chat.template).

The forward pass is a tf.function over any batch and length (one trace), returning per
position only the target's log-probability and whether it is the arg max: the [batch,
time, vocabulary] logits never leave the graph.
"""

import logging
import re

import numpy as np
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, \
    postprocess_generated_text
from tqdm import tqdm

from tfllm.errors import UserError

log = logging.getLogger("tfllm.harness")

MODEL_NAME = "tfllm"
AUTO_BATCH = 8  # what batch_size=auto gives: tfllm does not search for the largest fitting
# model_args (batch_size is lm-eval's own --batch_size, passed beside them)
MODEL_ARGS = ("run_dir", "checkpoint", "max_length", "max_gen_toks", "chat_template")
GENERATION_KWARGS = ("do_sample", "temperature", "top_k", "top_p", "until", "max_gen_toks")


def check_model_args(args):
    """UserError for model_args the tfllm model does not take, or without run_dir."""
    unknown = sorted(set(args) - set(MODEL_ARGS))
    if unknown:
        raise UserError(f"model_args {', '.join(unknown)}: not an argument of the tfllm model; "
                        f"it takes {', '.join(MODEL_ARGS)}.")
    if not args.get("run_dir"):
        raise UserError("model_args needs run_dir=RUN: a tfllm run directory, hf:DIR or "
                        "gguf:FILE.")


def register():
    """Registers TfllmLM with lm-eval as `tfllm` (once)."""
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=TfllmLM)


class TfllmLM(TemplateLM):
    """A tfllm model as lm-eval sees it. `run_dir` is a run directory, `hf:DIR` or
    `gguf:FILE`; `checkpoint` a checkpoint prefix of the run (default its newest);
    `max_length` overrides the model's context; `chat_template` is a template file for
    `--apply_chat_template` where the run has none.

    Example:
        >>> lm = TfllmLM(run_dir="gguf:SmolLM2-135M-Instruct.Q4_1.gguf", batch_size=8)
    """

    def __init__(self, run_dir=None, checkpoint=None, batch_size=1, max_length=None,
                 max_gen_toks=256, chat_template=None, max_batch_size=None, device=None,
                 **unknown):
        super().__init__()
        check_model_args({**unknown, "run_dir": run_dir})
        from tfllm.runs.run_directory import load_run

        run_dir = str(run_dir)
        config, tokenizer, model = load_run(run_dir, checkpoint)  # a bad run fails before TF
        self.spec, self._checkpoint, self._template_file = run_dir, checkpoint, chat_template
        self._template_text = self._chat = None
        self._setup(model, tokenizer, int(max_length or config.model.max_length), batch_size,
                    max_gen_toks)

    @classmethod
    def from_model(cls, model, tokenizer, max_length, batch_size=AUTO_BATCH,
                   template_text=None, name="model"):
        """A TfllmLM over a model in memory (a training run's, evaluated as it trains)."""
        lm = cls.__new__(cls)
        TemplateLM.__init__(lm)
        lm.spec, lm._checkpoint, lm._template_file = name, None, None
        lm._template_text, lm._chat = template_text, None
        lm._setup(model, tokenizer, max_length, batch_size, 256)
        return lm

    def _setup(self, model, tokenizer, max_length, batch_size, max_gen_toks):
        self.model, self.tokenizer = model, tokenizer
        self._max_length, self._max_gen_toks = int(max_length), int(max_gen_toks)
        self._batch_size = _batch_size(batch_size)
        self._score = _scorer(model)
        self._hf = hasattr(tokenizer, "encode_as_checkpoint")  # a checkpoint's tokenizer
        eos = getattr(tokenizer, "eos_id", None)
        self._eot = int(eos) if eos is not None else int(tokenizer.document_separator()[-1])
        bos = getattr(tokenizer, "bos_id", None)
        self._prefix = int(bos) if bos is not None else self._eot
        self._prefix_text = tokenizer.decode([self._prefix])

    # What lm-eval reads of a model.
    @property
    def eot_token_id(self):
        return self._eot

    @property
    def prefix_token_id(self):
        return self._prefix

    @property
    def max_length(self):
        return self._max_length

    @property
    def max_gen_toks(self):
        return self._max_gen_toks

    @property
    def batch_size(self):
        return self._batch_size

    @property
    def tokenizer_name(self):
        return re.sub(r"[^A-Za-z0-9_.-]+", "__", self.spec)

    def tok_encode(self, string, add_special_tokens=None, left_truncate_len=None, **kwargs):
        """The tokenizer's ids for `string`; a checkpoint's tokenizer adds its special
        tokens (a BOS where it adds one) unless told not to or the string starts with the
        prefix token already (as lm-eval's hf model does)."""
        if self._hf:
            add = True if add_special_tokens is None else bool(add_special_tokens)
            if add_special_tokens is None and string.startswith(self._prefix_text):
                add = False
            ids = list(self.tokenizer.encode_as_checkpoint(string, add))
        else:
            ids = [int(i) for i in self.tokenizer.encode(string)]
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_decode(self, ids):
        if self._hf:
            return self.tokenizer.decode_text(ids)
        return self.tokenizer.decode(ids)

    # The three requests.
    def _loglikelihood_tokens(self, requests, disable_tqdm=False, **unused):
        """(log-probability, is_greedy) of each (key, context ids, continuation ids).
        Requests that feed the model the same tokens share one forward pass: one-token
        continuations of one context (a multiple-choice question's single-token answers)
        are read from the distribution at its last position, as lm-eval's hf model does."""
        rows = [self._window(context, continuation) for _, context, continuation in requests]
        truncated = sum(cut for _, _, cut in rows)
        if truncated:
            log.warning("%d request(s) longer than the model's %d-token window: their context "
                        "was cut from the left (as lm-eval's hf model cuts).", truncated,
                        self.max_length)
        groups = {}
        for i, (tokens, n, _) in enumerate(rows):
            groups.setdefault(tokens[:-1] if n == 1 else (tokens, n), []).append(i)
        firsts = sorted((members[0] for members in groups.values()),
                        key=lambda i: (-len(rows[i][0]), rows[i][0]))
        results = [None] * len(rows)
        bar = tqdm(total=len(rows), disable=disable_tqdm, desc="tfllm loglikelihood")
        for start in range(0, len(firsts), self.batch_size):
            batch = firsts[start:start + self.batch_size]
            scored = self._score_batch([rows[i][:2] for i in batch])
            for i, (summed, last) in zip(batch, scored):
                tokens, n, _ = rows[i]
                for j in groups[tokens[:-1] if n == 1 else (tokens, n)]:
                    results[j] = summed if n > 1 else _one_token(last, rows[j][0][-1])
                    if requests[j][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[j][0], results[j])
                    bar.update(1)
        bar.close()
        return results

    def _window(self, context, continuation):
        """(tokens fed and scored, continuation length, whether the context was cut)."""
        if len(continuation) > self.max_length:
            raise UserError(f"a continuation of {len(continuation)} tokens is longer than the "
                            f"model's {self.max_length}-token window; score shorter text.")
        whole = list(context) + list(continuation)
        cut = len(whole) > self.max_length + 1
        return tuple(whole[-(self.max_length + 1):]), len(continuation), cut

    def _score_batch(self, rows):
        """For each (tokens, continuation length): ((sum of the continuation's
        log-probabilities, all greedy), log-probabilities at the last position), in one
        forward pass padded on the right, the head applied at continuation positions only."""
        import tensorflow as tf

        width = max(len(tokens) for tokens, _ in rows) - 1
        scored = max(n for _, n in rows)
        ids = np.zeros([len(rows), width], np.int32)
        positions = np.zeros([len(rows), scored], np.int32)
        targets = np.zeros([len(rows), scored], np.int32)
        for r, (tokens, n) in enumerate(rows):
            end = len(tokens) - 1
            ids[r, :end] = tokens[:-1]
            # Right-aligned: column -1 is the last position; short rows repeat their first.
            at = np.maximum(np.arange(end - scored, end), end - n)
            positions[r], targets[r] = at, np.asarray(tokens)[at + 1]
        log_probs, greedy, last_log_probs = (t.numpy() for t in self._score(
            tf.constant(ids), tf.constant(positions), tf.constant(targets)))
        return [((float(log_probs[r, scored - n:].sum(dtype=np.float64)),
                  bool(greedy[r, scored - n:].all())), last_log_probs[r])
                for r, (_, n) in enumerate(rows)]

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        windows, counts = [], []
        for (text,) in [request.args for request in requests]:
            pairs = [lm_utils.make_disjoint_window(pair) for pair in
                     lm_utils.get_rolling_token_windows(
                         token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                         max_seq_len=self.max_length, context_len=1)]
            windows += [(None, context, continuation) for context, continuation in pairs]
            counts.append(len(pairs))
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        totals, at = [], 0
        for request, count in zip(requests, counts):
            totals.append(sum(score for score, _ in scores[at:at + count]))
            at += count
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, totals[-1])
        return totals

    def generate_until(self, requests, disable_tqdm=False):
        eos_text = self.tokenizer.decode([self.eot_token_id])
        out = []
        for request in tqdm(requests, disable=disable_tqdm, desc="tfllm generate_until"):
            context, gen_kwargs = request.args
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
            text = self._generate(context, until, kwargs)
            out.append(text)
            self.cache_hook.add_partial("generate_until", request.args, text)
        return out

    def _generate(self, context, until, kwargs):
        from tfllm.inference import generate

        max_new = int(kwargs.pop("max_gen_toks"))
        if max_new >= self.max_length:
            raise UserError(f"max_gen_toks={max_new} leaves no room for a prompt in the "
                            f"model's {self.max_length}-token window; ask for fewer.")
        prompt = self.tok_encode(context)
        if len(prompt) > self.max_length - max_new:
            log.warning("a %d-token prompt was cut from the left to %d tokens, to leave room "
                        "for %d new ones in the model's window.", len(prompt),
                        self.max_length - max_new, max_new)
            prompt = prompt[-(self.max_length - max_new):]
        temperature, top_k, top_p = _sampler(kwargs)
        stop = _StopStrings(self, until)
        ids = generate(self.model, prompt, max_new, temperature, top_k, top_p, 0, 1,
                       end_token=self.eot_token_id, stream=stop, chunk_size=16)[0]
        return postprocess_generated_text(self.tok_decode(ids), until, None)

    # Chat templates (--apply_chat_template).
    def chat_template(self, chat_template=False):
        if not chat_template:
            return None
        return self._template().source

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        from tfllm.chat.template import ChatTemplateError, render_continuing

        template = self._template()

        def render(messages):
            if add_generation_prompt:
                return template.render(messages, add_generation_prompt=True).text
            return render_continuing(template, messages)

        try:
            return render(chat_history)
        except ChatTemplateError:  # lm-eval's hf model retries without the system message
            return render([m for m in chat_history if m["role"] != "system"])

    def _template(self):
        """The chat template, compiled once (lm-eval asks for it once per request)."""
        from tfllm.chat.template import ChatTemplate
        from tfllm.data.chat_examples import special_token_strings

        if self._chat is None:
            text = self._template_text or self._find_template()
            self._chat = ChatTemplate(text, special_token_strings(self.tokenizer),
                                      name=f"{self.spec} chat template")
        return self._chat

    def _find_template(self):
        from tfllm.runs.chat_template import chat_template_of

        return chat_template_of(self.spec, self._template_file, "--apply_chat_template",
                                "--model_args=...,chat_template=FILE")[0]


class _StopStrings:
    """generate()'s stream: True (stop) once the text generated so far holds a stop
    string."""

    def __init__(self, lm, until):
        self.lm, self.until, self.ids = lm, [s for s in until if s], []

    def __call__(self, chunk):
        self.ids.extend(int(i) for i in chunk[0])
        text = self.lm.tok_decode(self.ids)
        return any(s in text for s in self.until)


def _sampler(kwargs):
    """(temperature, top_k, top_p) of lm-eval's generation kwargs: greedy unless
    do_sample; a kwarg tfllm's sampler does not have is refused."""
    unknown = sorted(set(kwargs) - set(GENERATION_KWARGS))
    if unknown:
        raise UserError(f"generation_kwargs {', '.join(unknown)}: tfllm's sampler takes "
                        "do_sample, temperature, top_k, top_p, until and max_gen_toks.")
    if not kwargs.get("do_sample"):
        return 0.0, 0, 1.0
    return (float(kwargs.get("temperature", 1.0)), int(kwargs.get("top_k") or 0),
            float(kwargs.get("top_p", 1.0)))


def _batch_size(value):
    if isinstance(value, str) and value.startswith("auto"):
        log.info("batch_size=%s: tfllm uses %d (it does not search for the largest).", value,
                 AUTO_BATCH)
        return AUTO_BATCH
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise UserError(f"batch_size={value!r} is not a positive whole number (or auto).")
    return size


def _one_token(log_probs, token):
    """(log-probability, is_greedy) of a one-token continuation, from the distribution."""
    return float(log_probs[token]), bool(int(np.argmax(log_probs)) == int(token))


def _scorer(model):
    """tf.function(ids [batch, time], positions, targets [batch, scored]) -> (the
    log-probability of each target at its position, whether it is the arg max), both
    [batch, scored], and the log-probabilities at each row's last scored position [batch,
    vocabulary]; over any batch and lengths (one trace)."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec])
    def score(ids, positions, targets):
        if hasattr(model, "logits_at"):
            logits = model.logits_at(ids, positions)
        else:
            logits = tf.gather(model(ids, training=False), positions, batch_dims=1)
        logits = tf.cast(logits, tf.float32)
        normalizer = tf.reduce_logsumexp(logits, axis=-1)
        log_probs = tf.gather(logits, targets, batch_dims=2) - normalizer
        greedy = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets)
        last_log_probs = logits[:, -1] - normalizer[:, -1:]
        return log_probs, greedy, last_log_probs

    return score
