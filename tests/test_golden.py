"""Refactors change no output: shards, manifests and token shards are byte-identical, and
fixed-seed training runs numerically equal, to what tests/golden/digests.json recorded (see
tests/golden/pipeline.py)."""

import json

import pytest

from tests.golden.pipeline import DIGESTS, run_pipeline, same_output


@pytest.mark.slow
def test_outputs_are_byte_identical_to_the_recorded_digests(tmp_path):
    expected = json.loads(DIGESTS.read_text())
    actual = run_pipeline(tmp_path)
    changed = sorted(
        k for k in expected.keys() | actual.keys() if not same_output(k, expected.get(k), actual.get(k))
    )
    assert not changed, (
        f"{len(changed)} outputs differ from {DIGESTS.name}: {changed[:12]}. If the change is meant to "
        "alter outputs, run `python -m tests.golden.pipeline --write` and say why in the commit."
    )


@pytest.mark.slow
def test_outputs_match_with_the_kernels_of_another_cpu(tmp_path, monkeypatch):
    """PyTorch's scalar kernels (no AVX2/AVX-512/NEON) and oneDNN/MKL held to SSE4: other float
    summation orders, as on another CPU. The weights' last bits and the noise in the attention key
    biases move (the old comparison failed here), the digests still match."""
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "SSE41")
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "SSE4_2")
    expected = json.loads(DIGESTS.read_text())
    actual = run_pipeline(tmp_path)
    changed = sorted(
        k for k in expected.keys() | actual.keys() if not same_output(k, expected.get(k), actual.get(k))
    )
    assert not changed, changed[:12]


def _trained_stats(steps: int = 4, lr: float = 1e-3, other_cpu: bool = False) -> dict[str, list[float]]:
    """`_tensor_stats` of a tiny OPT after `steps` AdamW steps, as the golden run digests it.
    `other_cpu`: every gradient element's last bits differ (1e-6 of it; exact zeros stay zero) and
    the rounding noise that stands for an attention key bias's zero gradient is 100 times larger,
    as on another CPU."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    from tests.golden.pipeline import _tensor_stats

    torch.manual_seed(0)
    config = OPTConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
        max_position_embeddings=32, word_embed_proj_dim=32, dropout=0.0, attention_dropout=0.0,
    )  # fmt: skip
    model = OPTForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    data, noise = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    for _ in range(steps):
        ids = torch.randint(4, 64, (8, 16), generator=data)
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        for name, p in model.named_parameters():
            if other_cpu and p.grad is not None:
                if name.endswith("k_proj.bias"):
                    p.grad.mul_(100.0)
                p.grad.mul_(1 + 1e-6 * torch.randn(p.shape, generator=noise))
        optimizer.step()
    return {k: _tensor_stats(v) for k, v in model.state_dict().items()}


def test_weight_comparison_ignores_float_noise_and_catches_a_changed_step():
    from tests.golden.pipeline import same, same_weights

    recorded = _trained_stats()
    elsewhere = _trained_stats(other_cpu=True)
    key_bias = "model.decoder.layers.0.self_attn.k_proj.bias"
    # The key bias is noise: another CPU moves it beyond the old absolute 1e-6, so it is not compared.
    assert not same(recorded[key_bias], elsewhere[key_bias])
    assert same_weights(recorded, elsewhere)
    # A changed training is caught: one more step, a 10% larger learning rate, a changed weight.
    assert not same_weights(recorded, _trained_stats(steps=5))
    assert not same_weights(recorded, _trained_stats(lr=1.1e-3))
    tampered = {k: list(v) for k, v in recorded.items()}
    tampered["model.decoder.layers.1.fc1.weight"][5] *= 1.01
    assert not same_weights(recorded, tampered)
    assert not same_weights(recorded, {k: v for k, v in recorded.items() if k != key_bias})
