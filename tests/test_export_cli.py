"""`python -m tfllm.export` and `tfllm.evaluate --tflite`: what a user ships and serves."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, run, train_run

pytestmark = pytest.mark.slow  # trains in subprocesses

# RoPE, so generation runs past the 16-token context; kernels over 1,024 elements, so
# dynamic-range quantization has weights to quantize.
MODEL = ["--config=tiny_test", "--config.model.position=rope", "--config.model.hidden_dim=128",
         "--config.model.num_heads=4", "--config.sample.length=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_run(tmp_path_factory, *MODEL)[0]


LOADER = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    m = tf.saved_model.load(sys.argv[1])
    args = dict(max_new_tokens=tf.constant(40), temperature=tf.constant(0.8), top_k=tf.constant(10),
                top_p=tf.constant(0.95), seed=tf.constant(3, tf.int64), end_token=tf.constant(-1))
    ids = m.signatures["generate"](prompt=tf.constant([[5, 6, 7]]), **args)
    text = m.signatures["generate_text"](prompt=tf.constant("ROMEO:"), num_samples=tf.constant(2), **args)
    score = m.signatures["score"](token_ids=tf.constant([[5, 6, 7, 8, 9]]))
    try:
        m.signatures["generate"](prompt=tf.constant([[5]]), **dict(args, temperature=tf.constant(-1.0)))
        refused = False
    except tf.errors.InvalidArgumentError as e:
        refused = "temperature must be >= 0" in str(e)
    print(json.dumps({"refused_negative_temperature": refused,"tokens": ids["tokens"].numpy().tolist(), "num_tokens": ids["num_tokens"].numpy().tolist(),
                      "text": [t.decode() for t in text["text"].numpy()],
                      "log_probs": score["log_probs"].numpy().tolist(),
                      "tfllm_imported": any(n.startswith("tfllm") for n in sys.modules)}))
""")


def test_saved_model_serves_without_tfllm_and_matches_generate(trained, tmp_path):
    proc = run("tfllm.export", f"--run_dir={trained}", "--format=saved_model")
    assert proc.returncode == 0, proc.stderr[-2000:]
    path = os.path.join(trained, "export", "saved_model")
    assert os.path.exists(os.path.join(path, "assets.extra", "tokenizer.json"))
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    # A bare interpreter in an empty directory: tfllm is neither imported nor importable from cwd.
    served = subprocess.run([sys.executable, str(script), path], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])
    assert not out["tfllm_imported"]
    assert out["refused_negative_temperature"]  # as tfllm.generate refuses it

    import tensorflow as tf

    from tfllm.inference import generate
    from tfllm.runs.run_directory import load_run

    _, tokenizer, model = load_run(trained)
    ours = generate(model, [5, 6, 7], 40, temperature=0.8, top_k=10, top_p=0.95, seed=3)[0]
    assert out["tokens"][0] == ours.tolist() and out["num_tokens"] == [40]
    texts = generate(model, tokenizer.encode("ROMEO:"), 40, temperature=0.8, top_k=10, top_p=0.95,
                     seed=3, num_samples=2)
    assert out["text"] == [tokenizer.decode(t) for t in texts]
    ids = np.array([[5, 6, 7, 8, 9]])
    log_probs = tf.nn.log_softmax(model(ids)[0, :-1]).numpy()[np.arange(4), ids[0, 1:]]
    np.testing.assert_allclose(out["log_probs"][0], log_probs, atol=1e-5)


def test_tflite_float32_and_int8_losses_and_sizes(trained):
    proc = run("tfllm.export", f"--run_dir={trained}", "--format=tflite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = os.path.join(trained, "export", "tflite")
    meta = json.loads(open(os.path.join(out, "tflite.json")).read())
    assert meta["seq_len"] == 16
    sizes = {name: os.path.getsize(os.path.join(out, name)) for name in meta["files"]}
    assert sizes == meta["files"]
    assert sizes["dynamic_int8.tflite"] <= 0.35 * sizes["float32.tflite"]

    proc = run("tfllm.evaluate", f"--run_dir={trained}", "--json", f"--tflite={out}/float32.tflite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    float32_loss = json.loads(proc.stdout.strip().splitlines()[-1])["loss"]
    # The rest in this process (what tfllm.evaluate calls; a process each would load
    # TensorFlow again).
    import tfllm

    keras_loss = tfllm.evaluate_run(trained)["loss"]
    assert abs(float32_loss - keras_loss) <= 1e-3
    int8_loss = tfllm.evaluate_run(trained, tflite=f"{out}/dynamic_int8.tflite")["loss"]
    assert abs(int8_loss - keras_loss) <= 0.02 * keras_loss


@pytest.mark.parametrize("case", ["no checkpoint", "window beyond the context", "missing tflite",
                                  "not a tflite file", "output under a file",
                                  "output the system refuses"])
def test_bad_input_is_one_line_and_writes_nothing(trained, case, tmp_path):
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (untrained / name).write_text(open(os.path.join(trained, name)).read())
    junk = tmp_path / "junk.tflite"
    junk.write_text("not a model")
    out = tmp_path / "out"
    module, args, phrase = {
        "no checkpoint": ("tfllm.export", [f"--run_dir={untrained}"], "has no checkpoint yet"),
        "window beyond the context": ("tfllm.export", [f"--run_dir={trained}", "--format=tflite",
                                                      "--seq_len=64"], "exceeds the GPT's context of 16"),
        "missing tflite": ("tfllm.evaluate", [f"--run_dir={trained}", f"--tflite={tmp_path}/no.tflite"],
                           "is not a file"),
        "not a tflite file": ("tfllm.evaluate", [f"--run_dir={trained}", f"--tflite={junk}"],
                              "is not a TFLite model"),
        "output under a file": ("tfllm.export", [f"--run_dir={trained}", f"--output={junk}/model"],
                                "junk.tflite/model cannot be created ("),
        # Passes a permission check as root, and mkdir fails (Linux's /proc).
        "output the system refuses": ("tfllm.export", [f"--run_dir={trained}", "--format=tflite",
                                                      "--output=/proc/tfllm_export"],
                                      "export directory /proc/tfllm_export cannot be created"),
    }[case]
    if module == "tfllm.export" and not any(a.startswith("--output=") for a in args):
        args.append(f"--output={out}")
    assert_one_line_error(run(module, *args), phrase)
    assert not out.exists()
