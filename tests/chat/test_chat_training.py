"""Chat fine-tuning end to end on a tiny imported checkpoint: a .jsonl source trains with
the loss on the answers only, the run keeps its template, `tfllm.generate --chat` answers
in it, and what chat data does not fit is one line."""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, metrics, run

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "chat"
# No --config: a start from hf: takes configs/finetune.py (asserted below); small and quick.
TINY = ["--config.model.max_length=128", "--config.train.steps=30", "--config.eval.every=10",
        "--config.checkpoint.every=10", "--config.log_every=10", "--config.train.batch_size=8",
        "--config.train.learning_rate=2e-3"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random Llama-style model with the chat fixtures' tokenizer (which has ChatML's
    special tokens) and SmolLM2's template, in the Hugging Face layout."""
    from tfllm.models import GPT
    from tfllm.pretrained.conversion import save_pretrained
    from tfllm.tokenizers.hf_tokenizer import HFTokenizer

    path = tmp_path_factory.mktemp("chat") / "hf"
    text = (FIXTURES / "tokenizer.json").read_text(encoding="utf-8")
    tokenizer = HFTokenizer(text, vocab_size=640)
    tokenizer.eos_id = tokenizer.special_tokens()["<|im_end|>"]
    model = GPT(vocab_size=640, num_layers=2, num_heads=4, num_kv_heads=2, hidden_dim=32,
                intermediate_dim=64, max_length=128, position="rope", normalization="rms",
                activation="swiglu", use_bias=False, tie_embeddings=True)
    save_pretrained(model, tokenizer, str(path))
    shutil.copyfile(FIXTURES / "templates" / "smollm2.jinja", path / "chat_template.jinja")
    return path


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def reversal_rows(count, seed=0):
    """Conversations whose answer is the question's words reversed: learnable."""
    rng = np.random.default_rng(seed)
    words = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree"]
    rows = []
    for _ in range(count):
        picked = list(rng.choice(words, 3))
        rows.append({"messages": [{"role": "user", "content": " ".join(picked)},
                                  {"role": "assistant", "content": " ".join(picked[::-1])}]})
    return rows


@pytest.fixture(scope="module")
def chat_run(checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("chatrun")
    data = write_rows(root / "train.jsonl", reversal_rows(200))
    run_dir = root / "run"
    proc = run("tfllm.train", *TINY, f"--init_from=hf:{checkpoint}",
               f"--config.data.source={data}", f"--run_dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, data, proc


def test_a_chat_run_trains_on_the_answers_and_keeps_its_template(chat_run, checkpoint):
    run_dir, _, proc = chat_run
    assert "chat: the checkpoint's template, the loss on the answers, packed windows" in proc.stdout
    assert "200 chat examples (180 training" in proc.stdout
    records = metrics(run_dir)
    assert [r["step"] for r in records] == [10, 20, 30]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert (run_dir / "chat_template.jinja").read_text() == (
        checkpoint / "chat_template.jinja").read_text()


def test_generate_chat_answers_each_line_in_the_template(chat_run):
    run_dir, _, _ = chat_run
    proc = run("tfllm.generate", f"--run_dir={run_dir}", "--chat", "--max_new_tokens=8",
               "--stream_chunk=0", input_text="red cat sun\nblue dog\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Two answers (a tiny model's: any text), each ended at <|im_end|>, which is not printed.
    assert len(proc.stdout.splitlines()) >= 2
    assert "<|im_end|>" not in proc.stdout and "<|im_start|>" not in proc.stdout
    # The first answer is the one a new conversation gets (greedy): what --chat --prompt
    # prints, through the library call it makes.
    from tfllm.api.chat import ChatSession

    first = ChatSession(str(run_dir), max_new_tokens=8).reply("red cat sun")
    assert proc.stdout.startswith(first + "\n")


def test_resuming_with_another_template_is_one_line(chat_run, tmp_path, checkpoint):
    run_dir, data, _ = chat_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    other = tmp_path / "other.jinja"
    other.write_text((FIXTURES / "templates" / "chatml_generation.jinja").read_text())
    (copy / "chat_template.jinja").write_text(other.read_text())
    proc = run("tfllm.train", *TINY, "--config.train.steps=40", f"--init_from=hf:{checkpoint}",
               f"--config.data.source={data}", f"--run_dir={copy}")
    assert_one_line_error(proc, "was trained with another chat template")


@pytest.mark.parametrize("case", ["no answer trained", "malformed row", "text model",
                                  "warm-up"])
def test_chat_data_that_does_not_fit_is_one_line(case, checkpoint, tmp_path):
    long_prompt = [{"messages": [{"role": "user", "content": "word " * 400},
                                 {"role": "assistant", "content": "ok"}]}] * 4
    data = tmp_path / "data.jsonl"
    if case == "malformed row":
        data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n')
    else:
        write_rows(data, long_prompt if case == "no answer trained" else reversal_rows(20))
    init = [] if case == "text model" else [f"--init_from=hf:{checkpoint}"]
    extra = (["--config.train.seq_len_start=8", "--config.train.shape_warmup_steps=10"]
             if case == "warm-up" else [])
    phrase = {"no answer trained": "is left with no trained token",
              "malformed row": f"{data}:2: the row is not JSON",
              "text model": "needs a pretrained model and its tokenizer",
              "warm-up": "does not combine with the batch or window warm-up"}[case]
    proc = run("tfllm.train", *TINY, *init, *extra, f"--config.data.source={data}",
               f"--run_dir={tmp_path / 'run'}")
    assert_one_line_error(proc, phrase)
    assert not (tmp_path / "run").exists()


def test_exports_carry_the_runs_template(chat_run, tmp_path):
    import tfllm
    from tfllm.pretrained.gguf_checkpoint import GGUFCheckpoint

    run_dir, _, _ = chat_run
    template = (run_dir / "chat_template.jinja").read_text()
    tfllm.export_run(str(run_dir), "hf", output=str(tmp_path / "hf"))
    assert (tmp_path / "hf" / "chat_template.jinja").read_text() == template
    tfllm.export_run(str(run_dir), "gguf", output=str(tmp_path / "gguf"))
    (path,) = (tmp_path / "gguf").glob("*.gguf")
    assert GGUFCheckpoint(str(path)).chat_template == template


def test_mirrored_over_two_devices_trains_as_one(chat_run, checkpoint, tmp_path):
    run_dir, data, _ = chat_run
    proc = run("tfllm.train", *TINY, f"--init_from=hf:{checkpoint}", f"--config.data.source={data}",
               "--strategy=mirrored", "--cpu_devices=2", f"--run_dir={tmp_path / 'mirrored'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = metrics(run_dir), metrics(tmp_path / "mirrored")
    np.testing.assert_allclose([r["loss"] for r in two], [r["loss"] for r in one], rtol=1e-4)
    np.testing.assert_allclose([r["val_loss"] for r in two if "val_loss" in r],
                               [r["val_loss"] for r in one if "val_loss" in r], rtol=1e-4)


def test_generation_stops_at_the_end_of_text_token_by_default(chat_run, tmp_path):
    import tfllm
    from tfllm.inference import generate
    from tfllm.runs.run_directory import load_run

    run_dir = tmp_path / "run"
    shutil.copytree(chat_run[0], run_dir)
    prompt = "<|im_start|>user\nred cat sun<|im_end|>\n<|im_start|>assistant\n"
    _, tokenizer, model = load_run(str(run_dir))
    free = [int(i) for i in generate(model, tokenizer.encode(prompt), 12, temperature=0)[0]]
    # The end-of-text token made one this tiny model writes (its third): generation stops
    # there, without printing it.
    end = free[2]
    state = json.loads((run_dir / "tokenizer.json").read_text())
    (run_dir / "tokenizer.json").write_text(json.dumps({**state, "eos_id": end}))
    stopped = tfllm.generate_text(str(run_dir), prompt, max_new_tokens=12, temperature=0)[0]
    assert stopped == tokenizer.decode(free[:free.index(end)])
    kept = tfllm.generate_text(str(run_dir), prompt, max_new_tokens=12, temperature=0,
                               stop_at_end=False)[0]
    assert kept == tokenizer.decode(free)


def test_a_pretrained_start_without_a_config_takes_the_finetune_config(chat_run):
    run_dir, _, proc = chat_run
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["train"]["warmup_steps"], config["eval"]["max_tokens"],
            config["sample"]["length"]) == (10, 16384, 0)
    assert "sample:" not in proc.stdout


def test_evaluate_scores_the_held_out_answers_as_training_did(chat_run):
    run_dir, _, _ = chat_run
    proc = run("tfllm.evaluate", f"--run_dir={run_dir}", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["loss"], metrics(run_dir)[-1]["val_loss"], rtol=1e-5)
    proc = run("tfllm.evaluate", f"--run_dir={run_dir}", "--tflite=x.tflite")
    assert_one_line_error(proc, "drop --tflite")


@pytest.fixture(scope="module")
def prepared_chat(chat_run, checkpoint, tmp_path_factory):
    """chat_run's rows prepared once by tfllm.prepare with the checkpoint's tokenizer."""
    _, data, _ = chat_run
    out = tmp_path_factory.mktemp("prepared") / "chats"
    proc = run("tfllm.prepare", f"--data={data}", f"--tokenizer_from=hf:{checkpoint}",
               f"--output={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "prepared" in proc.stdout and "200 examples" in proc.stdout
    return out


def test_a_prepared_chat_dataset_trains_as_its_jsonl(chat_run, prepared_chat, checkpoint,
                                                     tmp_path):
    run_dir, _, _ = chat_run
    proc = run("tfllm.train", *TINY, f"--init_from=hf:{checkpoint}",
               f"--config.data.source={prepared_chat}", f"--run_dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "chat: the prepared dataset's template" in proc.stdout
    assert "200 chat examples (180 training" in proc.stdout
    # The same examples, split, windows and order: the same run.
    np.testing.assert_allclose([r["val_loss"] for r in metrics(tmp_path / "run")],
                               [r["val_loss"] for r in metrics(run_dir)], rtol=1e-6)
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]
    assert recorded["path"] == str(prepared_chat)
    # tfllm.evaluate reads it too, with the run's template: the run's own score.
    proc = run("tfllm.evaluate", f"--run_dir={run_dir}", f"--data={prepared_chat}", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["loss"], metrics(run_dir)[-1]["val_loss"], rtol=1e-5)


@pytest.mark.parametrize("case", ["another template", "another tokenizer", "no tokenizer"])
def test_a_prepared_chat_dataset_that_does_not_fit_is_one_line(case, chat_run, prepared_chat,
                                                               checkpoint, tmp_path):
    _, data, _ = chat_run
    if case == "no tokenizer":
        proc = run("tfllm.prepare", f"--data={data}", f"--output={tmp_path / 'out'}")
        assert_one_line_error(proc, "pass --tokenizer_from=hf:DIR")
        assert not (tmp_path / "out").exists()
        return
    init, extra = f"--init_from=hf:{checkpoint}", []
    if case == "another template":
        other_template = FIXTURES / "templates" / "chatml_generation.jinja"
        extra = [f"--config.data.chat_template={other_template}"]
        phrase = "was prepared with another chat template"
    else:  # the same model with one more token: other ids
        other = tmp_path / "hf"
        shutil.copytree(checkpoint, other)
        config = json.loads((other / "config.json").read_text())
        (other / "config.json").write_text(json.dumps({**config, "vocab_size": 641}))
        init, phrase = f"--init_from=hf:{other}", "is prepared with another tokenizer"
    proc = run("tfllm.train", *TINY, init, *extra, f"--config.data.source={prepared_chat}",
               f"--run_dir={tmp_path / 'run'}")
    assert_one_line_error(proc, phrase)
    assert not (tmp_path / "run").exists()
