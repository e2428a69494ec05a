"""The sampling loop: KV-cached, seeded, filtered exactly, equal to transformers' generate when greedy."""

import pytest
import torch

from ostinato.symbolic.model import ModelConfig, build_model
from ostinato.symbolic.sample import SamplingConfig, filter_logits, sample


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layers=2, d_model=32, n_heads=2, context=96, dropout=0.0), 50).eval()


def test_greedy_sampling_equals_transformers_generate(model):
    prompt = [1, 7, 9]
    ours = sample(model, prompt=prompt, n=3, config=SamplingConfig(temperature=0, max_tokens=60), eos_id=2)
    theirs = model.generate(torch.tensor([prompt] * 3), do_sample=False, max_length=60, eos_token_id=2,
                            pad_token_id=0)
    for seq, ref in zip(ours, theirs.tolist(), strict=True):
        assert seq == ref[:len(seq)]
        assert len(seq) == 60 or seq[-1] == 2


def test_the_same_seed_gives_the_same_samples_and_another_seed_others(model):
    config = SamplingConfig(temperature=1.0, top_p=0.9, max_tokens=40, seed=11)
    a = sample(model, prompt=[1], n=4, config=config, eos_id=2)
    assert a == sample(model, prompt=[1], n=4, config=config, eos_id=2)
    other = sample(model, prompt=[1], n=4, config=SamplingConfig(temperature=1.0, top_p=0.9, max_tokens=40, seed=12),
                   eos_id=2)
    assert a != other
    assert len({tuple(s) for s in a}) > 1   # a batch holds different samples


def test_top_k_one_is_greedy(model):
    greedy = sample(model, prompt=[1, 5], n=2, config=SamplingConfig(temperature=0, max_tokens=30), eos_id=2)
    top1 = sample(model, prompt=[1, 5], n=2, config=SamplingConfig(temperature=1.0, top_k=1, max_tokens=30, seed=3),
                  eos_id=2)
    assert greedy == top1


def test_filter_logits_keeps_exactly_the_top_k_and_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    inf = float("-inf")
    assert filter_logits(logits, top_k=2).isinf().tolist() == [[False, False, True, True, True]]
    # the nucleus: 0.5 + 0.2 = 0.7 < 0.8, so 0.15 is needed too; nothing after it
    assert filter_logits(logits, top_p=0.8).isinf().tolist() == [[False, False, False, True, True]]
    assert filter_logits(logits, top_p=0.5).isinf().tolist() == [[False, True, True, True, True]]
    assert filter_logits(logits, top_p=1.0).eq(logits).all()
    shuffled = logits[:, [3, 0, 4, 2, 1]]
    assert filter_logits(shuffled, top_p=0.8).eq(inf).tolist() == [[True, False, True, False, False]]


def test_bad_settings_name_the_parameter():
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=-1)


def test_llama_models_sample_through_transformers_cache_and_match_generate():
    torch.manual_seed(2)
    llama = build_model(ModelConfig(architecture="llama", n_layers=1, d_model=32, n_heads=2, context=64,
                                    dropout=0.0), 50).eval()
    ours = sample(llama, prompt=[1, 4], n=2, config=SamplingConfig(temperature=0, max_tokens=30), eos_id=2)
    theirs = llama.generate(torch.tensor([[1, 4]] * 2), do_sample=False, max_length=30, eos_token_id=2,
                            pad_token_id=0)
    for seq, ref in zip(ours, theirs.tolist(), strict=True):
        assert seq == ref[:len(seq)]


def test_decoding_uses_at_most_one_thread_per_sequence_and_the_same_tokens(model, monkeypatch):
    from ostinato.symbolic import fast_decode

    seen = []
    step = fast_decode.GPT2Decoder.step

    def recording(self, ids):
        seen.append(torch.get_num_threads())
        return step(self, ids)

    monkeypatch.setattr(fast_decode.GPT2Decoder, "step", recording)
    config = SamplingConfig(temperature=1.0, max_tokens=30, seed=5)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = sample(model, prompt=[1], n=1, config=config, eos_id=2)
        assert set(seen) == {1} and torch.get_num_threads() == 2   # restored after
        seen.clear()
        two = sample(model, prompt=[1], n=3, config=config, eos_id=2)
        assert set(seen) == {2}                                     # never more than it had
        torch.set_num_threads(1)
        assert sample(model, prompt=[1], n=1, config=config, eos_id=2) == one
        assert sample(model, prompt=[1], n=3, config=config, eos_id=2) == two
    finally:
        torch.set_num_threads(before)
