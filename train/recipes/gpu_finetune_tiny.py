"""GPU learning run of the captioner on the synthetic corpus, in one command of under 10 minutes on one H100.

    python train/recipes/gpu_finetune_tiny.py OUT_DIR          # one GPU, at most ~8 minutes
    python train/recipes/gpu_finetune_tiny.py OUT_DIR --smoke  # CPU check of the whole chain (tiny, ~3 minutes)

The same stages as the real recipe, from nothing: (1) caption text of `--text_clips` synthetic training clips;
(2) a byte-level BPE tokenizer trained on it (`train/train_tokenizer.py`); (3) a small Llama pre-trained on it
(`train/pretrain_text_lm.py --preset small`, the stand-in for Vicuna); (4) the captioner
(`train/finetune_aac.py --preset small`): `--train_clips` synthetic clips rendered and featurized (fbank) in
memory, every clip paired with each of its 5 captions, an EAT-small encoder trained from scratch with the
projector over the frozen LM (stage `projector`, a short warm-up), then projector + encoder + LoRA on every
linear layer of the LM (stage `lora`, most of the time); validation loss, the loss with every caption given
another clip's audio (`audio_gain` = that loss minus the true one) and beam-4 captions of `--eval_clips`
validation clips scored with CIDEr-D / BLEU-4 / ROUGE-L every `--eval_steps` steps. Each training stage has a
time limit, so the command ends in time even on a slower card.

Why the projector stage is short: a small caption-trained LM, kept frozen, cannot be steered by input
embeddings. On CPU (3-layer LM, 400 clips) the projector stage left the true-audio and mismatched-audio
validation losses equal (1.097 vs 1.097 after 300 steps), and even the clips' true event labels, fed as learned
audio tokens, gave 1.092 vs 1.100; with LoRA on every linear layer the same labels gave 0.957 vs 1.332 and the
real audio 1.02 vs 1.14 after 500 steps. The first H100 run (2026-11-26) spent 1,000 of its 1,700 steps in the
projector stage and ended at the text-only loss (~1.095) with CIDEr-D ~0.3.

Outputs in OUT_DIR: `learning_curve.json` (every evaluation: stage, step, validation loss, mismatched-audio
loss, audio gain, CIDEr-D, BLEU-4, ROUGE-L; stage timings; a verdict on whether it learned to use the audio),
`curves.png` (training loss, validation loss, audio gain, CIDEr-D over steps), `captioner/` (the final model + processor, checkpoints, per-evaluation captions in
`captioner/<stage>/predictions/`), `lm/`, `tokenizer/`.

Needs, beside torch / transformers / accelerate / peft: soundfile (imported by the feature collator) and
aac-metrics 0.5.4, whose package import pulls in sentence-transformers, scikit-learn, scipy, torchmetrics and
lightning-utilities (CIDEr-D itself needs no model and no Java); matplotlib for the PNG (optional). Without
`pip install -e .` the package names are laid out by links under OUT_DIR (as `gpu_pretrain_eat.sh` does).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import time


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Mismatched-audio minus true-audio validation loss (nats per caption token) from which the captioner counts as
# listening; a captioner that ignores the audio scores ~0 (the first H100 run never got past 0.00x).
MIN_AUDIO_GAIN = 0.05


def make_package_importable(work_dir: str) -> None:
    """Without `pip install -e .` (an offline GPU image), lay out the installed names `llm_aac.{processing,train,
    eval}` as links to the repository folders and put them on the path (spawned workers inherit it)."""
    try:
        importlib.import_module("llm_aac.train.finetune_aac")
        return
    except ImportError:
        pass
    shim = os.path.join(work_dir, "package_shim")
    shutil.rmtree(shim, ignore_errors=True)
    os.makedirs(os.path.join(shim, "llm_aac"))
    for name in os.listdir(os.path.join(REPO, "llm_aac")):
        if name.endswith(".py"):
            shutil.copy(os.path.join(REPO, "llm_aac", name), os.path.join(shim, "llm_aac", name))
    for sub in ("processing", "train", "eval"):
        os.symlink(os.path.join(REPO, sub), os.path.join(shim, "llm_aac", sub))
    for entry in (REPO, shim):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    os.environ["PYTHONPATH"] = os.pathsep.join([shim, REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    for name in [m for m in sys.modules if m == "llm_aac" or m.startswith("llm_aac.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def check_environment() -> None:
    missing = []
    for module, why in (
        ("llm_aac.train.finetune_aac", "this repository: pip install --no-deps --no-build-isolation -e ."),
        ("soundfile", "soundfile (imported by the feature collator)"),
        ("aac_metrics", "aac-metrics==0.5.4 with sentence-transformers and torchmetrics (CIDEr-D)"),
        ("peft", "peft (LoRA)"),
    ):
        try:
            importlib.import_module(module)
        except ImportError as error:
            missing.append(f"  {module}: {why} ({error})")
    if missing:
        raise SystemExit("missing dependencies:\n" + "\n".join(missing))
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        print("matplotlib is missing: no curves.png (learning_curve.json is still written)", flush=True)


SIZES = {
    # One H100: <= 1.25 min text LM, ~1 min synthesis, <= 0.75 + 4.5 min captioner training (evaluations
    # included); the time limits keep the whole command under 10 minutes on a slower card too.
    "gpu": dict(text_clips=20000, vocab_size=2000, lm_steps=700, lm_minutes=1.25, train_clips=4000, eval_clips=100,
                projector_steps=150, lora_steps=2000, projector_minutes=0.75, lora_minutes=4.5, eval_steps=250,
                lm_preset="small", aac_preset="small"),
    # CPU check of the chain: tiny everything.
    "smoke": dict(text_clips=300, vocab_size=600, lm_steps=30, lm_minutes=1.0, train_clips=24, eval_clips=6,
                  projector_steps=20, lora_steps=20, projector_minutes=1.0, lora_minutes=1.0, eval_steps=10,
                  lm_preset="tiny", aac_preset="tiny"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="folder for every output (created; an existing one is replaced)")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of the whole chain")
    parser.add_argument("--seed", type=int, default=0, help="training seed (the corpus seed is fixed at 0)")
    parser.add_argument("--encoder_path", default=None,
                        help="a pretrained EAT folder (pretrain_eat's encoder/) instead of an encoder trained from scratch")
    parser.add_argument("--freeze_encoder", action="store_true", help="keep --encoder_path frozen (SLAM-AAC)")
    for name, value in SIZES["gpu"].items():
        parser.add_argument(f"--{name}", type=type(value), default=None, help=f"default {value} ({SIZES['smoke'][name]} with --smoke)")
    args = parser.parse_args(argv)
    sizes = dict(SIZES["smoke" if args.smoke else "gpu"])
    sizes.update({k: v for k, v in vars(args).items() if k in sizes and v is not None})

    out = os.path.abspath(args.output_dir)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    make_package_importable(out)
    check_environment()
    import torch

    from llm_aac.train import finetune_aac, pretrain_text_lm
    from llm_aac.train.caption_text import synthetic_captions
    from llm_aac.train.train_tokenizer import train_caption_tokenizer

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        raise SystemExit("no GPU: this recipe is sized for one H100 (use --smoke for a CPU check)")
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"device: {device}; sizes: {sizes}", flush=True)
    timings: dict[str, float] = {}
    start_all = time.monotonic()

    # (1) caption text of the training split only: validation / test captions stay unseen.
    start = time.monotonic()
    captions = [c for five in synthetic_captions(sizes["text_clips"], seed=0, split="train") for c in five]
    captions_file = os.path.join(out, "train_captions.txt")
    with open(captions_file, "w") as f:
        f.write("\n".join(captions) + "\n")
    # (2) tokenizer
    tokenizer_dir = os.path.join(out, "tokenizer")
    train_caption_tokenizer(captions, vocab_size=sizes["vocab_size"]).save_pretrained(tokenizer_dir)
    timings["captions_and_tokenizer_s"] = round(time.monotonic() - start, 1)
    print(f"[1-2] {len(captions)} captions, tokenizer in {timings['captions_and_tokenizer_s']} s", flush=True)

    # (3) text LM
    start = time.monotonic()
    lm_dir = os.path.join(out, "lm")
    lm_args = [
        "--preset", sizes["lm_preset"], "--caption_files", captions_file, "--tokenizer_path", tokenizer_dir,
        "--max_steps", str(sizes["lm_steps"]), "--max_train_minutes", str(sizes["lm_minutes"]),
        "--eval_steps", str(max(1, sizes["lm_steps"] // 4)), "--save_steps", str(sizes["lm_steps"]),
        "--seed", str(args.seed), "--output_dir", lm_dir,
    ]
    if cuda:
        lm_args += ["--bf16", "true"]
    pretrain_text_lm.main(lm_args)
    timings["text_lm_s"] = round(time.monotonic() - start, 1)
    print(f"[3] text LM in {timings['text_lm_s']} s", flush=True)

    # (4) captioner
    start = time.monotonic()
    captioner_dir = os.path.join(out, "captioner")
    aac_args = [
        "--preset", sizes["aac_preset"], "--language_model", lm_dir,
        "--freeze_encoder", "true" if args.freeze_encoder else "false",
        "--synthetic_clips", str(sizes["train_clips"]), "--synthetic_eval_clips", str(sizes["eval_clips"]),
        "--max_eval_clips", str(sizes["eval_clips"]), "--stage", "both",
        "--projector_max_steps", str(sizes["projector_steps"]), "--lora_max_steps", str(sizes["lora_steps"]),
        "--projector_max_minutes", str(sizes["projector_minutes"]), "--lora_max_minutes", str(sizes["lora_minutes"]),
        "--eval_steps", str(sizes["eval_steps"]), "--save_steps", str(10 * sizes["eval_steps"]),
        "--eval_metrics", "cider_d,bleu_4,rouge_l", "--seed", str(args.seed), "--output_dir", captioner_dir,
    ]
    if args.encoder_path:
        aac_args += ["--encoder_path", args.encoder_path]
    if not cuda:
        aac_args += ["--bf16", "false"]
    finetune_aac.main(aac_args)
    timings["captioner_s"] = round(time.monotonic() - start, 1)
    timings["total_s"] = round(time.monotonic() - start_all, 1)
    print(f"[4] captioner in {timings['captioner_s']} s", flush=True)

    # (5) summary
    with open(os.path.join(captioner_dir, "summary.json")) as f:
        summary = json.load(f)
    evaluations = summary["evaluations"]
    keys = ("stage", "step", "stage_step", "eval_loss", "eval_mismatched_audio_loss", "eval_audio_gain", "eval_cider_d",
            "eval_bleu_4", "eval_rouge_l", "eval_blank_captions")
    curve = [{k: e[k] for k in keys if k in e} for e in evaluations]
    first, last = curve[0], curve[-1]
    # A falling loss alone is no proof: the LM adapting to the caption language lowers it without any audio.
    # The captioner has learned to listen when captions score clearly better with their own clip's audio.
    listens = last.get("eval_audio_gain", 0.0) >= MIN_AUDIO_GAIN
    learned = (listens and last["eval_loss"] < first["eval_loss"]
               and last.get("eval_cider_d", 0.0) > first.get("eval_cider_d", 0.0))
    result = {
        "device": device, "sizes": sizes, "timings": timings, "evaluations": curve,
        "first": first, "last": last, "best_cider_d": max(e.get("eval_cider_d", 0.0) for e in curve),
        "min_audio_gain": MIN_AUDIO_GAIN, "listens": listens, "learned": learned,
    }
    with open(os.path.join(out, "learning_curve.json"), "w") as f:
        json.dump(result, f, indent=1)
    if summary.get("curves") and os.path.isfile(summary["curves"]):
        shutil.copy(summary["curves"], os.path.join(out, "curves.png"))

    nan = float("nan")
    print("\n| stage | step | val loss | mismatched-audio loss | audio gain | CIDEr-D | BLEU-4 | ROUGE-L |\n"
          "|---|---|---|---|---|---|---|---|")
    for e in curve:
        print(f"| {e['stage']} | {e['step']} | {e['eval_loss']:.3f} | {e.get('eval_mismatched_audio_loss', nan):.3f} | "
              f"{e.get('eval_audio_gain', nan):.3f} | {e.get('eval_cider_d', nan):.3f} | "
              f"{e.get('eval_bleu_4', nan):.3f} | {e.get('eval_rouge_l', nan):.3f} |")
    print(f"\ntimings: {timings}")
    print(f"learned (audio gain >= {MIN_AUDIO_GAIN}, val loss down and CIDEr-D up from step 0): {learned}; "
          f"last audio gain {last.get('eval_audio_gain', nan):.3f}; best CIDEr-D {result['best_cider_d']:.3f}")
    print(f"outputs: {out}/learning_curve.json, {out}/curves.png, {captioner_dir}")
    return 0 if learned else 1


if __name__ == "__main__":
    sys.exit(main())
