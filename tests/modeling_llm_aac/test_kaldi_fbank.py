import feature_test_utils  # noqa: F401  (first: keeps a broken torchaudio away from transformers)
import pytest
import torch
from feature_test_utils import load_fbank_fixture, load_reference_kaldi, reference_eat_fbank

from modeling_llm_aac.kaldi_fbank import kaldi_fbank, kaldi_num_frames

KALDI = load_reference_kaldi()
needs_reference = pytest.mark.skipif(KALDI is None, reason="torchaudio (the reference kaldi.py) is not installed")


def _clip(num_samples, seed, scale=0.1):
    generator = torch.Generator().manual_seed(seed)
    clip = torch.randn(num_samples, generator=generator) * scale
    clip += 0.3 * torch.sin(torch.arange(num_samples) * 0.05)  # some low-frequency content too
    return clip - clip.mean()


@needs_reference
@pytest.mark.parametrize("num_samples", [400, 401, 559, 560, 16000, 23457])
def test_matches_torchaudio_kaldi_fbank(num_samples):
    clip = _clip(num_samples, seed=num_samples)
    expected = reference_eat_fbank(KALDI, clip)
    actual = kaldi_fbank(clip)
    assert actual.shape == expected.shape == (kaldi_num_frames(num_samples), 128)
    assert actual.dtype == torch.float32
    assert (actual - expected).abs().max().item() <= 1e-4


def test_matches_committed_torchaudio_fixture():
    # Runs without torchaudio: EAT's fbank of three clips, written once by torchaudio's kaldi.py
    # (`feature_test_utils.write_fbank_fixture`).
    fixture = load_fbank_fixture()
    batch = torch.zeros(len(fixture), max(len(w) for w, _ in fixture))
    for row, (waveform, expected) in enumerate(fixture):
        centred = torch.from_numpy(waveform) - torch.from_numpy(waveform).mean()
        batch[row, : len(waveform)] = centred
        assert (kaldi_fbank(centred) - torch.from_numpy(expected)).abs().max().item() <= 1e-4
    batched = kaldi_fbank(batch)
    for row, (_, expected) in enumerate(fixture):
        assert (batched[row, : len(expected)] - torch.from_numpy(expected)).abs().max().item() <= 1e-4


@needs_reference
def test_batch_with_padding_matches_clip_by_clip():
    lengths = [16000, 9000, 4321]
    clips = [_clip(n, seed=i, scale=10.0 ** -i) for i, n in enumerate(lengths)]
    batch = torch.zeros(len(clips), max(lengths))
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = clip
    features = kaldi_fbank(batch)
    assert features.shape == (3, kaldi_num_frames(16000), 128)
    for row, clip in enumerate(clips):
        expected = reference_eat_fbank(KALDI, clip)
        assert (features[row, : expected.shape[0]] - expected).abs().max().item() <= 1e-4


def test_silence_and_short_clips_are_finite():
    silent = kaldi_fbank(torch.zeros(2, 1600))
    assert torch.isfinite(silent).all()
    assert silent.max().item() == pytest.approx(torch.log(torch.tensor(torch.finfo(torch.float32).eps)).item())
    short = kaldi_fbank(torch.randn(100))  # shorter than one 25 ms window: zero-padded to one frame
    assert short.shape == (1, 128) and torch.isfinite(short).all()


def test_num_frames_matches_kaldi_formula():
    assert kaldi_num_frames(160000) == 998
    assert kaldi_num_frames(400) == kaldi_num_frames(1) == 1
    assert kaldi_num_frames(559) == 1 and kaldi_num_frames(560) == 2


def test_rejects_three_dimensional_input():
    with pytest.raises(ValueError, match="batch, samples"):
        kaldi_fbank(torch.zeros(1, 2, 800))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    batch = torch.stack([_clip(8000, seed=s) for s in range(4)])
    cpu = kaldi_fbank(batch)
    gpu = kaldi_fbank(batch.cuda())
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max().item() <= 1e-4
