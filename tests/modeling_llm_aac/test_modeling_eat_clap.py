"""EAT-CLAP model: tiny EAT + tiny BERT / RoBERTa text towers, loss, pooling, save/load, and the
cross-process negatives of the contrastive loss (two CPU processes over gloo)."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, BertConfig, BertModel, RobertaConfig

from modeling_llm_aac import EATClapConfig, EATClapModel, EATConfig, EATModel
from modeling_llm_aac.modeling_eat_clap import check_hard_negative_owners, clap_contrastive_loss


def tiny_bert(**overrides):
    settings = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                    max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    settings.update(overrides)
    return BertConfig(**settings)


def tiny_config(**overrides) -> EATClapConfig:
    settings = dict(audio_config=EATConfig.tiny(), text_config=tiny_bert(), projection_dim=12)
    settings.update(overrides)
    return EATClapConfig(**settings)


def batch(num_clips=3, frames=64, tokens=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return dict(
        input_features=torch.randn(num_clips, frames, 128, generator=generator),
        audio_attention_mask=torch.ones(num_clips, frames, dtype=torch.long),
        input_ids=torch.randint(4, 60, (num_clips, tokens), generator=generator),
        attention_mask=torch.ones(num_clips, tokens, dtype=torch.long),
    )


def test_forward_loss_and_gradients():
    torch.manual_seed(0)
    model = EATClapModel(tiny_config())
    inputs = batch()
    out = model(**inputs, return_loss=True)
    assert out.logits_per_audio.shape == (3, 3) and out.audio_embeds.shape == (3, 12)
    torch.testing.assert_close(out.logits_per_text, out.logits_per_audio.T)
    torch.testing.assert_close(out.audio_embeds.norm(dim=-1), torch.ones(3))
    labels = torch.arange(3)
    expected = 0.5 * (F.cross_entropy(out.logits_per_audio, labels) + F.cross_entropy(out.logits_per_text, labels))
    torch.testing.assert_close(out.loss, expected)
    assert math.isclose(out.logit_scale.item(), 1 / 0.07, rel_tol=1e-5)
    out.loss.backward()
    no_grad = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []  # the unused BERT pooler is removed, so DDP needs no find_unused_parameters
    assert model.text_model.pooler is None
    assert model(**inputs).loss is None
    as_tuple = model(**inputs, return_loss=True, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.loss)


def test_encode_matches_forward_and_padding_does_not_change_embeddings():
    for pooling in ("cls", "mean"):
        torch.manual_seed(0)
        model = EATClapModel(tiny_config(audio_pooling=pooling)).eval()
        inputs = batch(num_clips=2, frames=64)
        short = inputs["input_features"][:1, :32]
        padded = inputs["input_features"].clone()
        padded[0, 32:] = 0.0
        mask = inputs["audio_attention_mask"].clone()
        mask[0, 32:] = 0
        with torch.no_grad():
            alone = model.get_audio_features(short)
            in_batch = model.get_audio_features(padded, mask)
            torch.testing.assert_close(in_batch[0], alone[0], atol=1e-5, rtol=1e-5, msg=pooling)
            out = model(**{**inputs, "input_features": padded, "audio_attention_mask": mask})
            torch.testing.assert_close(out.audio_embeds, in_batch)
            torch.testing.assert_close(out.text_embeds, model.get_text_features(inputs["input_ids"], inputs["attention_mask"]))
            unnormalised = model.encode_audio(padded, mask)
            torch.testing.assert_close(F.normalize(unnormalised, dim=-1), in_batch)


@pytest.mark.parametrize("pooling", ["cls", "mean", "last", "pooler"])
def test_text_pooling_ignores_padding(pooling):
    torch.manual_seed(0)
    model = EATClapModel(tiny_config(text_pooling=pooling)).eval()
    assert (model.text_model.pooler is not None) == (pooling == "pooler")
    ids = torch.tensor([[2, 7, 9, 11, 3]])
    padded = torch.tensor([[2, 7, 9, 11, 3, 0, 0], [2, 5, 3, 0, 0, 0, 0]])
    mask = (padded != 0).long()
    with torch.no_grad():
        alone = model.get_text_features(ids, torch.ones_like(ids))
        in_batch = model.get_text_features(padded, mask)
    torch.testing.assert_close(in_batch[0], alone[0], atol=1e-5, rtol=1e-5)


def test_last_token_pooling_with_left_padding():
    torch.manual_seed(0)
    model = EATClapModel(tiny_config(text_pooling="last", text_config=tiny_bert(position_embedding_type="absolute"))).eval()
    right = torch.tensor([[2, 7, 9, 3, 0]])
    left = torch.tensor([[0, 2, 7, 9, 3]])
    hidden = model.text_model(input_ids=right, attention_mask=(right != 0).long()).last_hidden_state
    picked = model._pool_text(type("O", (), {"last_hidden_state": hidden})(), (right != 0).long())
    torch.testing.assert_close(picked[0], hidden[0, 3])
    hidden_left = model.text_model(input_ids=left, attention_mask=(left != 0).long()).last_hidden_state
    picked_left = model._pool_text(type("O", (), {"last_hidden_state": hidden_left})(), (left != 0).long())
    torch.testing.assert_close(picked_left[0], hidden_left[0, 4])


def test_save_load_round_trip_with_roberta_text_tower(tmp_path):
    torch.manual_seed(0)
    text = RobertaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=40)
    model = EATClapModel(tiny_config(text_config=text, projection_type="linear", logit_scale_init_value=20.0)).eval()
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, EATClapConfig) and config.text_config.model_type == "roberta"
    assert isinstance(config.audio_config, EATConfig) and config.projection_type == "linear"
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, EATClapModel) and loaded.text_projection.linear2 is None
    inputs = batch(tokens=5)
    inputs["input_ids"][:, 0] = 0  # RoBERTa BOS
    with torch.no_grad():
        a, b = model(**inputs, return_loss=True), loaded(**inputs, return_loss=True)
    torch.testing.assert_close(a.logits_per_audio, b.logits_per_audio)
    assert math.isclose(b.logit_scale.item(), 20.0, rel_tol=1e-5)


def test_from_audio_text_pretrained_keeps_tower_weights(tmp_path):
    torch.manual_seed(0)
    eat = EATModel(EATConfig.tiny())
    bert = BertModel(tiny_bert())
    eat.save_pretrained(tmp_path / "eat")
    bert.save_pretrained(tmp_path / "bert")
    model = EATClapModel.from_audio_text_pretrained(str(tmp_path / "eat"), str(tmp_path / "bert"), projection_dim=8)
    torch.testing.assert_close(model.audio_model.embeddings.cls_token, eat.embeddings.cls_token)
    torch.testing.assert_close(
        model.text_model.encoder.layer[0].attention.self.query.weight, bert.encoder.layer[0].attention.self.query.weight
    )
    assert model.config.projection_dim == 8 and model.audio_projection.linear1.out_features == 8


def test_logit_scale_is_clamped_and_can_be_frozen():
    model = EATClapModel(tiny_config(max_logit_scale=50.0))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert math.isclose(model.get_logit_scale().item(), 50.0, rel_tol=1e-5)
    frozen = EATClapModel(tiny_config(learnable_logit_scale=False))
    assert not frozen.logit_scale.requires_grad


def test_bad_config_and_input_errors():
    with pytest.raises(ValueError, match="audio_pooling must be one of"):
        tiny_config(audio_pooling="max")
    with pytest.raises(ValueError, match="text_pooling must be one of"):
        tiny_config(text_pooling="first")
    with pytest.raises(ValueError, match="needs its 'model_type'"):
        tiny_config(text_config={"hidden_size": 16})
    with pytest.raises(ValueError, match="projection_dim must be a positive integer"):
        tiny_config(projection_dim=0)
    with pytest.raises(ValueError, match="max_logit_scale"):
        tiny_config(max_logit_scale=5.0)
    model = EATClapModel(tiny_config())
    inputs = batch()
    with pytest.raises(ValueError, match="needs both input_features and input_ids"):
        model(input_features=inputs["input_features"])
    with pytest.raises(ValueError, match=r"input_ids must be a \[batch, tokens\] tensor"):
        model.get_text_features(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="bins but the model expects"):
        model.get_audio_features(torch.randn(1, 64, 64))
    with pytest.raises(ValueError, match="one caption per clip"):
        clap_contrastive_loss(torch.randn(3, 4), torch.randn(2, 4), torch.tensor(1.0))


# ----------------------------------------------------------------------------------------------
# Compositional hard negatives
# ----------------------------------------------------------------------------------------------


def _unit_rows(rows, width=8, seed=0):
    return F.normalize(torch.randn(rows, width, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_loss_without_hard_negatives_is_the_plain_loss():
    audio, text, scale = _unit_rows(4), _unit_rows(4, seed=1), torch.tensor(10.0)
    plain = clap_contrastive_loss(audio, text, scale)
    none = clap_contrastive_loss(audio, text, scale, hard_negative_embeds=torch.empty(0, 8),
                                 hard_negative_owners=torch.empty(0, dtype=torch.long))
    zero_weight = clap_contrastive_loss(audio, text, scale, hard_negative_embeds=_unit_rows(3, seed=2),
                                        hard_negative_owners=torch.tensor([0, 1, 1]), hard_negative_weight=0.0)
    assert torch.equal(none, plain) and torch.equal(zero_weight, plain)


def test_hard_negatives_join_only_their_own_clips_softmax():
    audio, text, scale = _unit_rows(3), _unit_rows(3, seed=1), 10.0
    # The second hard negative is clip 0's audio itself: were it shown to clip 0, its term would explode.
    hard = torch.cat([_unit_rows(1, seed=2), audio[:1], _unit_rows(2, seed=3)])
    owners, weight = torch.tensor([0, 1, 2, 2]), 2.5
    hard.requires_grad_(True)
    loss = clap_contrastive_loss(audio, text, torch.tensor(scale), hard_negative_embeds=hard,
                                 hard_negative_owners=owners, hard_negative_weight=weight)
    audio_to_text, text_to_audio = [], []
    for clip in range(3):
        in_batch = torch.exp(scale * audio[clip] @ text.T).sum()
        own = torch.exp(scale * hard[owners == clip] @ audio[clip]).sum()
        audio_to_text.append(-(scale * audio[clip] @ text[clip] - torch.log(in_batch + weight * own)))
        text_to_audio.append(-torch.log_softmax(scale * text[clip] @ audio.T, dim=0)[clip])
    expected = 0.5 * (torch.stack(audio_to_text).mean() + torch.stack(text_to_audio).mean())
    torch.testing.assert_close(loss, expected)
    assert loss > clap_contrastive_loss(audio, text, torch.tensor(scale))  # harder than in-batch negatives alone
    loss.backward()
    assert torch.isfinite(hard.grad).all() and (hard.grad.norm(dim=-1) > 0).all()  # every hard negative is pushed


def test_forward_with_hard_negatives_trains_the_text_tower():
    torch.manual_seed(0)
    model = EATClapModel(tiny_config())
    inputs = batch()
    hard = dict(hard_negative_input_ids=torch.randint(4, 60, (4, 5)),
                hard_negative_attention_mask=torch.ones(4, 5, dtype=torch.long),
                hard_negative_owners=torch.tensor([0, 0, 1, 2]))
    out = model(**inputs, **hard, return_loss=True, hard_negative_weight=1.5)
    assert out.hard_negative_embeds.shape == (4, 12)
    expected = clap_contrastive_loss(out.audio_embeds, out.text_embeds, out.logit_scale, hard_negative_weight=1.5,
                                     hard_negative_embeds=out.hard_negative_embeds,
                                     hard_negative_owners=hard["hard_negative_owners"])
    torch.testing.assert_close(out.loss, expected)
    assert not torch.allclose(out.loss, model(**inputs, return_loss=True).loss)
    out.loss.backward()
    assert model.text_model.embeddings.word_embeddings.weight.grad[hard["hard_negative_input_ids"]].abs().sum() > 0
    with pytest.raises(ValueError, match="need hard_negative_owners"):
        model(**inputs, hard_negative_input_ids=hard["hard_negative_input_ids"], return_loss=True)


def test_hard_negative_input_errors():
    audio, text, scale = _unit_rows(3), _unit_rows(3, seed=1), torch.tensor(10.0)
    hard = _unit_rows(2, seed=2)
    with pytest.raises(ValueError, match=r"hard_negative_owners must give the clip .* expected shape \(2,\)"):
        clap_contrastive_loss(audio, text, scale, hard_negative_embeds=hard, hard_negative_owners=torch.tensor([0]))
    with pytest.raises(ValueError, match=r"must index the 3 clips of the batch, got values \[0, 3\]"):
        clap_contrastive_loss(audio, text, scale, hard_negative_embeds=hard, hard_negative_owners=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"hard_negative_embeds must be \[num_hard_negatives, 8\]"):
        clap_contrastive_loss(audio, text, scale, hard_negative_embeds=_unit_rows(2, width=4),
                              hard_negative_owners=torch.tensor([0, 1]))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="hard_negative_weight must be a finite number >= 0"):
            clap_contrastive_loss(audio, text, scale, hard_negative_embeds=hard,
                                  hard_negative_owners=torch.tensor([0, 1]), hard_negative_weight=bad)


# ----------------------------------------------------------------------------------------------
# Negatives gathered across processes
# ----------------------------------------------------------------------------------------------



def test_owner_check_on_the_cpu_and_a_loss_that_reads_no_device_value():
    check_hard_negative_owners(torch.tensor([0, 2, 2]), 3)
    check_hard_negative_owners(torch.empty(0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"must index the 3 clips of the batch, got values \[-1, 0\]"):
        check_hard_negative_owners(torch.tensor([0, -1]), 3)
    with pytest.raises(ValueError, match="must hold integer clip indices, got dtype torch.float32"):
        check_hard_negative_owners(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match=r"must be a 1-D tensor of clip indices, got shape \(1, 2\)"):
        check_hard_negative_owners(torch.tensor([[0, 1]]), 3)
    with pytest.raises(ValueError, match="must be a 1-D tensor of clip indices, got list"):
        check_hard_negative_owners([0, 1], 3)
    # Off the CPU only shapes are checked: the loss must run on tensors whose values cannot be read at all (meta
    # tensors raise on any .item() / int() / bool()), i.e. without a host-device synchronisation.
    audio, text, hard = (_unit_rows(rows, seed=seed).to("meta") for rows, seed in ((3, 0), (3, 1), (4, 2)))
    loss = clap_contrastive_loss(audio, text, torch.tensor(10.0, device="meta"), hard_negative_embeds=hard,
                                 hard_negative_owners=torch.tensor([0, 1, 2, 2]).to("meta"), hard_negative_weight=2.0)
    assert loss.device.type == "meta" and loss.shape == ()
    with pytest.raises(ValueError, match=r"expected shape \(4,\)"):
        clap_contrastive_loss(audio, text, torch.tensor(10.0, device="meta"), hard_negative_embeds=hard,
                              hard_negative_owners=torch.tensor([0, 1]).to("meta"))
    with pytest.raises(ValueError, match=r"expected shape \(4,\) \(a tensor\), got list"):
        clap_contrastive_loss(audio, text, torch.tensor(10.0, device="meta"), hard_negative_embeds=hard,
                              hard_negative_owners=[0, 1, 2, 2])

def _global_loss(audio, text, scale):
    labels = torch.arange(audio.shape[0])
    logits = scale * audio @ text.T
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def _worker(rank, world, init_file, audio, text, sizes, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        start = sum(sizes[:rank])
        local_audio = audio[start : start + sizes[rank]].clone().requires_grad_(True)
        local_text = text[start : start + sizes[rank]].clone().requires_grad_(True)
        loss = clap_contrastive_loss(local_audio, local_text, torch.tensor(10.0))
        loss.backward()
        # Plain lists: shared-memory tensors would not outlive the worker.
        results.put((rank, loss.item(), local_audio.grad.tolist(), local_text.grad.tolist()))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("sizes", [(3, 3), (4, 2)])
def test_negatives_are_gathered_across_processes(tmp_path, sizes):
    torch.manual_seed(0)
    total = sum(sizes)
    audio = F.normalize(torch.randn(total, 8), dim=-1)
    text = F.normalize(torch.randn(total, 8), dim=-1)
    # fork: the workers inherit the imported modules instead of importing transformers again.
    context = mp.get_context("fork")
    queue = context.SimpleQueue()
    mp.start_processes(
        _worker, args=(2, str(tmp_path / "init"), audio, text, list(sizes), queue), nprocs=2, join=True, start_method="fork"
    )
    results = {}
    for _ in range(2):
        rank, *values = queue.get()
        results[rank] = [torch.tensor(v) for v in values]

    # Each process's loss is the global-batch loss restricted to its own rows...
    scale = 10.0
    logits = scale * audio @ text.T
    labels = torch.arange(total)
    per_row = 0.5 * (F.cross_entropy(logits, labels, reduction="none") + F.cross_entropy(logits.T, labels, reduction="none"))
    for rank in range(2):
        start = sum(sizes[:rank])
        torch.testing.assert_close(results[rank][0], per_row[start : start + sizes[rank]].mean())
    # ...and with equal batches, the gradient DDP applies (the mean over processes, where the
    # all-gather's backward sums every process's contribution) is the global loss's gradient.
    if sizes[0] == sizes[1]:
        audio_ref = audio.clone().requires_grad_(True)
        text_ref = text.clone().requires_grad_(True)
        _global_loss(audio_ref, text_ref, scale).backward()
        got_audio = torch.cat([results[r][1] for r in range(2)]) / 2
        got_text = torch.cat([results[r][2] for r in range(2)]) / 2
        torch.testing.assert_close(got_audio, audio_ref.grad)
        torch.testing.assert_close(got_text, text_ref.grad)


@pytest.mark.slow
def test_saved_folder_loads_as_remote_code(tmp_path):
    """The saved folder carries its modeling files: `trust_remote_code` loads it without this package."""
    import subprocess
    import sys

    torch.manual_seed(0)
    model = EATClapModel(tiny_config()).eval()
    model.save_pretrained(tmp_path / "clap")
    inputs = batch(num_clips=2, frames=32)
    with torch.no_grad():
        torch.save({"inputs": inputs, "logits": model(**inputs).logits_per_audio}, tmp_path / "io.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModel\n"
        f"model = AutoModel.from_pretrained({str(tmp_path / 'clap')!r}, trust_remote_code=True).eval()\n"
        f"io = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "with torch.no_grad():\n"
        "    error = float((model(**io['inputs']).logits_per_audio - io['logits']).abs().max())\n"
        "print(type(model).__module__, 'modeling_llm_aac' in sys.modules, error)\n"
    )
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    module, imported_ours, error = result.stdout.split()[-3:]
    assert module.startswith("transformers_modules.") and imported_ours == "False"
    assert float(error) <= 1e-5
