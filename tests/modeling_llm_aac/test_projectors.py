"""Linear (SLAM-AAC) and window-level Q-Former projectors: shapes, token counts, padding invariance."""

import math

import pytest
import torch

from llm_aac_test_utils import tiny_config
from modeling_llm_aac.configuration_llm_aac import LLMAACConfig, count_audio_tokens
from modeling_llm_aac.projectors import LLMAACLinearProjector, LLMAACQFormerProjector, build_projector


def encoder_batch(lengths, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(len(lengths), max(lengths), width, generator=generator)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, count in enumerate(lengths):
        mask[row, :count] = 1
    return states, mask


@pytest.mark.parametrize("projector_type", ["linear", "qformer"])
def test_shapes_and_counts_match_config(projector_type):
    config = tiny_config(projector_type)
    torch.manual_seed(0)
    projector = build_projector(config).eval()
    frames = [98, 300, 1000]
    lengths = [config.num_encoder_tokens(f) for f in frames]
    states, mask = encoder_batch(lengths, config.audio_config.hidden_size)
    embeds, token_mask = projector(states, mask)

    longest = max(lengths)
    if projector_type == "linear":
        expected_width = longest // config.projector_stack_factor
    else:
        expected_width = math.ceil(longest / config.qformer_window_size) * config.qformer_num_queries
    assert embeds.shape == (3, expected_width, config.text_config.hidden_size)
    assert token_mask.shape == (3, expected_width) and token_mask.dtype == torch.bool
    assert token_mask.sum(dim=1).tolist() == [config.num_audio_tokens(f) for f in frames]
    # Real audio tokens form a prefix of each row.
    for row in token_mask:
        count = int(row.sum())
        assert row[:count].all() and not row[count:].any()


def test_linear_projector_is_slam_aac_stacking():
    config = tiny_config("linear")
    projector = LLMAACLinearProjector(config).eval()
    states = torch.randn(1, 23, config.audio_config.hidden_size)
    embeds, mask = projector(states)
    assert embeds.shape[1] == 23 // 5 and mask.all()
    # Audio token j sees exactly encoder tokens 5j .. 5j+4 (trailing 23 % 5 = 3 tokens dropped).
    expected = projector.linear_2(projector.act(projector.linear_1(states[:, 5:10].reshape(1, -1))))
    torch.testing.assert_close(embeds[:, 1], expected)
    changed = states.clone()
    changed[:, 20:] += 100.0
    torch.testing.assert_close(projector(changed)[0], embeds)


def test_slam_aac_token_count_for_a_10_second_clip():
    # EAT-base on 1024 frames: 513 tokens -> 102 audio tokens with stack factor 5 (SLAM-AAC).
    config = LLMAACConfig()
    assert config.num_encoder_tokens(1024) == 513
    assert config.num_audio_tokens(1024) == 102
    qformer = LLMAACConfig(projector_type="qformer")
    assert qformer.num_audio_tokens(1024) == math.ceil(513 / 40) * 8


@pytest.mark.parametrize("projector_type", ["linear", "qformer"])
def test_padding_does_not_leak_into_a_clip(projector_type):
    config = tiny_config(projector_type)
    torch.manual_seed(0)
    projector = build_projector(config).eval()
    lengths = [37, 90]
    states, mask = encoder_batch(lengths, config.audio_config.hidden_size)
    states[0, 37:] = 1e3  # garbage in the padding of clip 0
    batched, batched_mask = projector(states, mask)
    alone, alone_mask = projector(states[:1, :37], mask[:1, :37])
    count = int(alone_mask.sum())
    assert int(batched_mask[0].sum()) == count
    torch.testing.assert_close(batched[0, :count], alone[0, :count], atol=1e-5, rtol=1e-5)


def test_qformer_skips_fully_padded_windows():
    config = tiny_config("qformer")
    torch.manual_seed(0)
    projector = LLMAACQFormerProjector(config).eval()
    window = config.qformer_window_size
    states, mask = encoder_batch([window + 1, 5 * window], config.audio_config.hidden_size)
    embeds, token_mask = projector(states, mask)
    queries = config.qformer_num_queries
    assert token_mask.sum(dim=1).tolist() == [2 * queries, 5 * queries]
    assert torch.isfinite(embeds).all()
    assert embeds[0, 2 * queries:].abs().sum() == 0


def test_count_audio_tokens_errors():
    settings = tiny_config().audio_token_settings()
    with pytest.raises(ValueError, match="positive integer"):
        count_audio_tokens(0, **settings)
    with pytest.raises(ValueError, match="max_length"):
        count_audio_tokens(16 * 769, **settings)
    with pytest.raises(ValueError, match="projector_type"):
        count_audio_tokens(100, **{**settings, "projector_type": "mlp"})


def test_projector_input_errors():
    config = tiny_config("linear")
    projector = build_projector(config)
    with pytest.raises(ValueError, match="width"):
        projector(torch.randn(1, 10, config.audio_config.hidden_size + 1))
    with pytest.raises(ValueError, match=r"\[batch, tokens, dim\]"):
        projector(torch.randn(10, config.audio_config.hidden_size))
    with pytest.raises(ValueError, match="encoder_attention_mask has shape"):
        projector(torch.randn(1, 10, config.audio_config.hidden_size), torch.ones(1, 9))
    with pytest.raises(ValueError, match="projector_type"):
        LLMAACConfig(projector_type="mlp")


def test_qformer_eager_and_sdpa_attention_agree():
    config = tiny_config("qformer")
    torch.manual_seed(0)
    projector = LLMAACQFormerProjector(config).eval()
    states, mask = encoder_batch([37, 90], config.audio_config.hidden_size)
    outputs = {}
    for implementation in ("eager", "sdpa"):
        config._attn_implementation = implementation
        outputs[implementation] = projector(states, mask)[0]
    torch.testing.assert_close(outputs["eager"], outputs["sdpa"], atol=1e-5, rtol=1e-5)
