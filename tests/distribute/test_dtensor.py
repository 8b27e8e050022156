"""DTensor model parallelism on a 2x2 mesh of logical CPUs (batch x model)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, run

pytestmark = pytest.mark.slow  # trains in subprocesses

CHECKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dtensor_checks.py")


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    proc = subprocess.run([sys.executable, CHECKS, str(tmp_path_factory.mktemp("ckpt"))],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_kernels_are_split_by_role_and_each_device_holds_its_share(findings):
    assert findings["layouts"] == {
        "query": ["unsharded", "model", "unsharded"],        # (D, heads, hs): heads split
        "attention_output": ["model", "unsharded", "unsharded"],
        "mlp_in": ["unsharded", "model"],                      # (D, F): hidden units split
        "mlp_out": ["model", "unsharded"],
        "embedding": ["unsharded", "model"],                   # (V, D): width split
        "norm": ["unsharded"],
    }
    assert findings["shards"]["query_global"] == [32, 4, 8]
    assert findings["shards"]["query_per_device"] == [[32, 2, 8]] * 4


def test_sharded_forward_and_backward_equal_one_device(findings):
    one_device, sharded = findings["loss"]
    assert abs(sharded - one_device) <= 1e-4 * one_device
    assert findings["max_grad_difference"] <= 1e-6


def test_mesh_checkpoint_restores_into_one_device_model_that_generates_alike(findings):
    assert findings["restored_max_difference"] == 0.0
    assert findings["restored_generates_the_same"]


def test_training_on_a_2x2_mesh_equals_one_device(tmp_path):
    # The same 20 steps as tests/distribute/test_distribution.py's one-device reference.
    from tests.distribute.test_distribution import RUN, losses

    runs = {}
    for name, extra in [("single", []), ("mesh", ["--strategy=dtensor", "--mesh=batch:2,model:2",
                                                  "--cpu_devices=4"])]:
        runs[name] = str(tmp_path / name)
        # One checkpoint (the last, which generation reads) and a short final evaluation:
        # a DTensor save or evaluation costs seconds and neither is what is compared here.
        proc = run("tfllm.train", *RUN, "--config.model.position=rope",
                   "--config.checkpoint.every=20", "--config.eval.max_tokens=4096",
                   f"--run_dir={runs[name]}", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stderr == "", proc.stderr[-3000:]  # no cost-model or start-up chatter
    assert len(losses(runs["mesh"])) == 20
    np.testing.assert_allclose(losses(runs["mesh"]), losses(runs["single"]), rtol=1e-4)
    # The mesh's checkpoint serves generation on one device like the one-device run's.
    # (In this process: tfllm.generate is this call with flags.)
    import tfllm

    outputs = [tfllm.generate_text(runs[n], "RO", max_new_tokens=10, seed=2, temperature=0)
               for n in runs]
    assert outputs[0] == outputs[1] and len(outputs[0][0]) == 10


@pytest.mark.parametrize("case", ["mesh size", "mesh syntax", "heads", "recurrent",
                                  "no mesh", "learned positions"])
def test_bad_dtensor_input_is_one_line(case, tmp_path):
    args, phrase = {
        "mesh size": (["--mesh=batch:3", "--cpu_devices=4"], "has 3 devices but this process has 4"),
        "mesh syntax": (["--mesh=data:2"], "is not a mesh"),
        "heads": (["--mesh=model:4", "--cpu_devices=4"],
                  "model.num_heads=2 does not split over the mesh's model axis of 4"),
        "recurrent": (["--config=lstm", "--mesh=batch:2", "--cpu_devices=2"],
                      "splits the GPT"),
        "no mesh": ([], "needs --mesh"),
        "learned positions": (["--config=tiny_test", "--mesh=batch:2", "--cpu_devices=2"],
                              "needs --config.model.position=rope"),
    }[case]
    config = ([] if any(a.startswith("--config=") for a in args)
              else ["--config=tiny_test", "--config.model.position=rope"])
    proc = run("tfllm.train", *config, f"--run_dir={tmp_path / 'run'}", "--strategy=dtensor",
               *args, timeout=300)
    assert_one_line_error(proc, phrase)
    assert not (tmp_path / "run").exists()
