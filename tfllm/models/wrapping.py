"""In-place layer replacement inside subclassed Keras models.

tensorflow-model-optimization's `quantize_model` and `prune_low_magnitude` take
Sequential and Functional models only (they clone them); tfllm's models are subclassed,
so their wrappers are put in place of the sublayers they wrap, keeping the very same
variables (optimizer slots and checkpoints keep pointing at them).
"""

from tfllm._keras import keras


def replace_layers(parent, replacement):
    """Replaces, recursively, each layer held by `parent` (as an attribute or in a list)
    for which `replacement(layer)` returns another layer; `replacement` returns the layer
    itself to keep it without looking inside, or None to look inside it. Returns how many
    layers were replaced."""
    count = 0

    def visit(layer):
        nonlocal count
        new = replacement(layer)
        if new is None:
            count += replace_layers(layer, replacement)
            return layer
        count += new is not layer
        return new

    for name, value in list(vars(parent).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, keras.layers.Layer) and value is not parent:
            new = visit(value)
            if new is not value:
                setattr(parent, name, new)
        elif isinstance(value, list):
            items = [visit(item) if isinstance(item, keras.layers.Layer) else item
                     for item in value]
            if any(new is not old for new, old in zip(items, value)):
                # A new list, not item assignment: Keras's tracked lists cannot be saved
                # once an item is replaced; the new one saves under the same names.
                setattr(parent, name, items)
    return count
