from tfllm.models import GPT, RecurrentLM
from tfllm.bench import mfu


def test_gpt_flops_are_6n_plus_attention_by_hand():
    # nanoGPT's CPU size: 4 layers, width 128, context 64, char vocabulary, tied embeddings.
    model = GPT(vocab_size=65, num_layers=4, num_heads=4, hidden_dim=128, max_length=64)
    d, f, v, t = 128, 512, 65, 64
    per_block = (4 * d * d + 4 * d) + (2 * d * f + f + d) + 4 * d  # attention, MLP, 2 LayerNorms
    matmul_params = v * d + 4 * per_block + 2 * d  # tied embedding + blocks + final norm
    assert mfu.flops_per_token(model) == 6 * matmul_params + 12 * 4 * t * d


def test_untied_gpt_counts_the_head_not_the_lookup():
    tied = GPT(vocab_size=50, num_layers=1, num_heads=2, hidden_dim=16, max_length=8,
               position="rope")
    untied = GPT(vocab_size=50, num_layers=1, num_heads=2, hidden_dim=16, max_length=8,
                 position="rope", tie_embeddings=False)
    assert mfu.flops_per_token(untied) == mfu.flops_per_token(tied)  # lm_head is V x D as well


def test_recurrent_flops_are_6n_without_the_embedding():
    model = RecurrentLM(vocab_size=65, embedding_dim=128, units=384, num_layers=2)
    e, u, v = 128, 384, 65
    lstm = lambda inputs: 4 * u * (inputs + u) + 4 * u
    assert mfu.flops_per_token(model) == 6 * (lstm(e) + lstm(u) + u * v + v)
