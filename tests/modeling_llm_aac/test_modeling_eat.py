"""EATConfig / EATModel / EATForAudioClassification on tiny random configs."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from autocast_test_utils import cuda_layer_norm_autocast_rule

import modeling_llm_aac  # noqa: F401  (registers the Auto* classes)
from modeling_llm_aac.configuration_eat import EATConfig
from modeling_llm_aac.modeling_eat import (
    EATForAudioClassification,
    EATLayerNorm,
    EATModel,
    build_2d_sincos_positions,
    frame_mask_to_patch_mask,
)
from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification


def tiny_config(**overrides):
    settings = dict(num_mel_bins=32, max_length=16)
    settings.update(overrides)
    return EATConfig.tiny(**settings)


def make_model(attn_implementation="sdpa", **overrides):
    torch.manual_seed(0)
    model = EATModel(tiny_config(**overrides)).eval()
    model.set_attn_implementation(attn_implementation)
    assert model.config._attn_implementation == attn_implementation
    return model


def test_presets_and_validation():
    base = EATConfig()
    assert (base.hidden_size, base.num_hidden_layers, base.num_attention_heads, base.intermediate_size) == (
        768, 12, 12, 3072)
    assert (base.patch_size, base.num_mel_bins, base.max_length, base.layer_norm_eps) == (16, 128, 768, 1e-6)
    assert base.num_freq_patches == 8 and base.num_patches(1024) == 512
    large = EATConfig.large()
    assert (large.hidden_size, large.num_hidden_layers, large.num_attention_heads, large.intermediate_size) == (
        1024, 24, 16, 4096)
    assert EATConfig.large(num_mel_bins=64).num_mel_bins == 64
    with pytest.raises(ValueError, match="num_mel_bins"):
        EATConfig(num_mel_bins=100)
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):
        EATConfig(hidden_size=768, num_attention_heads=7)
    with pytest.raises(ValueError, match="drop_path_rate"):
        EATConfig(drop_path_rate=1.5)


def test_sincos_table_matches_mae_layout():
    # Independent construction following the MAE / EAT numpy recipe: meshgrid(w, h), first half of
    # the channels from the w (frequency) grid, second half from the h (time) grid.
    dim, num_time, num_freq = 16, 5, 3
    grid_w, grid_h = np.meshgrid(np.arange(num_freq, dtype=np.float32), np.arange(num_time, dtype=np.float32))

    def one_axis(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float32) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    expected = np.concatenate([one_axis(dim // 2, grid_w), one_axis(dim // 2, grid_h)], axis=1)
    table = build_2d_sincos_positions(dim, num_time, num_freq)
    assert table.shape == (num_time * num_freq, dim)
    np.testing.assert_allclose(table.numpy(), expected, atol=1e-6)
    # Row t * F + f: the time half of row 2 * F + 1 equals the time half of row 2 * F.
    assert torch.equal(table[2 * num_freq + 1, dim // 2:], table[2 * num_freq, dim // 2:])


def test_output_layout_and_fields():
    model = make_model()
    config = model.config
    features = torch.randn(2, 48, config.num_mel_bins)
    out = model(features, output_hidden_states=True, output_ffn_states=True)
    num_patches = config.num_patches(48)
    assert num_patches == 3 * 2
    assert out.last_hidden_state.shape == (2, 1 + num_patches, config.hidden_size)
    assert out.attention_mask.shape == (2, 1 + num_patches) and bool(out.attention_mask.all())
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert len(out.ffn_states) == config.num_hidden_layers
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    # Post-LN block: the last hidden state is norm2(h + ffn(h)) with h the post-attention state.
    last = model.encoder.layers[-1]
    post_attention = out.hidden_states[-2]
    with torch.no_grad():
        attn, _ = last.attention(post_attention)
        h = last.post_attention_layernorm(post_attention + attn)
        torch.testing.assert_close(last.mlp(h), out.ffn_states[-1])
        torch.testing.assert_close(last.post_mlp_layernorm(h + out.ffn_states[-1]), out.last_hidden_state)
    # Patches are time-major: changing only frames 16..31 (time patch 1) leaves patch tokens of
    # time patch 0 unchanged before attention.
    with torch.no_grad():
        tokens = model.embeddings.embed_patches(features)
        edited = features.clone()
        edited[:, 16:32] += 1.0
        tokens_edited = model.embeddings.embed_patches(edited)
    freq = config.num_freq_patches
    assert torch.equal(tokens[:, :freq], tokens_edited[:, :freq])
    assert not torch.equal(tokens[:, freq:2 * freq], tokens_edited[:, freq:2 * freq])
    tuple_out = model(features, return_dict=False)
    assert torch.equal(tuple_out[0], out.last_hidden_state)


def test_patch_embedding_equals_the_strided_convolution():
    """embed_patches runs the patch Conv2d as a matrix product over flattened patches: same values and gradients."""
    torch.manual_seed(0)
    config = EATConfig.tiny(num_mel_bins=64)
    embeddings = EATModel(config).embeddings
    features = torch.randn(3, 80, 64)
    tokens = embeddings.embed_patches(features)
    conv = embeddings.patch_embedding(features.unsqueeze(1)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens, conv + embeddings.position_embeddings[:, : conv.shape[1]], atol=1e-6, rtol=1e-6)
    upstream = torch.randn_like(tokens)
    (grad_linear,) = torch.autograd.grad((tokens * upstream).sum(), embeddings.patch_embedding.weight)
    (grad_conv,) = torch.autograd.grad((conv * upstream).sum(), embeddings.patch_embedding.weight)
    torch.testing.assert_close(grad_linear, grad_conv, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_padded_batch_equals_single_clip(attn_implementation):
    model = make_model(attn_implementation)
    bins = model.config.num_mel_bins
    torch.manual_seed(1)
    # 40 real frames -> 48 frames after the extractor's pad to a multiple of 16 (last patch partly padded).
    short = torch.randn(40, bins)
    long = torch.randn(96, bins)
    short_alone = torch.zeros(1, 48, bins)
    short_alone[0, :40] = short
    alone_mask = torch.zeros(1, 48, dtype=torch.long)
    alone_mask[0, :40] = 1

    batch = torch.zeros(2, 96, bins)
    batch[0, :40] = short
    batch[1] = long
    batch_mask = torch.zeros(2, 96, dtype=torch.long)
    batch_mask[0, :40] = 1
    batch_mask[1] = 1

    with torch.no_grad():
        alone = model(short_alone, attention_mask=alone_mask)
        alone_no_mask = model(short_alone)
        batched = model(batch, attention_mask=batch_mask)
        long_alone = model(long[None])

    num_tokens = 1 + model.config.num_patches(48)
    assert alone.attention_mask.sum() == num_tokens
    assert batched.attention_mask[0].sum() == num_tokens and bool(batched.attention_mask[0, :num_tokens].all())
    torch.testing.assert_close(batched.last_hidden_state[0, :num_tokens], alone.last_hidden_state[0], atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(alone.last_hidden_state, alone_no_mask.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched.last_hidden_state[1], long_alone.last_hidden_state[0], atol=1e-5, rtol=1e-5)


def test_eager_and_sdpa_agree():
    eager = make_model("eager")
    sdpa = make_model("sdpa")
    features = torch.randn(2, 64, eager.config.num_mel_bins)
    mask = torch.ones(2, 64, dtype=torch.long)
    mask[1, 20:] = 0
    with torch.no_grad():
        a = eager(features, attention_mask=mask, output_attentions=True)
        b = sdpa(features, attention_mask=mask)
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, atol=1e-5, rtol=1e-5)
    # Padded keys get no attention.
    real = a.attention_mask[1].bool()
    assert float(a.attentions[0][1][..., ~real].abs().max()) == 0.0


def test_frame_to_patch_mask():
    mask = torch.tensor([[1] * 17 + [0] * 15, [1] * 32])
    patch_mask = frame_mask_to_patch_mask(mask, patch_size=16, num_freq_patches=3)
    assert patch_mask.tolist() == [[True] * 6, [True] * 6]
    mask = torch.tensor([[1] * 16 + [0] * 16])
    assert frame_mask_to_patch_mask(mask, 16, 2).tolist() == [[True, True, False, False]]


def test_long_clip_is_encoded_whole_and_too_long_is_refused():
    model = make_model(max_length=80)
    # 1280 frames = 12.8 s, longer than EAT's 10.24 s training crops.
    features = torch.randn(1, 1280, model.config.num_mel_bins)
    with torch.no_grad():
        out = model(features)
    assert out.last_hidden_state.shape[1] == 1 + 80 * model.config.num_freq_patches
    with pytest.raises(ValueError, match="at most max_length=80 time patches"):
        model(torch.randn(1, 1296, model.config.num_mel_bins))


def test_bad_inputs_raise_clear_errors():
    model = make_model()
    bins = model.config.num_mel_bins
    with pytest.raises(ValueError, match="not a multiple of patch_size=16"):
        model(torch.randn(1, 40, bins))
    with pytest.raises(ValueError, match="expects num_mel_bins=32"):
        model(torch.randn(1, 48, bins + 16))
    with pytest.raises(ValueError, match=r"\[batch, frames, bins\]"):
        model(torch.randn(48, bins))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        model(torch.randn(2, 48, bins), attention_mask=torch.ones(2, 32))
    with pytest.raises(ValueError, match=r"no real frame for batch rows \[1\]"):
        model(torch.randn(2, 48, bins), attention_mask=torch.tensor([[1] * 48, [0] * 48]))
    with pytest.raises(ValueError, match="empty"):
        model(torch.randn(0, 48, bins))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.ones(1, 48, bins, dtype=torch.long))


# transformers >= 5.2x renames the switch to activation_checkpointing_enable; 5.17 only has this one.
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated:FutureWarning")
def test_gradient_checkpointing_matches_plain_backward():
    model = make_model("eager", hidden_dropout_prob=0.0)
    model.train()
    features = torch.randn(2, 32, model.config.num_mel_bins)
    mask = torch.tensor([[1] * 32, [1] * 20 + [0] * 12])

    def grads():
        model.zero_grad()
        out = model(features, attention_mask=mask)
        out.last_hidden_state.pow(2).mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in model.encoder.layers)
    checkpointed = grads()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5)


def test_bfloat16_forward_is_finite_and_close():
    model = make_model()
    features = torch.randn(2, 48, model.config.num_mel_bins) * 3
    mask = torch.tensor([[1] * 48, [1] * 30 + [0] * 18])
    with torch.no_grad():
        reference = model(features, attention_mask=mask).last_hidden_state
        out = model.to(torch.bfloat16)(features, attention_mask=mask).last_hidden_state
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert float((out.float() - reference).abs().max()) < 0.2


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_keeping_the_autocast_dtype(affine):
    torch.manual_seed(0)
    default = EATLayerNorm(16, eps=1e-6, elementwise_affine=affine)
    kept = EATLayerNorm(16, eps=1e-6, elementwise_affine=affine, keep_autocast_dtype=True)
    if affine:
        with torch.no_grad():
            default.weight.normal_(1.0, 0.3)
            default.bias.normal_(0.0, 0.3)
        kept.load_state_dict(default.state_dict())
    inputs = (torch.randn(4, 5, 16) * 3 + 1).requires_grad_()
    assert torch.equal(kept(inputs), default(inputs))  # no autocast: plain nn.LayerNorm

    with torch.autocast("cpu", dtype=torch.bfloat16), cuda_layer_norm_autocast_rule():
        assert default(inputs.bfloat16()).dtype == torch.float32  # autocast's CUDA rule
        out = kept(inputs)
        compiled = torch.compile(kept, backend="eager", fullgraph=True)(inputs)
    assert out.dtype == torch.bfloat16 and torch.equal(compiled, out)
    # Statistics and affine step in float32 on the rounded input and weights, one rounding of the output.
    rounded = [None if p is None else p.detach().bfloat16().float() for p in (kept.weight, kept.bias)]
    expected = F.layer_norm(inputs.detach().bfloat16().float(), (16,), rounded[0], rounded[1], 1e-6)
    torch.testing.assert_close(out.float(), expected, atol=1e-5, rtol=2**-7)

    out.float().square().sum().backward()
    assert inputs.grad.dtype == torch.float32 and torch.isfinite(inputs.grad).all() and inputs.grad.abs().sum() > 0
    for parameter in kept.parameters():
        assert parameter.grad.dtype == torch.float32 and torch.isfinite(parameter.grad).all()
        assert parameter.grad.abs().sum() > 0


def test_layer_norm_in_autocast_dtype_model():
    assert EATConfig().layer_norm_in_autocast_dtype is False
    with pytest.raises(ValueError, match="layer_norm_in_autocast_dtype"):
        EATConfig(layer_norm_in_autocast_dtype="yes")
    config = tiny_config(layer_norm_in_autocast_dtype=True)
    assert EATConfig.from_dict(config.to_dict()).layer_norm_in_autocast_dtype is True
    classifier = EATForAudioClassification(tiny_config(num_labels=3, layer_norm_in_autocast_dtype=True))
    assert all(module.keep_autocast_dtype for module in classifier.modules() if isinstance(module, EATLayerNorm))
    assert classifier.fc_norm.keep_autocast_dtype

    default = make_model()
    kept = EATModel(config).eval()
    kept.load_state_dict(default.state_dict())  # same parameters and keys
    features = torch.randn(2, 48, default.config.num_mel_bins) * 3
    mask = torch.tensor([[1] * 48, [1] * 30 + [0] * 18])
    with torch.no_grad():
        reference = default(features, attention_mask=mask).last_hidden_state
        assert torch.equal(kept(features, attention_mask=mask).last_hidden_state, reference)  # float32: no change
        with torch.autocast("cpu", dtype=torch.bfloat16), cuda_layer_norm_autocast_rule():
            autocast_out = default(features, attention_mask=mask, output_hidden_states=True)
            kept_out = kept(features, attention_mask=mask, output_hidden_states=True)
    # Autocast's rule makes the post-LN residual stream float32; the option keeps it in bf16.
    assert {state.dtype for state in autocast_out.hidden_states} == {torch.float32}
    assert {state.dtype for state in kept_out.hidden_states} == {torch.bfloat16}
    # Within bf16 rounding: no further from float32 than a few times autocast's own error.
    autocast_error = float((autocast_out.last_hidden_state - reference).abs().max())
    kept_error = float((kept_out.last_hidden_state.float() - reference).abs().max())
    assert 0 < autocast_error < 0.2 and kept_error < 4 * autocast_error, (kept_error, autocast_error)


def test_classification_losses():
    torch.manual_seed(0)
    features = torch.randn(3, 32, 32)
    multi = EATForAudioClassification(tiny_config(num_labels=5, problem_type="multi_label_classification")).eval()
    targets = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float)
    out = multi(features, labels=targets)
    assert out.logits.shape == (3, 5)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, targets)
    torch.testing.assert_close(out.loss, expected)
    # The logits come from the CLS token through fc_norm and the classifier.
    with torch.no_grad():
        cls = multi.eat(features).last_hidden_state[:, 0]
        torch.testing.assert_close(multi.classifier(multi.fc_norm(cls)), out.logits)

    single = EATForAudioClassification(tiny_config(num_labels=4)).eval()
    labels = torch.tensor([0, 3, 1])
    out = single(features, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    with pytest.raises(ValueError, match="class indices"):
        single(features, labels=torch.tensor([[0, 1], [1, 0], [0, 0]]))
    loss_tuple = single(features, labels=labels, return_dict=False)
    assert loss_tuple[0].ndim == 0 and loss_tuple[1].shape == (3, 4)


def test_auto_classes_and_save_load_roundtrip(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path / "enc")
    saved_config = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert saved_config["model_type"] == "eat"
    # Remote-code files are copied next to the weights for trust_remote_code users.
    assert saved_config["auto_map"]["AutoModel"] == "modeling_eat.EATModel"
    assert (tmp_path / "enc" / "modeling_eat.py").exists() and (tmp_path / "enc" / "configuration_eat.py").exists()
    assert (tmp_path / "enc" / "model.safetensors").exists()

    assert isinstance(AutoConfig.from_pretrained(tmp_path / "enc"), EATConfig)
    reloaded = AutoModel.from_pretrained(tmp_path / "enc").eval()
    assert isinstance(reloaded, EATModel)
    features = torch.randn(1, 32, model.config.num_mel_bins)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(features).last_hidden_state, model(features).last_hidden_state)
    # The position table is loaded, not recomputed.
    assert torch.equal(reloaded.embeddings.position_embeddings, model.embeddings.position_embeddings)

    # An encoder folder loads into the classifier: encoder weights kept, head initialised.
    classifier = AutoModelForAudioClassification.from_pretrained(tmp_path / "enc", num_labels=3).eval()
    assert isinstance(classifier, EATForAudioClassification)
    assert torch.equal(classifier.eat.encoder.layers[0].attention.qkv.weight,
                       model.encoder.layers[0].attention.qkv.weight)
    classifier.save_pretrained(tmp_path / "cls")
    again = AutoModelForAudioClassification.from_pretrained(tmp_path / "cls").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(features).logits, classifier(features).logits)
    # And the classifier folder loads as a bare encoder.
    encoder_only = AutoModel.from_pretrained(tmp_path / "cls")
    assert torch.equal(encoder_only.encoder.pre_norm.weight, classifier.eat.encoder.pre_norm.weight)


@pytest.mark.slow
def test_saved_folder_loads_as_remote_code(tmp_path):
    """A saved folder is self-contained: `trust_remote_code` loads the copied modeling files."""
    import os
    import subprocess
    import sys

    model = make_model()
    model.save_pretrained(tmp_path / "enc")
    features = torch.randn(1, 32, model.config.num_mel_bins)
    with torch.no_grad():
        torch.save({"x": features, "y": model(features).last_hidden_state}, tmp_path / "io.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModel\n"
        f"model = AutoModel.from_pretrained({str(tmp_path / 'enc')!r}, trust_remote_code=True).eval()\n"
        f"io = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "with torch.no_grad():\n"
        "    error = float((model(io['x']).last_hidden_state - io['y']).abs().max())\n"
        "print(type(model).__module__, 'modeling_llm_aac' in sys.modules, error)\n"
    )
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    module, imported_ours, error = result.stdout.split()[-3:]
    assert module.startswith("transformers_modules.") and imported_ours == "False"
    assert float(error) <= 1e-6


def test_feature_extractor_batches_match_single_clips():
    """End to end with the project's fbank extractor: padding inside a batch changes nothing."""
    from modeling_llm_aac.feature_extraction_llm_aac import LLMAACFeatureExtractor

    extractor = LLMAACFeatureExtractor(feature_type="fbank")
    torch.manual_seed(0)
    model = EATModel(EATConfig.tiny()).eval()
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 4800, 12345)]
    batch = extractor(clips, sampling_rate=16000, return_tensors="pt", padding=True)
    with torch.no_grad():
        batched = model(batch["input_features"], attention_mask=batch["attention_mask"])
        for i, clip in enumerate(clips):
            single = extractor([clip], sampling_rate=16000, return_tensors="pt")
            alone = model(single["input_features"], attention_mask=single.get("attention_mask"))
            num_tokens = alone.last_hidden_state.shape[1]
            assert int(batched.attention_mask[i].sum()) == num_tokens
            torch.testing.assert_close(batched.last_hidden_state[i, :num_tokens], alone.last_hidden_state[0],
                                       atol=1e-5, rtol=1e-5)
