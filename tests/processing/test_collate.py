import numpy as np
import pytest
import torch
from audio_fixtures import write_wav
from datasets import Dataset

from llm_aac.processing.audio_io import decode_audio, ensure_undecoded_audio
from llm_aac.processing.collate import AudioFeatureCollator
from llm_aac.processing.precompute import load_precomputed, precompute_features
from modeling_llm_aac import LLMAACFeatureExtractor


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rates = [16000, 44100, 22050, 16000]
    paths = [
        write_wav(folder / f"c{i}.wav", seconds=0.15 + 0.11 * i, sampling_rate=r, frequency=300 + 200 * i, seed=i)
        for i, r in enumerate(rates)
    ]
    return ensure_undecoded_audio(Dataset.from_dict({"audio": paths, "captions": [[f"caption {i}"] for i in range(4)]}))


@pytest.fixture(scope="module", params=["fbank", "cwt"])
def precomputed(request, clips, tmp_path_factory):
    extractor = LLMAACFeatureExtractor(feature_type=request.param, **({"num_scales": 16} if request.param == "cwt" else {}))
    output = tmp_path_factory.mktemp("features")
    result = precompute_features(clips, extractor, output, chunk_size=2, batch_size=2, progress=False)
    return result.feature_extractor, load_precomputed(output)


def test_precomputed_and_on_the_fly_batches_are_equal(clips, precomputed):
    extractor, features = precomputed
    collator = AudioFeatureCollator(extractor, extra_columns=("captions",))
    rows_with_features = [features[i] for i in range(4)]
    rows_with_audio = [clips[i] for i in range(4)]
    a, b = collator(rows_with_features), collator(rows_with_audio)
    mixed = collator([rows_with_features[0], rows_with_audio[1], rows_with_features[2], rows_with_audio[3]])
    # The scalogram is an FFT over the batch's padded length: batches of other clips differ by
    # float32 rounding only. Filterbank frames never see other clips.
    atol = 1e-4 if extractor.feature_type == "cwt" else 1e-6
    torch.testing.assert_close(a["input_features"], b["input_features"], rtol=0, atol=atol)
    torch.testing.assert_close(a["input_features"], mixed["input_features"], rtol=0, atol=atol)
    assert torch.equal(a["attention_mask"], b["attention_mask"])
    assert a["captions"] == b["captions"] == [[f"caption {i}"] for i in range(4)]

    lengths = [row["num_frames"] for row in rows_with_features]
    assert a["input_features"].dtype == torch.float32 and a["attention_mask"].dtype == torch.int64
    assert a["input_features"].shape == (4, -(-max(lengths) // 16) * 16, extractor.feature_size)
    assert a["attention_mask"].sum(1).tolist() == lengths
    padded = (extractor.padding_value - np.asarray(extractor.feature_mean)) / np.asarray(extractor.feature_std)
    torch.testing.assert_close(a["input_features"][0, lengths[0] :], torch.tensor(padded, dtype=torch.float32).expand(64, -1)[: a["input_features"].shape[1] - lengths[0]])


def test_batch_equals_the_extractors_own_batch(clips, precomputed):
    extractor, features = precomputed
    batch = AudioFeatureCollator(extractor, return_tensors="np")([features[i] for i in range(4)])
    direct = extractor([dict(zip(("array", "sampling_rate"), decode_audio(clips[i]["audio"]))) for i in range(4)], return_tensors="np")
    np.testing.assert_array_equal(batch["attention_mask"], direct["attention_mask"])
    np.testing.assert_allclose(batch["input_features"], direct["input_features"], rtol=0, atol=1e-4)
    stored, frames = features[1]["input_features"], features[1]["num_frames"]
    expected = (stored - np.asarray(extractor.feature_mean, np.float32)) / np.asarray(extractor.feature_std, np.float32)
    np.testing.assert_allclose(batch["input_features"][1, :frames], expected, rtol=1e-6, atol=1e-6)


def test_max_frames_and_errors(clips, precomputed):
    extractor, features = precomputed
    batch = AudioFeatureCollator(extractor, max_frames=10, pad_to_multiple_of=1)([features[3], features[0]])
    assert batch["input_features"].shape[1] == 10 and batch["attention_mask"].sum().item() == 20
    collator = AudioFeatureCollator(extractor, extra_columns=("caption_1",))
    with pytest.raises(ValueError, match="no column 'caption_1'"):
        collator([features[0]])
    with pytest.raises(ValueError, match="neither 'input_features' nor 'audio'"):
        AudioFeatureCollator(extractor)([{"captions": ["x"]}])
    with pytest.raises(ValueError, match=rf"expected \[frames >= 1, {extractor.feature_size}\]"):
        AudioFeatureCollator(extractor)([{"input_features": np.zeros((5, 3), np.float32)}])
    with pytest.raises(ValueError, match="empty list"):
        AudioFeatureCollator(extractor)([])


def test_usable_by_trainer(clips, precomputed, tmp_path):
    from transformers import Trainer, TrainingArguments

    extractor, features = precomputed

    class TinyModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(extractor.feature_size, 1)
            self.seen_captions = []

        def forward(self, input_features, attention_mask, captions):
            self.seen_captions.extend(captions)
            pooled = (input_features * attention_mask[..., None]).sum(1) / attention_mask.sum(1, keepdim=True)
            return {"loss": self.proj(pooled).pow(2).mean()}

    model = TinyModel()
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        per_device_train_batch_size=2,
        max_steps=2,
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    collator = AudioFeatureCollator(extractor, extra_columns=("captions",))
    Trainer(model=model, args=args, train_dataset=features, data_collator=collator).train()
    assert sorted(map(tuple, model.seen_captions)) == sorted(tuple(c) for c in features["captions"])
