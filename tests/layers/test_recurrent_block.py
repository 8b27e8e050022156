import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_causal, assert_config_round_trip, check_layer
from tfllm.layers import RecurrentBlock


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepwise_equals_unrolled(cell):
    block = RecurrentBlock(cell, units=8, num_layers=2)
    x = tf.random.normal((2, 6, 4))
    full = block(x)
    state = block.get_initial_state(2)
    steps = []
    for t in range(6):
        y, state = block(x[:, t:t + 1], initial_state=state, return_state=True)
        steps.append(y)
    np.testing.assert_allclose(tf.concat(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_causal(cell):
    assert_causal(RecurrentBlock(cell, units=8, num_layers=2), width=4)


def test_unknown_cell_and_config():
    with pytest.raises(ValueError, match="gru"):
        RecurrentBlock("rnn")
    assert_config_round_trip(RecurrentBlock("gru", units=4, num_layers=2, dropout=0.1),
                             tf.zeros((1, 3, 2)))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_layer_contract(cell):
    check_layer(lambda: RecurrentBlock(cell, units=4, num_layers=2, dropout=0.1),
                tf.random.normal((1, 3, 2)))
