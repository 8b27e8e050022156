"""Samplers: each keeps exactly the tokens its definition allows."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.errors import UserError
from tfllm.inference import filter_logits, sample_next, sampler_settings

LOGITS = tf.math.log(tf.constant([[0.5, 0.2, 0.15, 0.1, 0.05]]))


def kept(temperature=1.0, top_k=0, top_p=1.0):
    return np.isfinite(filter_logits(LOGITS, temperature, top_k, top_p).numpy()[0]).tolist()


def test_top_k_and_top_p_keep_the_defined_sets():
    assert kept() == [True] * 5
    assert kept(top_k=2) == [True, True, False, False, False]
    # Top-p keeps the smallest prefix whose mass reaches p: 0.5 + 0.2 >= 0.7.
    assert kept(top_p=0.7) == [True, True, False, False, False]
    assert kept(top_p=0.71) == [True, True, True, False, False]
    assert kept(top_p=0.01) == [True, False, False, False, False]
    # Top-p measures mass within the top-k distribution: 0.5/0.85 >= 0.55.
    assert kept(top_k=3, top_p=0.55) == [True, False, False, False, False]


def test_sampling_draws_only_kept_tokens_in_proportion():
    seeds = tf.random.experimental.stateless_split(tf.constant([1, 2], tf.int64), 4000)
    draws = np.array([sample_next(LOGITS, s, 1.0, 3, 1.0).numpy()[0] for s in seeds[:1500]])
    assert set(draws) <= {0, 1, 2}
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq[:3], np.array([0.5, 0.2, 0.15]) / 0.85, atol=0.04)
    assert sample_next(LOGITS, seeds[0], 0.0, 0, 1.0).numpy()[0] == 0  # greedy


@pytest.mark.parametrize("name, expected", [("greedy", (0.0, 0, 1.0)),
                                            ("temperature", (0.7, 0, 1.0)),
                                            ("top_k", (0.7, 5, 1.0)), ("top_p", (0.7, 0, 0.9))])
def test_named_samplers(name, expected):
    assert sampler_settings(name, 0.7, 5, 0.9) == expected


def test_named_sampler_needs_its_setting():
    with pytest.raises(UserError, match="top_k sampler needs"):
        sampler_settings("top_k", 1.0, 0, 1.0)
    with pytest.raises(UserError, match="top_p sampler needs"):
        sampler_settings("top_p", 1.0, 0, 1.0)
