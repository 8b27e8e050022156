"""Incremental decoding: the cached loop computes what the full forward pass computes."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.inference import Decoder, NaiveDecoder, generate
from tfllm.models.gpt import GPT
from tfllm.models.recurrent_lm import RecurrentLM


def tiny_gpt(**overrides):
    args = dict(vocab_size=11, num_layers=2, num_heads=4, hidden_dim=16, max_length=8,
                position="rope")
    args.update(overrides)
    return GPT(**args)


def test_ring_cache_past_the_context_is_a_sliding_window():
    # Past S positions each layer attends to the last S cached positions (sliding-window
    # attention, as Mistral decodes). For one layer that is exactly a forward pass over
    # the last S tokens (positions renumbered from 0: RoPE scores depend on offsets only);
    # deeper, the cached keys of older positions carry context from before the window.
    model = tiny_gpt(num_kv_heads=2, num_layers=1)
    size = model.max_length
    tokens = np.random.RandomState(0).randint(0, 11, (2, 21)).astype(np.int32)
    logits, cache = model.call_with_cache(tokens[:, :5], model.init_cache(2, size), 0)
    worst = 0.0
    for t in range(5, 21):
        logits, cache = model.call_with_cache(tokens[:, t:t + 1], cache, t)
        window = tokens[:, max(0, t + 1 - size):t + 1]
        expected = model(window)[:, -1]
        worst = max(worst, float(tf.reduce_max(tf.abs(logits[:, -1] - expected))))
    assert worst <= 1e-4


@pytest.mark.parametrize("position, layers, new", [("learned", 2, 5), ("rope", 2, 5),
                                                   ("rope", 1, 20)])
def test_cached_generation_equals_naive_recompute(position, layers, new):
    # Within the context (3 + 5 <= 8) for any depth; past it for one layer (see above).
    model = tiny_gpt(position=position, num_layers=layers)
    prompt = np.array([3, 1, 4], np.int32)
    cached = generate(model, prompt, new, temperature=0.0)[0]
    naive = NaiveDecoder(model).decode(
        tf.constant(prompt[None]), seed=tf.constant([0, 0], tf.int64), num_new=tf.constant(new),
        temperature=tf.constant(0.0), top_k=tf.constant(0), top_p=tf.constant(1.0))
    np.testing.assert_array_equal(cached, naive.numpy()[0])
    # Sampling too: both draw token i with the same fold of the seed.
    args = dict(temperature=1.0, top_k=5, top_p=0.9, seed=7)
    sampled = generate(model, prompt, new, **args)[0]
    naive = NaiveDecoder(model).decode(
        tf.constant(prompt[None]), seed=tf.constant([7, 0], tf.int64), num_new=tf.constant(new),
        temperature=tf.constant(1.0), top_k=tf.constant(5), top_p=tf.constant(0.9))
    np.testing.assert_array_equal(sampled, naive.numpy()[0])


def test_streaming_in_chunks_gives_the_same_tokens_and_seeds_matter():
    model = tiny_gpt()
    chunks = []
    whole = generate(model, [1, 2], 23, temperature=1.0, seed=5)[0]
    streamed = generate(model, [1, 2], 23, temperature=1.0, seed=5, stream=chunks.append,
                        chunk_size=4)[0]
    np.testing.assert_array_equal(whole, streamed)
    assert [c.shape[1] for c in chunks] == [1, 4, 4, 4, 4, 4, 2]  # the first token alone
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1)[0], whole)
    other = generate(model, [1, 2], 23, temperature=1.0, seed=6)[0]
    assert not np.array_equal(whole, other)


def test_end_token_ends_a_sample_and_is_kept():
    model = tiny_gpt()
    free = generate(model, [1], 30, temperature=1.0, seed=0, num_samples=3)
    end = int(free[0][4])  # a token sample 0 draws at step 4
    ended = generate(model, [1], 30, temperature=1.0, seed=0, num_samples=3, end_token=end)
    for full, cut in zip(free, ended):
        hits = np.flatnonzero(full == end)
        length = hits[0] + 1 if hits.size else 30
        np.testing.assert_array_equal(cut, full[:length])
    assert len(ended[0]) <= 5


def test_recurrent_decoder_continues_the_unrolled_model():
    model = RecurrentLM(vocab_size=11, embedding_dim=8, units=16, num_layers=2)
    prompt = np.array([[2, 5, 7]], np.int32)
    tokens = generate(model, prompt[0], 6, temperature=0.0)[0]
    full = np.concatenate([prompt[0], tokens])
    # Greedy: each new token is the argmax of the full model's logits at the step before.
    expected = tf.argmax(model(full[None])[0, 2:-1], axis=-1).numpy()
    np.testing.assert_array_equal(tokens, expected)


def test_decode_compiles_once_for_any_prompt_and_sampler():
    model = tiny_gpt()
    decoder = Decoder(model)
    for prompt, temperature in [([1, 2], 0.5), ([3, 4, 5, 6], 1.0), ([7], 0.0)]:
        logits, state, position = decoder.prefill(tf.constant([prompt]))
        decoder.decode(logits, state, position, tf.constant([0, 0], tf.int64), tf.constant(0),
                       tf.constant(6), tf.constant(temperature), tf.constant(0),
                       tf.constant(1.0), tf.constant(-1), tf.zeros([1], tf.bool))
    assert decoder.decode.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("xla", [True, False])
def test_generate_and_the_saved_model_decode_alike_with_or_without_xla(monkeypatch, xla):
    # generate() decodes a model of XLA_DECODE_MAX_PARAMS or more without XLA, and the
    # exported module decides alike: a sample's random numbers differ between the two
    # modes, so the same seed gives the same tokens only in the same one.
    from tfllm.inference import decoding
    from tfllm.inference.exporting import ServingModule
    from tfllm.tokenizers.char_tokenizer import CharTokenizer

    monkeypatch.setattr(decoding, "XLA_DECODE_MAX_PARAMS", 10**12 if xla else 0)
    model = tiny_gpt()
    samples = generate(model, [1, 2, 3], 6, temperature=1.0, top_k=5, top_p=0.9, seed=3,
                       num_samples=2)
    assert [d.decode._jit_compile for d in model._tfllm_decoders.values()] == [xla]
    served = ServingModule(model, CharTokenizer("abcdefghijk"))
    assert served.decoder.decode._jit_compile == xla
    tokens, _ = served.generate_ids(tf.constant([[1, 2, 3]] * 2), tf.constant(6),
                                    tf.constant(1.0), tf.constant(5), tf.constant(0.9),
                                    tf.constant(3, tf.int64), tf.constant(-1))
    np.testing.assert_array_equal(tokens.numpy(), np.stack(samples))
