"""The lean GPT-2 decoder gives transformers' logits, prompt first and then token by token."""

import pytest
import torch

from ostinato.symbolic.fast_decode import GPT2Decoder, supports
from ostinato.symbolic.model import ModelConfig, build_model


def test_logits_equal_transformers_for_a_prompt_then_single_tokens():
    torch.manual_seed(1)
    model = build_model(ModelConfig(n_layers=3, d_model=48, n_heads=3, context=64, dropout=0.0), 77).eval()
    assert supports(model)
    ids = torch.randint(0, 77, (4, 30))
    decoder = GPT2Decoder(model, batch=4, max_tokens=64)
    got = [decoder.step(ids[:, :10])] + [decoder.step(ids[:, t:t + 1]) for t in range(10, 30)]
    with torch.no_grad():
        reference = model(ids).logits            # [4, 30, 77]
    for position, logits in zip(range(9, 30), got, strict=True):
        torch.testing.assert_close(logits, reference[:, position], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="this decoder holds 64"):
        decoder.step(torch.zeros((4, 40), dtype=torch.long))


def test_other_architectures_and_training_mode_are_left_to_transformers():
    llama = build_model(ModelConfig(architecture="llama", n_layers=1, d_model=32, n_heads=2, context=32), 50).eval()
    assert not supports(llama)
    gpt2 = build_model(ModelConfig(n_layers=1, d_model=32, n_heads=2, context=32), 50)
    assert not supports(gpt2.train())
