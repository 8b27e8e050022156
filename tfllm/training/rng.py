"""The random state of a model, made checkpointable.

tf_keras dropout layers draw from a tf.random.Generator that the layer creates lazily
and does not track, so a plain checkpoint loses it and a resumed run would draw other
dropout masks. `dropout_generators` creates them up front and returns them for the
checkpoint. (This reaches into tf_keras's private RandomGenerator; it is the one place.)
"""


def dropout_generators(model):
    """{name: tf.random.Generator} of every random layer in `model`, in a stable order."""
    generators = {}
    for i, layer in enumerate(model.submodules):
        random_generator = getattr(layer, "_random_generator", None)
        if random_generator is None:
            continue
        random_generator._maybe_init()
        generator = getattr(random_generator, "_generator", None)
        if generator is not None:
            generators[f"{i}_{layer.name}"] = generator
    return generators
