"""Bad input is answered before TensorFlow loads: every command below runs with a
`tensorflow` that fails to import, and must still print its own one-line error."""

import json
import os

import pytest

from tests.cli_helpers import assert_one_line_error, run


HF_LLAMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "hf", "llama")


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory):
    """A PYTHONPATH entry whose `tensorflow` raises on import."""
    root = tmp_path_factory.mktemp("no_tf")
    (root / "tensorflow").mkdir()
    (root / "tensorflow" / "__init__.py").write_text(
        "raise ImportError('tensorflow was imported before the input was checked')\n")
    return str(root)


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory):
    """A run directory with a config and a tokenizer, and no checkpoint yet."""
    from tfllm.configs import tiny_test
    from tfllm.tokenizers import CharTokenizer

    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / "config.json").write_text(json.dumps(tiny_test.get_config().to_dict()))
    CharTokenizer.train("abcdefgh \n").save(str(run_dir))
    return str(run_dir)


@pytest.mark.parametrize("case", ["generate: checkpoint missing",
                                  "generate: no checkpoint", "evaluate: no checkpoint",
                                  "export: output under a file", "train: missing corpus",
                                  "train: empty corpus", "train: run directory under a file",
                                  "prepare: workers 0", "train: hf directory without config",
                                  "train: hf model_type unsupported",
                                  "prepare: hf tokenizer missing", "train: unknown strategy",
                                  "train: heads over the mesh", "train: teacher untrained",
                                  "train: remat on an LSTM", "train: remat on a mesh",
                                  "train: soap on a mesh", "train: sophia in float16",
                                  "lr_find: range upside down", "lr_find: plot not png",
                                  "benchmark: unknown optimizer", "train: hf checkpoint without hf:",
                                  "train: model flag over an hf checkpoint",
                                  "train: lora_alpha 0"])
def test_bad_input_is_answered_without_tensorflow(case, no_tensorflow, untrained_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n")
    falcon = tmp_path / "falcon"
    falcon.mkdir()
    (falcon / "config.json").write_text('{"model_type": "falcon"}')
    module, args, phrase = {
        "generate: checkpoint missing": (
            "tfllm.generate", [f"--run_dir={untrained_run}", "--prompt=xyz",
                               f"--checkpoint={untrained_run}/none"], "no checkpoint there"),
        "generate: no checkpoint": ("tfllm.generate", [f"--run_dir={untrained_run}"],
                                    "has no checkpoint yet"),
        "evaluate: no checkpoint": ("tfllm.evaluate", [f"--run_dir={untrained_run}"],
                                    "has no checkpoint yet"),
        "export: output under a file": ("tfllm.export", [f"--run_dir={untrained_run}",
                                                         f"--output={blocker}/out"],
                                        "cannot be created"),
        "train: missing corpus": ("tfllm.train", ["--config=tiny_test",
                                                  f"--config.data.source={tmp_path}/none.txt",
                                                  f"--run_dir={tmp_path}/run"], "names no file"),
        "train: empty corpus": ("tfllm.train", ["--config=tiny_test",
                                                f"--config.data.source={empty}",
                                                f"--run_dir={tmp_path}/run"], "is empty"),
        "train: run directory under a file": ("tfllm.train", ["--config=tiny_test",
                                                              f"--run_dir={blocker}/run"],
                                              "cannot be created"),
        "prepare: workers 0": ("tfllm.prepare", [f"--data={empty}", f"--output={tmp_path}/out",
                                                 "--workers=0"], "--workers=0 is not allowed"),
        "train: hf directory without config": (
            "tfllm.train", ["--config=tiny_test", f"--init_from=hf:{tmp_path}",
                            f"--run_dir={tmp_path}/run"], "has no config.json"),
        "train: hf model_type unsupported": (
            "tfllm.train", ["--config=tiny_test", f"--init_from=hf:{falcon}",
                            f"--run_dir={tmp_path}/run"], "model_type='falcon' is not supported"),
        "prepare: hf tokenizer missing": (
            "tfllm.prepare", [f"--data={empty}", f"--output={tmp_path}/out",
                              f"--tokenizer_from=hf:{falcon}"], "model_type='falcon'"),
        "train: unknown strategy": ("tfllm.train", ["--config=tiny_test", "--strategy=horovod",
                                                    f"--run_dir={tmp_path}/run"],
                                    "unknown strategy 'horovod'"),
        "train: heads over the mesh": (
            "tfllm.train", ["--config=tiny_test", "--config.model.position=rope",
                            "--strategy=dtensor", "--mesh=model:4", f"--run_dir={tmp_path}/run"],
            "model.num_heads=2 does not split over the mesh's model axis of 4"),
        "train: teacher untrained": (
            "tfllm.train", ["--config=tiny_test", f"--config.train.teacher={untrained_run}",
                            f"--run_dir={tmp_path}/run"], "has no checkpoint yet; train the teacher"),
        "train: remat on a mesh": (
            "tfllm.train", ["--config=tiny_test", "--config.model.position=rope",
                            "--config.model.remat=block", "--strategy=dtensor", "--mesh=batch:2",
                            f"--run_dir={tmp_path}/run"],
            "activation recomputation does not run on a DTensor mesh"),
        "train: soap on a mesh": (
            "tfllm.train", ["--config=tiny_test", "--config.model.position=rope",
                            "--config.train.optimizer=soap", "--strategy=dtensor", "--mesh=batch:2",
                            f"--run_dir={tmp_path}/run"], "train.optimizer=soap has no DTensor version"),
        "train: sophia in float16": (
            "tfllm.train", ["--config=tiny_test", "--config.train.optimizer=sophia",
                            "--config.train.precision=mixed_float16", f"--run_dir={tmp_path}/run"],
            "Hessian estimate is not loss-scaled"),
        "lr_find: range upside down": ("tfllm.lr_find", ["--config=tiny_test", "--min_lr=0.1",
                                                         "--max_lr=0.01"],
                                       "the rise needs 0 < min_lr < max_lr"),
        "lr_find: plot not png": ("tfllm.lr_find", ["--config=tiny_test", f"--plot={tmp_path}/c.jpg"],
                                  "must name a .png file"),
        "benchmark: unknown optimizer": ("tfllm.benchmark", ["--config=tiny_test",
                                                             "--optimizers=adamw,lamb"],
                                         "'lamb' is not an optimizer"),
        "train: remat on an LSTM": (
            "tfllm.train", ["--config=lstm", "--config.model.remat=block",
                            f"--run_dir={tmp_path}/run"], "has no blocks to recompute"),
        "train: hf checkpoint without hf:": (
            "tfllm.train", ["--config=tiny_test", f"--init_from={HF_LLAMA}",
                            f"--run_dir={tmp_path}/run"],
            f"is a Hugging Face checkpoint, not a tfllm run; pass --init_from=hf:{HF_LLAMA}"),
        "train: model flag over an hf checkpoint": (
            "tfllm.train", ["--config=tiny_test", f"--init_from=hf:{HF_LLAMA}",
                            "--config.model.num_layers=3", f"--run_dir={tmp_path}/run"],
            "--config.model.num_layers would be replaced by the architecture of --init_from"),
        "train: lora_alpha 0": (
            "tfllm.train", ["--config=tiny_test", "--config.train.lora_rank=2",
                            "--config.train.lora_alpha=0", f"--run_dir={tmp_path}/run"],
            "--config.train.lora_alpha=0.0 is not allowed: it must be > 0"),
    }[case]
    proc = run(module, *args, env={"PYTHONPATH": os.pathsep.join(
        [no_tensorflow, os.environ.get("PYTHONPATH", "")])})
    assert_one_line_error(proc, phrase)
