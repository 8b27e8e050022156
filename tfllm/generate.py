"""Sample text from a trained run:
`python -m tfllm.generate --run_dir=DIR --prompt="ROMEO:" [--max_new_tokens=200] [--temperature=0.8]`
(or --model=hf:DIR / gguf:FILE: a pretrained model as it is).

The prompt comes from --prompt, --prompt_file or stdin (--prompt_file=-). One sample is
printed as it is generated (in chunks of --stream_chunk tokens); several are printed
one after another. The sampler is any mix of temperature (0 = greedy), top-k and top-p,
or a named one (--sampler=greedy|temperature|top_k|top_p) that switches the others off.

--chat talks in the model's chat template (docs/chat.md): each line of stdin is a user
message and the answer follows, until end of input; with --prompt, one message is
answered. Answers end at the template's end-of-turn token; --system sets a system prompt.
"""

import sys

from absl import flags

from tfllm import cli

cli.define_model_flags()
cli.define_path("checkpoint", None, "A checkpoint prefix; default the run's newest.")
flags.DEFINE_string("prompt", None, "Prompt text.")
cli.define_path("prompt_file", None, "Read the prompt from this file ('-' for stdin).")
flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate per sample.")
flags.DEFINE_float("temperature", 0.8, "Softmax temperature; 0 = greedy.")
flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens; 0 = all.")
flags.DEFINE_float("top_p", 1.0, "Sample among the most likely tokens whose mass reaches p.")
flags.DEFINE_integer("seed", 0, "Sampling seed: the same seed gives the same text.")
flags.DEFINE_integer("num_samples", 1, "Independent samples.", lower_bound=1)
flags.DEFINE_enum("sampler", None, ["greedy", "temperature", "top_k", "top_p"],
                  "A named sampler; default: temperature, top_k and top_p as given.")
flags.DEFINE_string("stop_at", None, "End a sample when it generates this token (e.g. a "
                    "newline); it must be one token of the run's tokenizer.")
flags.DEFINE_bool("stop_at_end", True, "Without --stop_at, end a sample at the tokenizer's "
                  "end-of-text token where it has one (a pretrained model's); not printed.")
flags.DEFINE_integer("stream_chunk", 8, "Tokens per streamed chunk of a single sample; "
                     "0 = print the sample when it is complete.", lower_bound=0)
flags.DEFINE_bool("chat", False, "Chat in the model's template: each stdin line (or --prompt) "
                  "is a user message; greedy unless --temperature is set.")
flags.DEFINE_string("system", None, "--chat: a system prompt.")
cli.define_path("chat_template", None, "--chat: a Jinja chat template file instead of the "
                "run's or checkpoint's own.")
FLAGS = flags.FLAGS


def read_prompt():
    if FLAGS.prompt_file == "-":
        return sys.stdin.read()
    if FLAGS.prompt_file:
        try:
            with open(FLAGS.prompt_file, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise cli.UserError(f"cannot read --prompt_file: {e.strerror}: {FLAGS.prompt_file}.")
    return FLAGS.prompt if FLAGS.prompt is not None else "\n"


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}; flags look like --name=value.")
    if FLAGS.chat:
        return chat()
    from tfllm.api.generation import generate_text

    prompt = read_prompt()
    streaming = FLAGS.num_samples == 1 and FLAGS.stream_chunk > 0
    printer = StreamPrinter(prompt) if streaming else None
    samples = generate_text(cli.model_spec(), prompt, FLAGS.max_new_tokens, FLAGS.temperature,
                            FLAGS.top_k, FLAGS.top_p, FLAGS.seed, FLAGS.num_samples,
                            FLAGS.stop_at, FLAGS.sampler, FLAGS.checkpoint, on_text=printer,
                            chunk_size=FLAGS.stream_chunk, stop_at_end=FLAGS.stop_at_end)
    if streaming:
        printer.finish(samples[0])
        return
    for i, sample in enumerate(samples):
        if FLAGS.num_samples > 1:
            print(f"--- sample {i}")
        print(prompt + sample)


def chat():
    """--chat: answers --prompt, or each line of stdin in one conversation."""
    from tfllm.api.chat import ChatSession

    temperature = FLAGS.temperature if FLAGS["temperature"].present else 0.0
    session = ChatSession(cli.model_spec(), FLAGS.system, FLAGS.checkpoint, FLAGS.chat_template,
                          FLAGS.max_new_tokens, temperature, FLAGS.top_k, FLAGS.top_p,
                          FLAGS.seed)
    messages = [FLAGS.prompt] if FLAGS.prompt is not None else (
        line.rstrip("\n") for line in sys.stdin)
    for message in messages:
        if not message.strip():
            continue
        printer = StreamPrinter("") if FLAGS.stream_chunk else None
        answer = session.reply(message, on_text=printer)
        if printer is None:
            print(answer)
        else:
            printer.finish(answer)


class StreamPrinter:
    """Prints one sample's text as it arrives: the prompt with the first text (after the
    request was checked), then what each call adds."""

    def __init__(self, prompt):
        self.printed = ""
        self.prompt = prompt

    def __call__(self, text):
        if self.prompt is not None:
            sys.stdout.write(self.prompt)
            self.prompt = None
        if text.startswith(self.printed):
            sys.stdout.write(text[len(self.printed):])
            self.printed = text
        sys.stdout.flush()

    def finish(self, text):
        self(text)
        sys.stdout.write("\n")
        sys.stdout.flush()


if __name__ == "__main__":
    cli.run(main)
