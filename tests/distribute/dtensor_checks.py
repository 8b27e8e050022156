"""DTensor checks, run by test_dtensor.py in a process whose CPU is split into 4 devices
(a split must happen before TensorFlow starts). Prints one JSON object of findings."""

import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.experimental import dtensor  # noqa: E402

from tfllm.distribute import distribution  # noqa: E402

mesh = distribution.parse_mesh("batch:2,model:2", cpu_devices=4)

from tfllm._keras import keras  # noqa: E402
from tfllm.inference import generate  # noqa: E402
from tfllm.models.gpt import GPT  # noqa: E402
from tfllm.training.training_model import token_cross_entropy  # noqa: E402

keras.utils.set_random_seed(0)
plain = GPT(vocab_size=65, num_layers=2, num_heads=4, hidden_dim=32, max_length=16,
            position="rope", normalization="rms", activation="swiglu")
sharded = distribution.shard_model(plain, mesh)


def full(value):
    """The whole value of a DTensor, as numpy."""
    value = tf.convert_to_tensor(value)
    return dtensor.unpack(dtensor.relayout(
        value, dtensor.Layout.replicated(mesh, len(value.shape))))[0].numpy()


findings = {"layouts": {}, "shards": {}}
q = sharded.blocks[0].attention.query.kernel
findings["layouts"] = {
    "query": dtensor.fetch_layout(q).sharding_specs,
    "attention_output": dtensor.fetch_layout(sharded.blocks[0].attention.attention_output.kernel).sharding_specs,
    "mlp_in": dtensor.fetch_layout(sharded.blocks[0].mlp.mlp_in.kernel).sharding_specs,
    "mlp_out": dtensor.fetch_layout(sharded.blocks[0].mlp.mlp_out.kernel).sharding_specs,
    "embedding": dtensor.fetch_layout(sharded.token_embedding.embeddings).sharding_specs,
    "norm": dtensor.fetch_layout(sharded.blocks[0].attention_norm.gamma).sharding_specs,
}
findings["shards"] = {"query_global": list(q.shape),
                      "query_per_device": [list(t.shape) for t in dtensor.unpack(tf.convert_to_tensor(q))]}

tokens = np.random.RandomState(0).randint(0, 65, (4, 17)).astype(np.int32)
inputs, targets = tokens[:, :-1], tokens[:, 1:]
batch = dtensor.Layout.batch_sharded(mesh, "batch", rank=2)


def on_mesh(array):
    return dtensor.relayout(dtensor.copy_to_mesh(
        tf.constant(array), dtensor.Layout.replicated(mesh, 2)), batch)


def loss_and_grads(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(token_cross_entropy(y, model(x, training=True)))
    return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]


loss1, grads1 = tf.function(lambda x, y: loss_and_grads(plain, x, y))(inputs, targets)
loss2, grads2 = tf.function(lambda x, y: loss_and_grads(sharded, x, y))(on_mesh(inputs), on_mesh(targets))
findings["loss"] = [float(loss1), float(full(loss2))]
findings["max_grad_difference"] = max(float(np.abs(a.numpy() - full(b)).max())
                                      for a, b in zip(grads1, grads2))


# A checkpoint of the sharded model restores into a one-device model that generates alike.
path = tf.train.Checkpoint(model=sharded).save(os.path.join(sys.argv[1], "ckpt"))
restored = GPT(**plain.get_config())
tf.train.Checkpoint(model=restored).restore(path).assert_existing_objects_matched()
findings["restored_max_difference"] = max(float(np.abs(a.numpy() - full(b)).max())
                                          for a, b in zip(restored.variables, sharded.variables))
gathered = GPT(**plain.get_config())  # the sharded weights, gathered onto one device
gathered.set_weights([full(v) for v in sharded.variables])
findings["restored_generates_the_same"] = bool(np.array_equal(
    generate(restored, [1, 2, 3], 20, temperature=0.8, seed=1)[0],
    generate(gathered, [1, 2, 3], 20, temperature=0.8, seed=1)[0]))
print(json.dumps(findings))
