import numpy as np
import tensorflow as tf

from tests.helpers import assert_config_round_trip, check_layer, policy
from tfllm.layers import PositionEmbedding, TokenEmbedding


def test_token_embedding_attend_is_tied_projection():
    emb = TokenEmbedding(vocab_size=10, hidden_dim=4)
    x = emb(tf.constant([[1, 2, 3]]))
    np.testing.assert_allclose(x[0, 1], emb.embeddings[2])
    logits = emb.attend(x)
    np.testing.assert_allclose(logits, tf.einsum("btd,vd->btv", x, emb.embeddings), rtol=1e-6)


def test_token_embedding_logits_are_float32_under_bfloat16():
    policy("mixed_bfloat16")
    emb = TokenEmbedding(vocab_size=10, hidden_dim=4)
    assert emb.attend(emb(tf.constant([[1, 2]]))).dtype == tf.float32


def test_position_embedding_start_index():
    pos = PositionEmbedding(max_length=8)
    x = tf.zeros((1, 3, 4))
    y = pos(x, start_index=2)
    np.testing.assert_allclose(y[0], pos.position_embeddings[2:5])


def test_configs_round_trip():
    assert_config_round_trip(TokenEmbedding(10, 4), tf.constant([[1, 2]]))
    assert_config_round_trip(PositionEmbedding(8), tf.zeros((1, 3, 4)))


def test_layer_contract():
    check_layer(lambda: TokenEmbedding(10, 4), tf.constant([[1, 2, 9]]))
    check_layer(lambda: PositionEmbedding(8), tf.random.normal((1, 3, 4)))
