"""Sample text from a trained run:
`python -m tfllm.generate --run_dir=DIR --prompt="ROMEO:" [--max_new_tokens=200] [--temperature=0.8]`.
"""

import sys

from absl import flags

from tfllm import cli

flags.DEFINE_string("run_dir", None, "Run directory of a training run.", required=True)
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix; default the run's newest.")
flags.DEFINE_string("prompt", None, "Prompt text.")
flags.DEFINE_string("prompt_file", None, "Read the prompt from this file ('-' for stdin).")
flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate per sample.")
flags.DEFINE_float("temperature", 0.8, "Softmax temperature; 0 = greedy.")
flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens; 0 = all.")
flags.DEFINE_float("top_p", 1.0, "Sample among the most likely tokens whose mass reaches p.")
flags.DEFINE_integer("seed", 0, "Sampling seed: the same seed gives the same text.")
flags.DEFINE_integer("num_samples", 1, "Independent samples.", lower_bound=1)
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
    prompt = read_prompt()
    if not prompt:
        raise cli.UserError("the prompt is empty; pass --prompt=<text> (or leave it out for a newline).")
    from tfllm.inference import generate
    from tfllm.training.run_directory import load_run

    _, tokenizer, model = load_run(FLAGS.run_dir, FLAGS.checkpoint)
    try:
        prompt_ids = tokenizer.encode(prompt)
    except ValueError as e:
        raise cli.UserError(f"the prompt does not fit the run's tokenizer: {e}") from None
    ids = generate(model, prompt_ids, FLAGS.max_new_tokens, FLAGS.temperature, FLAGS.top_k,
                   FLAGS.top_p, FLAGS.seed, FLAGS.num_samples)
    for i, sample in enumerate(ids):
        if FLAGS.num_samples > 1:
            print(f"--- sample {i}")
        print(prompt + tokenizer.decode(sample))


if __name__ == "__main__":
    cli.run(main)
