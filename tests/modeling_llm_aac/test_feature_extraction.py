import json
import math
import os

import feature_test_utils  # noqa: F401  (first: keeps a broken torchaudio away from transformers)
import numpy as np
import pytest
import torch
from feature_test_utils import (
    load_fbank_fixture,
    load_reference_kaldi,
    original_llm_aac_cwt,
    reference_eat_fbank,
    relative_l2,
)
from transformers import AutoFeatureExtractor

from modeling_llm_aac import LLMAACFeatureExtractor
from modeling_llm_aac.feature_extraction_llm_aac import mono_float32_samples

SR = 16000


def _noise(num_samples, seed=0, scale=0.1):
    return (np.random.default_rng(seed).standard_normal(num_samples) * scale).astype(np.float32)


@pytest.fixture(scope="module", params=["fbank", "cwt", "cwt_seed"])
def extractor(request):
    return LLMAACFeatureExtractor(feature_type=request.param)


def test_shapes_dtypes_padding_and_mask(extractor):
    clips = [_noise(16000, 0), _noise(5000, 1), _noise(12345, 2)]
    out = extractor(clips, sampling_rate=SR, return_tensors="pt")
    features, mask = out["input_features"], out["attention_mask"]
    assert features.dtype == torch.float32 and features.dim() == 3
    assert features.shape[0] == 3 and features.shape[2] == extractor.feature_size
    assert features.shape[1] % 16 == 0
    assert mask.shape == features.shape[:2]
    assert mask.sum(1).tolist() == [extractor.num_frames(len(c)) for c in clips]
    assert torch.isfinite(features).all()
    if extractor.feature_type == "cwt_seed":
        assert features.shape[1] == 1024 and bool(mask.all())
    else:
        assert features.shape[1] == 112  # 98 real frames -> next multiple of 16
        # Padded frames hold the padding value, normalised.
        padded = (extractor.padding_value - np.asarray(extractor.feature_mean)) / np.asarray(extractor.feature_std)
        torch.testing.assert_close(features[1, 50], torch.full((extractor.feature_size,), float(padded)))


def test_padded_batch_equals_single_clips(extractor):
    clips = [_noise(9000, 3), _noise(4000, 4)]
    batch = extractor(clips, sampling_rate=SR, return_tensors="pt")
    for row, clip in enumerate(clips):
        single = extractor(clip, sampling_rate=SR, return_tensors="pt")["input_features"][0]
        frames = extractor.num_frames(len(clip))
        torch.testing.assert_close(batch["input_features"][row, :frames], single[:frames], atol=1e-4, rtol=1e-4)


def test_numpy_and_list_outputs(extractor):
    out = extractor(_noise(3000).tolist(), sampling_rate=SR)
    assert isinstance(out["input_features"], np.ndarray) and out["input_features"].dtype == np.float32
    assert out["input_features"].shape[0] == 1
    assert isinstance(extractor(_noise(3000), sampling_rate=SR, return_tensors="np")["attention_mask"], np.ndarray)


def test_save_and_load_round_trip(extractor, tmp_path):
    custom = LLMAACFeatureExtractor(
        feature_type=extractor.feature_type,
        feature_mean=[float(i) for i in range(extractor.feature_size)],
        feature_std=2.5,
    )
    custom.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert config["feature_type"] == extractor.feature_type
    assert config["auto_map"]["AutoFeatureExtractor"] == "feature_extraction_llm_aac.LLMAACFeatureExtractor"
    assert os.path.exists(tmp_path / "feature_extraction_llm_aac.py")  # remote-code files travel with it
    for loaded in (LLMAACFeatureExtractor.from_pretrained(tmp_path), AutoFeatureExtractor.from_pretrained(tmp_path)):
        assert isinstance(loaded, LLMAACFeatureExtractor)
        assert loaded.to_dict() == custom.to_dict()
        clip = _noise(4000)
        np.testing.assert_allclose(
            loaded(clip, sampling_rate=SR)["input_features"], custom(clip, sampling_rate=SR)["input_features"]
        )


def _assert_eat_input(features, raw_fbank):
    expected = (torch.as_tensor(raw_fbank) - (-4.268)) / (4.569 * 2)
    assert (features[: expected.shape[0]] - expected).abs().max().item() <= 1e-4 / (4.569 * 2) + 1e-6
    # EAT pads its fbank with zeros before normalising; so do we.
    assert features[expected.shape[0] :].sub(4.268 / (4.569 * 2)).abs().max().item() < 1e-6


def test_fbank_is_eats_input_on_committed_fixture():
    fixture = load_fbank_fixture()  # clips with a DC offset: EAT removes each clip's mean first
    out = LLMAACFeatureExtractor()([w for w, _ in fixture], sampling_rate=SR, return_tensors="pt")
    for row, (_, raw_fbank) in enumerate(fixture):
        _assert_eat_input(out["input_features"][row], raw_fbank)


def test_fbank_is_eats_input_live():
    kaldi = load_reference_kaldi()
    if kaldi is None:
        pytest.skip("torchaudio (the reference kaldi.py) is not installed")
    clip = _noise(20000) + 0.2
    features = LLMAACFeatureExtractor()(clip, sampling_rate=SR, return_tensors="pt")["input_features"][0]
    _assert_eat_input(features, reference_eat_fbank(kaldi, torch.from_numpy(clip - clip.mean())))


def test_cwt_seed_is_the_original_features():
    clip = _noise(6000, 7)
    fe = LLMAACFeatureExtractor(feature_type="cwt_seed")
    features = fe(clip, sampling_rate=SR, return_tensors="pt")["input_features"][0]
    expected = original_llm_aac_cwt(clip - clip.mean(), method="fft")
    assert relative_l2(features.numpy().T, expected) <= 1e-4


def test_cwt_center_frequencies_and_tone():
    fe = LLMAACFeatureExtractor(feature_type="cwt", num_scales=32, f_min=100.0, f_max=6000.0, width=8.0, do_normalize=False)
    freqs = np.asarray(fe.center_frequencies)
    assert len(freqs) == 32 == fe.feature_size
    assert freqs[0] == pytest.approx(100.0) and freqs[-1] == pytest.approx(6000.0) and np.all(np.diff(freqs) > 0)
    tone = np.sin(2 * np.pi * freqs[10] * np.arange(SR) / SR).astype(np.float32)
    features = fe(tone, sampling_rate=SR, return_tensors="pt")["input_features"][0]
    assert int(features[40].argmax()) == 10
    assert features[40, 10].exp().item() == pytest.approx(1.0, rel=1e-3)


def test_max_length_padding_and_truncation():
    fe = LLMAACFeatureExtractor()
    clips = [_noise(16000), _noise(8000)]
    out = fe(clips, sampling_rate=SR, padding="max_length", max_length=200, return_tensors="pt")
    assert out["input_features"].shape[1] == 208  # 200 rounded up to a multiple of 16
    assert out["attention_mask"].sum(1).tolist() == [98, 48]
    cut = fe(clips, sampling_rate=SR, max_length=64, truncation=True, return_tensors="pt")
    assert cut["input_features"].shape[1] == 64 and cut["attention_mask"].sum(1).tolist() == [64, 48]
    full = fe(clips, sampling_rate=SR, return_tensors="pt")["input_features"]
    torch.testing.assert_close(cut["input_features"][0], full[0, :64])
    # Without truncation long clips keep their length even with a smaller max_length.
    assert fe(clips, sampling_rate=SR, padding="max_length", max_length=32)["input_features"].shape[1] == 112
    long_clip = fe(_noise(16000 * 30), sampling_rate=SR, return_tensors="pt")
    assert long_clip["attention_mask"].sum().item() == fe.num_frames(16000 * 30) == 2998


def test_no_padding_requires_equal_frames():
    fe = LLMAACFeatureExtractor()
    same = fe([_noise(4000), _noise(4000)], sampling_rate=SR, padding=False, return_tensors="pt")
    assert same["input_features"].shape[1] == fe.num_frames(4000)
    with pytest.raises(ValueError, match="different numbers of frames"):
        fe([_noise(4000), _noise(8000)], sampling_rate=SR, padding=False)


def test_normalisation_statistics():
    raw = LLMAACFeatureExtractor(do_normalize=False)(_noise(4000), sampling_rate=SR, return_tensors="pt")
    mean = np.linspace(-5, 0, 128).tolist()
    fe = LLMAACFeatureExtractor(feature_mean=mean, feature_std=2.0)
    normalised = fe(_noise(4000), sampling_rate=SR, return_tensors="pt")["input_features"]
    torch.testing.assert_close(normalised, (raw["input_features"] - torch.tensor(mean)) / 2.0)
    unnormalised = fe(_noise(4000), sampling_rate=SR, do_normalize=False, return_tensors="pt")
    torch.testing.assert_close(unnormalised["input_features"], raw["input_features"])
    with pytest.raises(ValueError, match="128 bins"):
        LLMAACFeatureExtractor(feature_mean=[0.0] * 3)
    with pytest.raises(ValueError, match="positive"):
        LLMAACFeatureExtractor(feature_std=0.0)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros(0, dtype=np.float32), ValueError, "empty"),
        (np.array([0.0, np.nan, 1.0], dtype=np.float32), ValueError, "NaN/Inf"),
        (np.array([0.0, np.inf] * 300), ValueError, "NaN/Inf"),
        (np.zeros((2, 3, 400), dtype=np.float32), ValueError, "3 dims"),
        (np.zeros(400, dtype=np.complex64), TypeError, "complex64"),
        (np.array(["a", "b"]), TypeError, "dtype"),
        (np.zeros(400, dtype=bool), TypeError, "bool"),
        ([[0.0, "x"]], TypeError, "real numbers"),
        ([], ValueError, "empty batch"),
        ("audio.wav", TypeError, "str"),
        (np.zeros((3000, 2), dtype=np.float32), ValueError, "multichannel"),
        ([np.zeros((40, 400), dtype=np.float32)], ValueError, "channels"),
    ],
)
def test_bad_input_is_named(bad, error, message):
    with pytest.raises(error, match=message):
        LLMAACFeatureExtractor()(bad, sampling_rate=SR)


def test_sampling_rate_is_required_for_raw_arrays():
    fe = LLMAACFeatureExtractor()
    with pytest.raises(ValueError, match="sampling_rate is required"):
        fe(_noise(4000))
    # A decoded `datasets` row carries its own rate.
    out = fe({"array": _noise(4000), "sampling_rate": SR}, return_tensors="pt")
    assert out["input_features"].shape == (1, 32, 128)
    with pytest.raises(ValueError, match="sampling_rate=22050"):
        fe({"array": _noise(4000), "sampling_rate": SR}, sampling_rate=22050)


@pytest.mark.parametrize("feature_type", ["fbank", "cwt", "cwt_seed"])
def test_silent_loud_and_very_short_clips_are_finite(feature_type):
    fe = LLMAACFeatureExtractor(feature_type=feature_type)
    clips = [np.zeros(8000, np.float32), _noise(8000, scale=1e4), _noise(100), np.ones(1, np.float32)]
    out = fe(clips, sampling_rate=SR, return_tensors="pt")
    assert torch.isfinite(out["input_features"]).all()
    if feature_type != "cwt_seed":
        assert out["attention_mask"][2:].sum(1).tolist() == [1, 1]  # shorter than one window: one frame


def test_resampling_44k1_input():
    fe = LLMAACFeatureExtractor(feature_type="cwt", do_normalize=False)
    duration = 1.0
    time_44k = np.arange(int(44100 * duration)) / 44100
    freqs = np.asarray(fe.center_frequencies)
    tone_44k = np.sin(2 * np.pi * freqs[30] * time_44k).astype(np.float32)
    from_44k = fe(tone_44k, sampling_rate=44100, return_tensors="pt")
    assert from_44k["attention_mask"].sum().item() == fe.num_frames(16000)
    tone_16k = np.sin(2 * np.pi * freqs[30] * np.arange(16000) / 16000).astype(np.float32)
    native = fe(tone_16k, sampling_rate=SR, return_tensors="pt")
    middle = slice(20, 80)
    resampled, reference = from_44k["input_features"][0, middle].exp(), native["input_features"][0, middle].exp()
    assert (resampled.argmax(-1) == 30).all()
    assert (resampled - reference).abs().max().item() <= 2e-3 * reference.max().item()


def test_int16_pcm_is_scaled_by_its_range():
    fe = LLMAACFeatureExtractor()
    floats = np.clip(_noise(4000, scale=0.3), -1, 1)
    pcm = np.round(floats * 32767).astype(np.int16)
    from_pcm = fe(pcm, sampling_rate=SR, return_tensors="pt")["input_features"]
    from_float = fe(pcm.astype(np.float32) / 32768, sampling_rate=SR, return_tensors="pt")["input_features"]
    torch.testing.assert_close(from_pcm, from_float)
    from_tensor = fe(torch.from_numpy(pcm), sampling_rate=SR, return_tensors="pt")["input_features"]
    torch.testing.assert_close(from_tensor, from_float)
    unsigned = (pcm.astype(np.int32) // 256 + 128).astype(np.uint8)
    assert torch.isfinite(fe(unsigned, sampling_rate=SR, return_tensors="pt")["input_features"]).all()


def test_stereo_is_mixed_to_mono_in_either_layout():
    fe = LLMAACFeatureExtractor()
    left, right = _noise(4000, 1), _noise(4000, 2)
    mono = fe((left + right) / 2, sampling_rate=SR, return_tensors="pt")["input_features"]
    channels_first = fe([np.stack([left, right])], sampling_rate=SR, return_tensors="pt")["input_features"]
    channels_last = fe([np.stack([left, right], axis=1)], sampling_rate=SR, return_tensors="pt")["input_features"]
    torch.testing.assert_close(channels_first, mono)
    torch.testing.assert_close(channels_last, mono)


def test_mono_float32_samples_scales_pcm_before_mixing_and_names_bad_clips():
    stereo_pcm = np.array([[16384, -32768, 0], [0, 16384, 32767]], dtype=np.int16)  # [channels, samples]
    expected = np.array([0.25, -0.25, 32767 / 65536], dtype=np.float32)
    for layout in (stereo_pcm, stereo_pcm.T, torch.from_numpy(stereo_pcm)):
        mixed = mono_float32_samples(layout, "clip", mix_channels=True)
        assert mixed.dtype == np.float32 and mixed.flags.c_contiguous
        np.testing.assert_allclose(mixed, expected)
    np.testing.assert_allclose(mono_float32_samples(np.array([0, 128, 255], dtype=np.uint8), "clip"),
                               [-1.0, 0.0, 127 / 128])
    with pytest.raises(ValueError, match=r"clip 3 must be 1-D mono samples, got an array of shape \(2, 3\)"):
        mono_float32_samples(stereo_pcm, "clip 3")
    with pytest.raises(ValueError, match=r"at most 16 channels, got an array of shape \(17, 17\)"):
        mono_float32_samples(np.zeros((17, 17)), "clip", mix_channels=True)
    with pytest.raises(ValueError, match="clip is empty"):
        mono_float32_samples(np.zeros((2, 0)), "clip", mix_channels=True)
    with pytest.raises(ValueError, match=r"1 NaN/Inf samples \(first at index 1: inf\)"):
        mono_float32_samples([0.0, np.inf], "clip")
    with pytest.raises(TypeError, match="clip is not a numeric array"):
        mono_float32_samples([[0.0], [0.0, 1.0]], "clip")
    with pytest.raises(TypeError, match="clip has non-numeric dtype"):
        mono_float32_samples(["a"], "clip")
    with pytest.raises(TypeError, match="clip is complex"):
        mono_float32_samples(np.zeros(3, dtype=np.complex64), "clip")


def test_two_dimensional_batch_and_tensor_inputs():
    fe = LLMAACFeatureExtractor(feature_type="cwt")
    batch = np.stack([_noise(4000, 1), _noise(4000, 2)])
    from_array = fe(batch, sampling_rate=SR, return_tensors="pt")["input_features"]
    from_tensor = fe(torch.from_numpy(batch), sampling_rate=SR, return_tensors="pt")["input_features"]
    from_list = fe(list(batch), sampling_rate=SR, return_tensors="pt")["input_features"]
    assert from_array.shape == (2, 32, 64)
    torch.testing.assert_close(from_tensor, from_array)
    torch.testing.assert_close(from_list, from_array)


def test_extract_is_the_batch_entry_point():
    fe = LLMAACFeatureExtractor(feature_type="cwt")
    clips = [_noise(6000, 1), _noise(3000, 2)]
    batch = torch.zeros(2, 6000)
    batch[0], batch[1, :3000] = torch.from_numpy(clips[0]), torch.from_numpy(clips[1])
    features, mask = fe.extract(batch, torch.tensor([6000, 3000]))
    expected = fe(clips, sampling_rate=SR, return_tensors="pt")
    torch.testing.assert_close(features, expected["input_features"])
    torch.testing.assert_close(mask, expected["attention_mask"])
    with pytest.raises(ValueError, match="lengths"):
        fe.extract(batch, torch.tensor([6000, 7000]))


def test_invalid_configuration_is_rejected():
    with pytest.raises(ValueError, match="feature_type"):
        LLMAACFeatureExtractor(feature_type="mfcc")
    with pytest.raises(ValueError, match="f_max"):
        LLMAACFeatureExtractor(feature_type="cwt", f_max=9000.0)
    with pytest.raises(ValueError, match="width"):
        LLMAACFeatureExtractor(feature_type="cwt", width=0.0)


def test_num_frames_contract():
    fe = LLMAACFeatureExtractor()
    assert fe.num_frames(160000) == 998 and fe.num_frames(163840) == 1022
    assert fe.num_frames(1) == 1
    assert LLMAACFeatureExtractor(feature_type="cwt_seed").num_frames(5) == 1024
    assert fe.num_samples_for_frames(1024) == 400 + 1023 * 160
    assert fe.num_frames(fe.num_samples_for_frames(1024)) == 1024
    assert math.isclose(fe.center_frequencies[0], 700 * math.expm1((1127 * math.log1p(20 / 700) + (1127 * math.log1p(8000 / 700) - 1127 * math.log1p(20 / 700)) / 129) / 1127))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("feature_type", ["fbank", "cwt", "cwt_seed"])
def test_cuda_path(feature_type):
    fe = LLMAACFeatureExtractor(feature_type=feature_type)
    clips = [_noise(8000, 1), _noise(5000, 2)]
    cpu = fe(clips, sampling_rate=SR, return_tensors="pt")
    gpu = fe(clips, sampling_rate=SR, return_tensors="pt", device="cuda")
    assert gpu["input_features"].device.type == "cuda"
    torch.testing.assert_close(gpu["input_features"].cpu(), cpu["input_features"], atol=2e-3, rtol=1e-3)
    on_device = fe([torch.from_numpy(c).cuda() for c in clips], sampling_rate=SR, return_tensors="pt")
    assert on_device["input_features"].device.type == "cuda"


def test_feature_device_follows_a_gpu_model_and_keeps_cpu_models_on_the_cpu():
    from modeling_llm_aac.feature_extraction_llm_aac import feature_device

    assert feature_device(None) is None
    assert feature_device("cpu") is None and feature_device(torch.device("cpu")) is None
    assert feature_device("cuda:1") == torch.device("cuda:1")  # no GPU needed to name one
