"""Ablations of the synthetic GPU recipe (issue 7 §3): each configuration x several seeds, several runs at once
on one GPU or on several GPUs of one host, and a table of mean ± spread.

    # all six configurations x seeds 0 and 1 at 30 % of the budget (the EAT stage keeps its full length: its
    # 9-minute limit lets the step count decide while runs share the GPU), five runs at a time, stopping before 25 min
    python train/recipes/run_ablations.py --output runs/ablations --budget-scale 0.3 --parallel 5 \\
        --set eat_minutes=9 --deadline-minutes 25
    # the same command again (on the same machine) resumes: finished runs are skipped, the others continue
    # from their last finished stage (shared stage cache in OUTPUT/cache)
    # two seeds over four GPUs of one host in one command: two runs per GPU (8 at once), each run on the GPU
    # running the fewest (CUDA_VISIBLE_DEVICES=<its GPU>); `--gpus all` takes every GPU this process sees
    python train/recipes/run_ablations.py --output runs/abl-4gpu --seeds 0 1 --configs baseline,fbank,qformer,slam \\
        --gpus 0,1,2,3 --parallel 2 --budget-scale 0.3 --set eat_minutes=12 --deadline-minutes 25
    # a subset: one seed, some configurations
    python train/recipes/run_ablations.py --output runs/abl-seed1 --configs baseline,fbank --seeds 1 ...
    # only aggregate results made by separate commands (folders searched for results.json)
    python train/recipes/run_ablations.py --aggregate runs/abl-seed0 runs/abl-seed1 --table docs/ablations.md
    # CPU check of the machinery at smoke size
    python train/recipes/run_ablations.py --output /tmp/abl --smoke --configs baseline,slam --seeds 0
    # diagnosis 2 of docs/results.md (~10 minutes on one H100; the EAT stage is built once, alone on the GPU,
    # while the other runs wait for it): frozen encoder, the captioner's encoder learning rate, a random encoder;
    # one seed, the captioner at a quarter of its steps, no CLAP / test-split evaluation (validation curves and
    # probes only)
    python train/recipes/run_ablations.py --output runs/diagnose --seeds 0 --budget-scale 0.25 --parallel 5 \\
        --configs baseline,frozen,scratch --config enc_lr1e-3:encoder_learning_rate=1e-3 \\
        --config enc_lr3e-5:encoder_learning_rate=3e-5 \\
        --set captioner_eval_clips=100 --set captioner_eval_steps=200 --set captioner_eval_minutes=0.15 \\
        --skip-evaluation

Configurations (`CONFIGS`): the baseline (cwt features, linear projector, projector warm-up then LoRA, one beam
search's 7 hypotheses as the CLAP candidates, the pretrained EAT trained with the captioner) and one change each:
`fbank`, `cwt_seed` (features), `qformer` (projector), `projector_only` (no LoRA), `slam` (SLAM-AAC's candidates,
the top hypothesis of each of 7 beam searches of beam 2..8, instead of one search's) - these six, issue 7 §3's
ablations, are the default `--configs` - and the encoder diagnostics `scratch` (the captioner's encoder from random
weights instead of the EAT stage's) and `frozen` (the pretrained encoder kept frozen).
`--config NAME:ITEM[,ITEM...]` defines another, named NAME in the tables: recipe knobs (`features=fbank`,
`encoder_init=scratch`, ...) and sizes (`captioner_batch_size=32`: the recipe's `--set`). `--set FIELD=VALUE` sets a
size of every run (a configuration's own sizes win); both count in the plan. `--skip-evaluation` makes diagnostic
runs: each stops after its captioner and encoder probe (no CLAP, no test split), and the table's test columns stay
empty while the validation and probe columns fill. `slam` reuses the baseline's captioner and CLAP of its seed from
the shared stage cache (only decoding differs): it waits on the cache lock while the baseline run trains them, then
decodes. Runs of one seed share the corpus, the features of each type, the text LM, and the EAT and CLAP of each
feature type, each built once by whichever run gets there first (a file lock makes the others wait, then reuse it).

Several runs at once (`--parallel N`): the models are small and overhead-bound, so one run leaves most of an H100
idle; N subprocesses share it (and the CPU cores: each gets cores / N worker processes and threads). Each run
writes only into its own folder OUTPUT/runs/<config>-seed<k>/ (log in OUTPUT/logs/), plus the shared cache.
Every training stage of the recipe stops at its time limit, which is wall-clock time: runs sharing the GPU train
fewer steps in that time than a run alone (the results record steps done; compare configurations run under the
same contention, e.g. in the same command).

Several GPUs of one host (`--gpus 0,1,2,3`: indices as nvidia-smi numbers them, which must be among
CUDA_VISIBLE_DEVICES's entries when that is set; or `--gpus all`: every GPU this process sees, found from
CUDA_VISIBLE_DEVICES or `nvidia-smi -L` without initialising CUDA here): `--parallel N` is then N runs per GPU, N x
G at once over G GPUs (the plan's slots), and the CPU cores are shared among all N x G. Each run starts with
CUDA_VISIBLE_DEVICES=<its GPU> in its environment, so the recipe sees that GPU alone, as cuda:0, on the GPU running
the fewest runs (ties: the lowest index); its start line and log name the GPU, and its results record that GPU's
name as on one GPU. Without `--gpus`, CUDA_VISIBLE_DEVICES is left as it is. Runs of one seed keep sharing their
stages across GPUs: the stage cache (OUTPUT/cache) and its file locks are on the host's filesystem, so a run on one
GPU waits while a run on another builds a stage it needs, then reuses it. A GPU that runs fewer runs than its slots
(e.g. towards the end) gives each more steps within the time limits.

`--deadline-minutes M`: no run starts later than M minutes minus the shortest stage, and each run gets the time
left as its own deadline, so it stops cleanly before a stage that would end late (exit status 3); running the
same command again continues. The plan printed first gives each run's worst case (time limits + untimed work) and
two makespan bounds: every run building all its stages on the slots (`--parallel`, times the GPUs of `--gpus`),
and, when all runs fit in the slots at once, the chain of one run that builds everything (the others wait for
shared stages, not longer).

Table (printed, OUTPUT/ablations.md, OUTPUT/ablations.json): per configuration and budget scale, n seeds,
mean ± sample standard deviation over seeds (n - 1 denominator; "±" is left out for one seed) of test CIDEr-D
(beam search and CLAP rescoring), the relative rescoring gain, event F1, METEOR / BLEU-4 / ROUGE-L, count and
order accuracy of the rescored captions, compositional CIDEr-D and event F1, the captioner's last audio gain
(mismatched- minus true-audio validation loss) and validation CIDEr-D, the build minutes of the training stages
behind its model (a shared stage counts in every run that uses it), and the event-type probes (macro F1) of the
captioner's encoder before and after captioner training. A second table gives each configuration's per-seed
differences from the baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

RECIPES_DIR = os.path.dirname(os.path.abspath(__file__))
RECIPE = os.path.join(RECIPES_DIR, "synthetic_gpu.py")
TABLE_FILE = "ablations.md"
SUMMARY_FILE = "ablations.json"

CONFIGS: dict[str, dict[str, str]] = {
    "baseline": {},
    "fbank": {"features": "fbank"},
    "cwt_seed": {"features": "cwt_seed"},
    "qformer": {"projector": "qformer"},
    "projector_only": {"training": "projector_only"},
    "slam": {"candidates": "slam"},
    # Diagnostics of the captioner's encoder (not in the default set): random weights instead of the EAT stage's,
    # and the pretrained encoder kept frozen.
    "scratch": {"encoder_init": "scratch"},
    "frozen": {"encoder_training": "frozen"},
}
# The ablations of issue 7 §3: what `--configs` runs by default.
ISSUE_CONFIGS = ("baseline", "fbank", "cwt_seed", "qformer", "projector_only", "slam")
# Predefined configurations that are gone, with the knobs they had: their results count under the recipe's label of
# those knobs (`configuration_label`; `single_pass` is the baseline since its candidates became the baseline's).
RETIRED_CONFIGS: dict[str, dict[str, str]] = {"single_pass": {"candidates": "single_pass"}}
CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclasses.dataclass(frozen=True)
class Configuration:
    """A named configuration: recipe knobs that differ from the baseline and size overrides (the recipe's --set)."""

    name: str
    knobs: Mapping[str, str]
    sizes: tuple[str, ...] = ()

    @property
    def decoding_only(self) -> bool:
        """Only the decoding differs from the baseline: its trained stages are the baseline's (the same cache
        entries), so it only waits for them and decodes."""
        return set(self.knobs) == {"candidates"} and not self.sizes


def parse_config(text: str, knobs: Mapping[str, Sequence[str]], parse_sizes) -> Configuration:
    """`NAME:ITEM[,ITEM...]` -> a `Configuration`; an ITEM is `knob=value` for a recipe knob (`knobs`: name ->
    allowed values, e.g. `features=fbank`, `encoder_init=scratch`) or `FIELD=VALUE` for a size, checked by
    `parse_sizes` (the recipe's `parse_overrides`), e.g. `captioner_batch_size=32`."""
    name, separator, spec = text.partition(":")
    name = name.strip()
    if not separator or not CONFIG_NAME.match(name):
        raise ValueError(f"--config takes NAME:ITEM[,ITEM...] with a folder-safe NAME, got {text!r}")
    if name in CONFIGS or name in RETIRED_CONFIGS:
        raise ValueError(f"--config {name!r}: the name of a predefined configuration; choose another")
    chosen: dict[str, str] = {}
    sizes: list[str] = []
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        key, equals, value = (piece.strip() for piece in item.partition("="))
        if not equals:
            raise ValueError(f"--config {name!r}: {item!r} is not KEY=VALUE")
        if key in knobs:
            if value not in knobs[key]:
                raise ValueError(f"--config {name!r}: {key} must be one of {list(knobs[key])}, got {value!r}")
            chosen[key] = value
        else:
            parse_sizes([item])  # a ValueError names an unknown field
            sizes.append(f"{key}={value}")
    if not chosen and not sizes:
        raise ValueError(f"--config {name!r} changes nothing (give knob=value or FIELD=VALUE items)")
    return Configuration(name, chosen, tuple(sizes))


def named_configuration(name: str) -> Configuration:
    return Configuration(name, CONFIGS[name])


@functools.cache
def _load_recipe():
    """synthetic_gpu.py beside this file (sizes, worst-case minutes, exit statuses); the recipes are scripts, not a
    package."""
    spec = importlib.util.spec_from_file_location("recipes_synthetic_gpu", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# The recipe's status for "stopped before a stage, resume with the same command".
EXIT_DEADLINE = _load_recipe().EXIT_DEADLINE


# ------------------------------------------------------------------------------------------------ plan


@dataclasses.dataclass
class Job:
    """One subprocess: `command` run with its output in `log`; done when `result` exists after it exits 0."""

    name: str
    command: list[str]
    log: str
    result: str
    worst_minutes: float = 0.0
    status: str = "pending"  # pending, running, done, failed, deadline
    returncode: int | None = None
    seconds: float = 0.0
    gpu: str | None = None  # the CUDA_VISIBLE_DEVICES it ran with (run_jobs with gpus), else None


def plan_runs(configs: Sequence[str], seeds: Sequence[int],
              custom: Mapping[str, Configuration] | None = None) -> list[tuple[str, str, int]]:
    """(run name, configuration, seed) in launch order: for each seed the runs that build different features
    first (they share least), then the other training runs, then the decoding-only ones. `custom`: configurations
    of `--config` by name, after the predefined ones of the same tier."""
    known = {**{name: named_configuration(name) for name in CONFIGS}, **(custom or {})}
    unknown = [c for c in configs if c not in known]
    if unknown:
        raise ValueError(f"unknown configuration(s) {unknown}; choose from {list(known)} or define one with --config")
    if not configs or not seeds:
        raise ValueError("give at least one configuration and one seed")
    if len(set(configs)) != len(configs):
        raise ValueError(f"configurations repeat: {list(configs)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {list(seeds)}")

    def tier(config: str) -> int:
        if known[config].decoding_only:
            return 2
        return 0 if config in ("baseline", "fbank", "cwt_seed") else 1

    order = list(known)
    ordered = sorted(((c, s) for c in configs for s in seeds),
                     key=lambda cs: (tier(cs[0]), list(seeds).index(cs[1]), order.index(cs[0])))
    return [(f"{config}-seed{seed}", config, seed) for config, seed in ordered]


def recipe_command(recipe: str, run_dir: str, cache_dir: str, config: str, seed: int, *, budget_scale: float,
                   smoke: bool, workers: int, dataloader_workers: int, threads: int,
                   extra: Sequence[str] = (), configuration: Configuration | None = None,
                   sizes: Sequence[str] = ()) -> list[str]:
    """The recipe's command line for one run of `config` (a predefined name, or `configuration` for a custom one):
    `sizes` (FIELD=VALUE of every run) go first as --set, so that the configuration's own sizes win; `extra`
    arguments are appended."""
    configuration = configuration or named_configuration(config)
    command = [sys.executable, recipe, "--output", run_dir, "--cache-dir", cache_dir, "--seed", str(seed),
               "--budget-scale", repr(budget_scale), "--label", config, "--no-progress",
               "--workers", str(workers), "--threads", str(threads)]
    for knob, value in configuration.knobs.items():
        command += ["--" + knob.replace("_", "-"), value]  # the recipe's option of a knob
    for item in (*sizes, *configuration.sizes):
        command += ["--set", item]
    if smoke:
        command.append("--smoke")
    else:
        command += ["--dataloader-workers", str(dataloader_workers)]
    return command + list(extra)


def worst_case_makespan(jobs: Sequence[Job], parallel: int) -> float:
    """Minutes to run `jobs` in order on `parallel` slots, each taking its `worst_minutes`."""
    slots = [0.0] * parallel
    for job in jobs:
        index = min(range(parallel), key=slots.__getitem__)
        slots[index] += job.worst_minutes
    return max(slots) if jobs else 0.0


# ------------------------------------------------------------------------------------------------ GPUs

# How CUDA reads CUDA_VISIBLE_DEVICES entries: an index, a GPU UUID or a MIG instance; the first entry of any other
# form ends the list (e.g. "0,1,-1,3" shows GPUs 0 and 1 only).
_DEVICE_ENTRY = re.compile(r"^(\d+|GPU-[0-9A-Fa-f-]+|MIG-[0-9A-Za-z/-]+)$")


def parse_gpu_list(text: str) -> str | list[str]:
    """`--gpus` as typed: "all", or comma-separated GPU indices (non-negative integers, no repeats) -> the indices
    as CUDA_VISIBLE_DEVICES values, in increasing order (so that ties of the least-loaded choice go to the lowest
    index). Raises argparse.ArgumentTypeError naming the offending entries."""
    text = text.strip()
    if text.lower() == "all":
        return "all"
    entries = [entry.strip() for entry in text.split(",")]
    bad = [entry for entry in entries if not entry.isdigit()]
    if bad:
        raise argparse.ArgumentTypeError(
            f"GPU indices are non-negative integers separated by commas (or 'all'), got {bad} in {text!r}")
    indices = [int(entry) for entry in entries]
    repeated = sorted({index for index in indices if indices.count(index) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"GPU indices repeat: {repeated} in {text!r}")
    return [str(index) for index in sorted(indices)]


def visible_devices_entries(value: str) -> list[str]:
    """The GPUs a CUDA_VISIBLE_DEVICES value shows, as CUDA reads it: its entries up to the first one that is not a
    device (an empty value or "-1" shows none)."""
    entries = []
    for entry in (part.strip() for part in value.split(",")):
        if not _DEVICE_ENTRY.match(entry):
            break
        entries.append(entry)
    return entries


def _nvidia_smi_gpu_count() -> int | None:
    """GPUs listed by `nvidia-smi -L` ("GPU 0: ..." lines; MIG instances are indented under their GPU), or None
    when nvidia-smi is missing or fails."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in listing.stdout.splitlines() if re.match(r"^GPU \d+:", line))


def _torch_gpu_count() -> int:
    import torch  # last resort: may initialise the CUDA driver in this process

    return torch.cuda.device_count()


def visible_gpus(environ: Mapping[str, str] | None = None, *, use_torch: bool = True,
                 nvidia_smi_count=_nvidia_smi_gpu_count, torch_count=_torch_gpu_count) -> tuple[list[str] | None, str]:
    """(the GPUs this process can see, as the CUDA_VISIBLE_DEVICES value that selects each for a child; where that
    came from). The entries of CUDA_VISIBLE_DEVICES when it is set, else the indices of `nvidia-smi -L`'s GPUs, else
    (with `use_torch`) those of `torch.cuda.device_count()`; (None, why) when none of them answers."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        value = environ["CUDA_VISIBLE_DEVICES"]
        return visible_devices_entries(value), f"CUDA_VISIBLE_DEVICES={value!r}"
    count = nvidia_smi_count()
    if count is not None:
        return [str(index) for index in range(count)], "nvidia-smi -L"
    if not use_torch:
        return None, "no CUDA_VISIBLE_DEVICES and no nvidia-smi"
    return [str(index) for index in range(torch_count())], "torch.cuda.device_count() (no nvidia-smi)"


def resolve_gpus(requested: str | Sequence[str], environ: Mapping[str, str] | None = None, *,
                 nvidia_smi_count=_nvidia_smi_gpu_count, torch_count=_torch_gpu_count) -> tuple[list[str], str]:
    """`--gpus` (parsed by `parse_gpu_list`) -> (the CUDA_VISIBLE_DEVICES value of each GPU to use, a note for the
    plan). "all": every GPU this process sees. Indices: checked against the GPUs this process sees when
    CUDA_VISIBLE_DEVICES or nvidia-smi tells them (an index must be one of CUDA_VISIBLE_DEVICES's entries when that
    is set: the runs may not leave the GPUs given to this command). Raises ValueError naming the problem."""
    if requested == "all":
        found, source = visible_gpus(environ, nvidia_smi_count=nvidia_smi_count, torch_count=torch_count)
        if not found:
            raise ValueError(f"--gpus all found no GPU (from {source})")
        return found, f"all: {len(found)} from {source}"
    requested = list(requested)
    found, source = visible_gpus(environ, use_torch=False, nvidia_smi_count=nvidia_smi_count)
    if found is not None:
        if source.startswith("CUDA_VISIBLE_DEVICES") and any(not entry.isdigit() for entry in found):
            raise ValueError(f"--gpus {','.join(requested)}: this process's {source} names GPUs by UUID; use "
                             "--gpus all, or unset CUDA_VISIBLE_DEVICES and give indices")
        missing = [index for index in requested if index not in found]
        if missing:
            raise ValueError(f"--gpus: GPU(s) {missing} not visible here ({source} shows {found or 'none'})")
    return requested, ""


def _device_options(arguments: Sequence[str]) -> dict[str, str]:
    """The last --device / --feature-device value among the recipe's extra arguments (`--x V` or `--x=V`)."""
    found = {}
    for position, argument in enumerate(arguments):
        for option in ("--device", "--feature-device"):
            if argument == option and position + 1 < len(arguments):
                found[option] = arguments[position + 1]
            elif argument.startswith(option + "="):
                found[option] = argument.partition("=")[2]
    return found


# ------------------------------------------------------------------------------------------------ runner


def run_jobs(jobs: Sequence[Job], parallel: int, *, gpus: Sequence[str] | None = None,
             deadline_minutes: float | None = None, min_start_minutes: float = 0.0,
             deadline_argument: str | None = "--deadline-minutes", poll_seconds: float = 1.0,
             environment: Mapping[str, str] | None = None, print_fn=print) -> list[Job]:
    """Runs `jobs` as subprocesses in order, at most `parallel` at once, or with `gpus` (CUDA_VISIBLE_DEVICES values)
    `parallel` per GPU: each job starts with CUDA_VISIBLE_DEVICES set to the GPU running the fewest jobs (ties: the
    first in `gpus`), kept in `job.gpu`. Without `gpus` the environment's CUDA_VISIBLE_DEVICES is left as it is.

    With `deadline_minutes`, a job starts only while at least `min_start_minutes` are left, and gets the time left
    as `deadline_argument VALUE` (its own deadline). A job is `done` when it exits 0 and its `result` file exists;
    exit status `EXIT_DEADLINE` marks it `deadline` (resumable), any other ending `failed`.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names repeat: {names}")
    if gpus is not None:
        gpus = [str(gpu) for gpu in gpus]
        if not gpus or len(set(gpus)) != len(gpus):
            raise ValueError(f"gpus must be distinct and at least one (None: leave CUDA_VISIBLE_DEVICES alone), got "
                             f"{gpus}")
    slots = parallel * (len(gpus) if gpus else 1)
    load = dict.fromkeys(gpus or (), 0)  # GPU -> jobs running on it
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen, Any, float]] = {}
    by_name = {job.name: job for job in jobs}
    env = dict(os.environ if environment is None else environment, PYTHONUNBUFFERED="1")

    def minutes_left() -> float | None:
        return None if deadline_minutes is None else deadline_minutes - (time.monotonic() - started) / 60

    def finish(job: Job, process: subprocess.Popen, handle, start: float) -> None:
        handle.close()
        job.returncode = process.returncode
        job.seconds = round(time.monotonic() - start, 1)
        if process.returncode == 0 and os.path.isfile(job.result):
            job.status = "done"
        elif process.returncode == EXIT_DEADLINE:
            job.status = "deadline"
        else:
            job.status = "failed"
        if job.gpu is not None:
            load[job.gpu] -= 1
        where = "" if job.gpu is None else f" on GPU {job.gpu}"
        print_fn(f"[{_clock(started)}] {job.name}: {job.status}{where} (exit {process.returncode}) after "
                 f"{job.seconds:.0f} s; log {job.log}", flush=True)

    try:
        while True:
            for name, (process, handle, start) in list(running.items()):
                if process.poll() is not None:
                    del running[name]
                    finish(by_name[name], process, handle, start)
            pending = [job for job in jobs if job.status == "pending"]
            left = minutes_left()
            if left is not None and left < min_start_minutes:
                for job in pending:
                    job.status = "deadline"
                pending = []
            for job in pending[: max(0, slots - len(running))]:
                command = list(job.command)
                left = minutes_left()
                if left is not None and deadline_argument:
                    # rounded down: a child must not believe it has more time than the command
                    command += [deadline_argument, f"{math.floor(left * 1000) / 1000:.3f}"]
                child_env, shown, where = env, "", ""
                if gpus:
                    # With parallel x len(gpus) slots, the least-loaded GPU always has a free one of its own.
                    job.gpu = min(gpus, key=load.__getitem__)
                    load[job.gpu] += 1
                    child_env = dict(env, CUDA_VISIBLE_DEVICES=job.gpu)
                    shown, where = f"CUDA_VISIBLE_DEVICES={job.gpu} ", f" on GPU {job.gpu}"
                os.makedirs(os.path.dirname(os.path.abspath(job.log)), exist_ok=True)
                handle = open(job.log, "w", encoding="utf-8")
                handle.write("$ " + shown + " ".join(command) + "\n")
                handle.flush()
                process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=child_env,
                                           stdin=subprocess.DEVNULL)
                running[job.name] = (process, handle, time.monotonic())
                job.status = "running"
                print_fn(f"[{_clock(started)}] {job.name}: started{where} ({len(running)} running)", flush=True)
            if not running and not [job for job in jobs if job.status == "pending"]:
                return list(jobs)
            time.sleep(poll_seconds)
    except BaseException:
        for process, handle, _ in running.values():  # our own children only
            process.terminate()
        for process, handle, _ in running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            handle.close()
        raise


def _clock(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


# ------------------------------------------------------------------------------------------------ aggregation

def _metric(split: str, system: str, key: str):
    def read(results: Mapping[str, Any]) -> float | None:
        return results.get("splits", {}).get(split, {}).get(system, {}).get(key)

    return read


def _last_validation(key: str):
    """The captioner's last validation value of `key` (e.g. `eval_audio_gain`)."""
    def read(results: Mapping[str, Any]) -> float | None:
        values = [e[key] for e in results.get("audio_gain_curve", []) if key in e]
        return values[-1] if values else None

    return read


def _probe_f1(key: str):
    def read(results: Mapping[str, Any]) -> float | None:
        return ((results.get("encoder_probe") or {}).get("summary") or {}).get(key)

    return read


def _rescoring_gain_percent(results: Mapping[str, Any]) -> float | None:
    gain = results.get("splits", {}).get("test", {}).get("rescoring_gain_cider_d")
    return None if gain is None else 100 * gain


# (column title, function of a results dict -> number or None, decimals shown).
COLUMNS: tuple[tuple[str, Any, int], ...] = (
    ("test CIDEr-D beam", _metric("test", "beam_search", "cider_d"), 3),
    ("test CIDEr-D CLAP", _metric("test", "clap_rescoring", "cider_d"), 3),
    ("rescoring gain %", _rescoring_gain_percent, 1),
    ("event F1 beam", _metric("test", "beam_search", "event_f1"), 3),
    ("event F1 CLAP", _metric("test", "clap_rescoring", "event_f1"), 3),
    ("METEOR CLAP", _metric("test", "clap_rescoring", "meteor"), 3),
    ("BLEU-4 CLAP", _metric("test", "clap_rescoring", "bleu_4"), 3),
    ("ROUGE-L CLAP", _metric("test", "clap_rescoring", "rouge_l"), 3),
    ("count acc. CLAP", _metric("test", "clap_rescoring", "count_accuracy"), 3),
    ("order acc. CLAP", _metric("test", "clap_rescoring", "order_accuracy"), 3),
    ("compos. CIDEr-D CLAP", _metric("compositional", "clap_rescoring", "cider_d"), 3),
    ("compos. event F1 CLAP", _metric("compositional", "clap_rescoring", "event_f1"), 3),
    ("audio gain", _last_validation("eval_audio_gain"), 3),
    ("val CIDEr-D", _last_validation("eval_cider_d"), 3),
    ("training min", lambda results: results.get("training_minutes_built"), 1),
    # Event-type probes (macro F1, mean-pooled) of the captioner's encoder before and after captioner training.
    ("probe F1 enc. start", _probe_f1("captioner_start"), 3),
    ("probe F1 enc. end", _probe_f1("captioner_end"), 3),
)


def find_results(paths: Iterable[str]) -> list[str]:
    """`results.json` files of recipe runs: the paths themselves, or found in the folders given."""
    found = []
    for path in paths:
        if os.path.isfile(path):
            found.append(os.path.abspath(path))
            continue
        if not os.path.isdir(path):
            raise ValueError(f"{path!r} is neither a results.json nor a folder")
        for folder, subfolders, files in os.walk(path):
            subfolders[:] = sorted(d for d in subfolders if d not in ("cache", "model", "evaluation"))
            if "results.json" in files:
                found.append(os.path.abspath(os.path.join(folder, "results.json")))
    return sorted(set(found))


def configuration_label(results: Mapping[str, Any]) -> str:
    """The configuration a run belongs to under today's definitions: its label, unless that names a predefined
    configuration whose knobs the run did not have because the definition changed after it ran (the baseline's
    CLAP candidates were SLAM-AAC's 7 searches, and `single_pass` the alternative, before one beam search's
    hypotheses became the baseline), or a retired one (`RETIRED_CONFIGS`); then the recipe's label of the knobs it
    ran with (`slam`, `fbank+slam`, `baseline`). Knobs that the results do not record are the definition's."""
    label = results["label"]
    definitions = {**RETIRED_CONFIGS, **CONFIGS}
    if label not in definitions:
        return label
    recipe = _load_recipe()
    ran = {knob: value for knob, value in results.get("config", {}).items() if knob in recipe.KNOBS}
    defined = {**recipe.BASELINE, **definitions[label]}
    if label in CONFIGS and all(defined[knob] == value for knob, value in ran.items()):
        return label
    return recipe.run_label({**defined, **ran})


def _finished_as(result_file: str) -> str | None:
    """`configuration_label` of a run's results file (None when it cannot be read as results)."""
    try:
        with open(result_file, encoding="utf-8") as f:
            return configuration_label(json.load(f))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def load_results(files: Sequence[str], print_fn=print) -> list[dict]:
    """Results of recipe runs, each under its `configuration_label`; for the same configuration, seed, size and
    budget scale the newest wins."""
    chosen: dict[tuple, dict] = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            try:
                results = json.load(f)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path!r} is not JSON: {error}") from None
        missing = [k for k in ("label", "config", "splits") if k not in results]
        if missing:
            raise ValueError(f"{path!r} is not a synthetic_gpu.py results file (no {missing})")
        label = configuration_label(results)
        if label != results["label"]:
            print_fn(f"note: {path} ran '{results['label']}' as it was defined then; counted as '{label}' (the knobs "
                     "it ran with)")
            results = {**results, "label": label, "recorded_label": results["label"]}
        config = results["config"]
        key = (results["label"], config.get("seed"), config.get("size"), config.get("budget_scale"))
        results["_path"] = path
        if key in chosen:
            older, newer = sorted([chosen[key], results], key=lambda r: r.get("date", ""))
            print_fn(f"note: {key} appears twice; keeping {newer['_path']} over {older['_path']}")
            results = newer
        chosen[key] = results
    return list(chosen.values())


def mean_and_spread(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation with n - 1; None for one value) of the values that are not None / NaN."""
    clean = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not clean:
        return None, None
    return statistics.fmean(clean), statistics.stdev(clean) if len(clean) > 1 else None


def aggregate(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (configuration, size, budget scale): seeds, n and per column (mean, spread, values)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for results in runs:
        config = results["config"]
        groups.setdefault((results["label"], config.get("size"), config.get("budget_scale")), []).append(results)

    def order(key):
        label = key[0]
        return (list(CONFIGS).index(label) if label in CONFIGS else len(CONFIGS), label, str(key[1]), key[2] or 0)

    rows = []
    for key in sorted(groups, key=order):
        members = sorted(groups[key], key=lambda r: r["config"].get("seed", 0))
        row: dict[str, Any] = {"config": key[0], "size": key[1], "budget_scale": key[2],
                               "seeds": [r["config"].get("seed") for r in members], "n": len(members),
                               "passed": [bool(r.get("passed")) for r in members],
                               "devices": sorted({r.get("device", "?") for r in members}), "columns": {}}
        for title, read, _ in COLUMNS:
            values = [read(r) for r in members]
            mean, spread = mean_and_spread(values)
            row["columns"][title] = {"mean": mean, "spread": spread, "values": values}
        rows.append(row)
    return rows


def _format(mean: float | None, spread: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if spread is None else f"{mean:.{digits}f} ± {spread:.{digits}f}"


def _scale_cell(row: Mapping[str, Any]) -> str:
    """The budget scale, with the size named when it is not the GPU one."""
    return str(row["budget_scale"]) if row["size"] == "gpu" else f"{row['budget_scale']} ({row['size']})"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    titles = [title for title, _, _ in COLUMNS]
    lines = ["| configuration | scale | n (seeds) | " + " | ".join(titles) + " |",
             "|---" * (len(titles) + 3) + "|"]
    for row in rows:
        cells = [_format(row["columns"][title]["mean"], row["columns"][title]["spread"], digits)
                 for title, _, digits in COLUMNS]
        lines.append(f"| {row['config']} | {_scale_cell(row)} | {row['n']} ({', '.join(map(str, row['seeds']))}) | "
                     + " | ".join(cells) + " |")
    devices = sorted({d for row in rows for d in row["devices"]})
    lines += ["", "Mean ± sample standard deviation over seeds (n - 1 denominator; one seed: the value alone). "
              "Test split unless marked compositional; CLAP = CLAP-rescored candidates; rescoring gain = relative "
              "CIDEr-D gain over beam search; audio gain = the captioner's last mismatched- minus true-audio "
              "validation loss (nats/token); val CIDEr-D = its last validation CIDEr-D (during training, beam search on the "
              "validation clips it scores); training min = build minutes of the training stages behind the model "
              "(a shared stage counts in every run using it); probe F1 enc. start / end = macro F1 of a logistic "
              "regression per event type on the mean-pooled encoder outputs (validation clips), for the encoder "
              f"the captioner started from and the one it ended with. Devices: {', '.join(devices)}."]
    return "\n".join(lines) + "\n"


# Columns compared seed by seed with the baseline (the ablation question is "what does this one change do").
PAIRED_COLUMNS = ("test CIDEr-D CLAP", "test CIDEr-D beam", "event F1 CLAP", "compos. CIDEr-D CLAP", "audio gain",
                  "val CIDEr-D")


def paired_deltas(rows: Sequence[Mapping[str, Any]], baseline: str = "baseline") -> list[dict[str, Any]]:
    """Per configuration other than `baseline`: for each of `PAIRED_COLUMNS`, its value minus the baseline's of the
    same seed, size and budget scale (seeds missing on either side are left out): the deltas, their mean and
    sample standard deviation, and on how many seeds the change was better (a higher value)."""
    baselines = {(row["size"], row["budget_scale"]): row for row in rows if row["config"] == baseline}
    paired = []
    for row in rows:
        reference = baselines.get((row["size"], row["budget_scale"]))
        if row["config"] == baseline or reference is None:
            continue
        entry: dict[str, Any] = {"config": row["config"], "size": row["size"], "budget_scale": row["budget_scale"],
                                 "columns": {}}
        for title in PAIRED_COLUMNS:
            ours = dict(zip(row["seeds"], row["columns"][title]["values"]))
            theirs = dict(zip(reference["seeds"], reference["columns"][title]["values"]))
            deltas = [ours[seed] - theirs[seed] for seed in sorted(set(ours) & set(theirs))
                      if ours[seed] is not None and theirs[seed] is not None]
            mean, spread = mean_and_spread(deltas)
            entry["columns"][title] = {"deltas": deltas, "mean": mean, "spread": spread,
                                       "better": sum(d > 0 for d in deltas)}
        paired.append(entry)
    return paired


def paired_markdown(paired: Sequence[Mapping[str, Any]], baseline: str = "baseline") -> str:
    if not paired:
        return ""
    lines = [f"| change vs {baseline} (same seed) | scale | " + " | ".join(PAIRED_COLUMNS) + " |",
             "|---" * (len(PAIRED_COLUMNS) + 2) + "|"]
    for entry in paired:
        cells = []
        for title in PAIRED_COLUMNS:
            column = entry["columns"][title]
            if not column["deltas"]:
                cells.append("-")
                continue
            delta = _format(column["mean"], column["spread"], 3)
            cells.append(f"{'+' if column['mean'] >= 0 else ''}{delta} (better on {column['better']}/{len(column['deltas'])})")
        lines.append(f"| {entry['config']} | {_scale_cell(entry)} | " + " | ".join(cells) + " |")
    lines += ["", f"Mean ± sample standard deviation of the per-seed differences from the {baseline} run of the same "
              "seed (its corpus, features cache and training seed); 'better on k/n': seeds on which the change "
              "scored higher. E.g. the fbank row answers whether CWT features (the baseline) beat fbank."]
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[Mapping[str, Any]], output_dir: str | None, table_path: str | None) -> str:
    table = markdown_table(rows)
    paired = paired_deltas(rows)
    if paired:
        table += "\n" + paired_markdown(paired)
    targets = [p for p in (table_path, os.path.join(output_dir, TABLE_FILE) if output_dir else None) if p]
    for path in targets:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(table)
    if output_dir:
        with open(os.path.join(output_dir, SUMMARY_FILE), "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "paired": paired, "written": datetime.datetime.now().isoformat(timespec="seconds")},
                      f, indent=1, default=str)
    return table


# ------------------------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=None, help="folder for runs/, logs/, cache/ and the table")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated predefined configurations ({','.join(CONFIGS)}; default the issue's: "
                             f"{','.join(ISSUE_CONFIGS)}, or none when --config is given)")
    parser.add_argument("--config", dest="custom_configs", action="append", default=[], metavar="NAME:ITEM[,ITEM]",
                        help="a configuration of your own, run after --configs: recipe knobs (features=fbank, "
                             "encoder_init=scratch, encoder_training=frozen, ...) and sizes (captioner_batch_size=32, "
                             "lora_learning_rate=3e-4: the recipe's --set; values without commas); repeatable")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="a size of every run (the recipe's --set, e.g. test_clips=300), counted in the plan; "
                             "repeatable")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (default 0 1)")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="the recipe's budget scale for every run (steps, time limits, training clips)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="runs at once on the GPU, or on each GPU of --gpus (N x G at once; default 1)")
    parser.add_argument("--gpus", type=parse_gpu_list, default=None, metavar="LIST",
                        help="spread the runs over these GPUs of this host: indices as nvidia-smi numbers them "
                             "(e.g. 0,1,2,3; among CUDA_VISIBLE_DEVICES's entries when that is set), or 'all' = "
                             "every GPU this process sees (the entries of "
                             "CUDA_VISIBLE_DEVICES when set, else the GPUs `nvidia-smi -L` lists, else "
                             "torch.cuda.device_count() as a last resort; the first two leave CUDA uninitialised "
                             "here). Each run starts with CUDA_VISIBLE_DEVICES=<its GPU> (the recipe sees it as "
                             "cuda:0) on the GPU running the fewest runs (ties: the lowest index). Default: unset, "
                             "CUDA_VISIBLE_DEVICES is left as it is (one GPU)")
    parser.add_argument("--deadline-minutes", type=float, default=None,
                        help="no run starts after this (minus --min-start-minutes); runs stop before a stage that "
                             "would end later; the same command again resumes")
    parser.add_argument("--min-start-minutes", type=float, default=1.0,
                        help="start no run with less time than this left before the deadline (default 1)")
    parser.add_argument("--smoke", action="store_true", help="the recipe's CPU smoke size")
    parser.add_argument("--rerun", action="store_true", help="run again configurations that already have results")
    parser.add_argument("--recipe", default=RECIPE,
                        help="the script each run executes (default synthetic_gpu.py beside this one, whose sizes plan "
                             "the runs whatever the script)")
    parser.add_argument("--recipe-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for every run, e.g. --recipe-arg=--set --recipe-arg=lora_steps=600")
    parser.add_argument("--aggregate", nargs="+", default=None, metavar="PATH",
                        help="only aggregate: results.json files or folders holding them (several commands' outputs)")
    parser.add_argument("--table", default=None, help="also write the markdown table here")
    parser.add_argument("--skip-evaluation", action="store_true",
                        help="diagnostic runs: each stops after the captioner and its encoder probe (the recipe's "
                             "--skip-evaluation: no CLAP, no test-split captions), planned without those stages")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the commands, run nothing")
    return parser


def _aggregate_and_print(paths: Sequence[str], output_dir: str | None, table_path: str | None) -> int:
    files = find_results(paths)
    if not files:
        print(f"run_ablations: no results.json under {list(paths)}", file=sys.stderr)
        return 1
    rows = aggregate(load_results(files))
    table = write_table(rows, output_dir, table_path)
    print(f"\n{len(files)} result files\n\n{table}")
    for path in [table_path, os.path.join(output_dir, TABLE_FILE) if output_dir else None]:
        if path:
            print(f"table written to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.aggregate:
        try:
            return _aggregate_and_print(args.aggregate, args.output, args.table)
        except ValueError as error:
            print(f"run_ablations: error: {error}", file=sys.stderr)
            return 2
    problems = []
    if not args.output:
        problems.append("--output is required (or --aggregate PATH ... to only build the table)")
    if args.parallel < 1:
        problems.append(f"--parallel must be >= 1, got {args.parallel}")
    if args.deadline_minutes is not None and not args.deadline_minutes > 0:
        problems.append(f"--deadline-minutes must be > 0, got {args.deadline_minutes}")
    if not os.path.isfile(args.recipe):
        problems.append(f"--recipe {args.recipe!r} does not exist")
    gpus: list[str] | None = None
    gpus_note = ""
    if args.gpus is not None:
        devices = _device_options(args.recipe_arg)
        device = devices.get("--device", "cpu" if args.smoke else "cuda")
        if device == "cpu":
            why = ("--smoke runs the recipe on the CPU" if "--device" not in devices
                   else "--recipe-arg --device cpu runs the recipe on the CPU")
            problems.append(f"--gpus with {why}: nothing to spread over GPUs (smoke sizes on GPUs: add "
                            "--recipe-arg=--device --recipe-arg=cuda)")
        for option, value in devices.items():
            if value.startswith("cuda:") and value != "cuda:0":
                problems.append(f"--gpus with --recipe-arg {option} {value}: each run sees only its own GPU, as "
                                "cuda:0")
        try:
            gpus, gpus_note = resolve_gpus(args.gpus)
        except ValueError as error:
            problems.append(str(error))
    recipe = _load_recipe()
    size = "smoke" if args.smoke else "gpu"
    custom: dict[str, Configuration] = {}
    for text in args.custom_configs:
        try:
            configuration = parse_config(text, recipe.KNOBS, recipe.parse_overrides)
        except ValueError as error:
            problems.append(str(error))
            continue
        if configuration.name in custom:
            problems.append(f"--config {configuration.name!r} is given twice")
        custom[configuration.name] = configuration
    if args.configs is None:
        configs = [] if args.custom_configs else list(ISSUE_CONFIGS)
    else:
        configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    configs += [name for name in custom if name not in configs]
    try:
        planned = plan_runs(configs, args.seeds, custom)
    except ValueError as error:
        problems.append(str(error))
        planned = []
    configurations = {**{name: named_configuration(name) for name in CONFIGS}, **custom}
    if args.skip_evaluation:
        idle = [config for _, config, _ in planned if configurations[config].decoding_only]
        if idle:
            problems.append(f"{sorted(set(idle))} only change the decoding, which --skip-evaluation leaves out")
    worst: dict[str, tuple[float, float]] = {}  # configuration -> (whole run, decoding only), with its sizes
    for config in dict.fromkeys(config for _, config, _ in planned):
        try:
            overrides = recipe.parse_overrides([*args.overrides, *configurations[config].sizes])
            values = recipe.size_values(size, args.budget_scale, overrides)
        except (ValueError, AttributeError) as error:
            problems.append(f"the recipe refuses budget scale {args.budget_scale} with the sizes of {config!r}: "
                            f"{error}")
            continue
        decoding = sum(v for k, v in recipe.stage_minutes(values, size).items() if k in ("save", "evaluate"))
        worst[config] = (recipe.worst_case_minutes(values, size, args.skip_evaluation), decoding)
    if problems:
        for problem in problems:
            print(f"run_ablations: error: {problem}", file=sys.stderr)
        return 2

    output = os.path.abspath(args.output)
    cache_dir = os.path.join(output, "cache")
    cpus = os.cpu_count() or 1
    slots = args.parallel * (len(gpus) if gpus else 1)  # runs at once, over all GPUs
    # Synthesis and feature extraction run while the other runs wait for them (shared stages): all cores. Training
    # stages run side by side, on every GPU: a share of the cores each.
    workers = max(1, min(16, cpus))
    share = max(1, cpus // slots)
    dataloader_workers = max(1, share - 1)
    threads = max(1, min(4, share))
    full_run = max(whole for whole, _ in worst.values())
    decoding_only = max(decoding for _, decoding in worst.values())
    jobs = []
    for name, config, seed in planned:
        run_dir = os.path.join(output, "runs", name)
        configuration = configurations[config]
        jobs.append(Job(
            name=name, log=os.path.join(output, "logs", f"{name}.log"), result=os.path.join(run_dir, "results.json"),
            worst_minutes=worst[config][1] if configuration.decoding_only else worst[config][0],
            command=recipe_command(args.recipe, run_dir, cache_dir, config, seed, budget_scale=args.budget_scale,
                                   smoke=args.smoke, workers=workers, dataloader_workers=dataloader_workers,
                                   threads=threads, configuration=configuration, sizes=args.overrides,
                                   extra=[*(["--skip-evaluation"] if args.skip_evaluation else []), *args.recipe_arg]),
        ))
    for job, (_, config, _) in zip(jobs, planned):
        if not args.rerun and os.path.isfile(job.result):
            ran_as = _finished_as(job.result)
            if ran_as in (None, config):
                job.status = "done"  # an earlier command finished it
            else:  # finished under an older definition of the configuration (e.g. the baseline's candidates)
                print(f"note: {job.result} ran other knobs than '{config}' now has (counted as '{ran_as}'); it runs "
                      "again")
    todo = [job for job in jobs if job.status == "pending"]
    on_gpus = f" on {len(gpus)} GPU{'s' if len(gpus) > 1 else ''}" if gpus else ""
    print(f"{len(jobs)} runs ({len(jobs) - len(todo)} already done), {slots} at a time{on_gpus}; each: {workers} "
          f"processes for synthesis / features, {dataloader_workers if not args.smoke else 0} DataLoader workers, "
          f"{threads} threads; budget scale {args.budget_scale} ({size} sizes)")
    if gpus:
        print(f"GPUs {', '.join(gpus)}{f' ({gpus_note})' if gpus_note else ''}: {args.parallel} slot(s) each; a run "
              "starts with CUDA_VISIBLE_DEVICES=<its GPU> on the GPU running the fewest runs; the stages of one seed "
              f"are shared across GPUs (cache {cache_dir})")
    bounds = f"{worst_case_makespan(todo, slots):.1f} min if no stage were shared"
    if todo and len(todo) <= slots:
        bounds += f", ~{full_run:.1f} min with the sharing (one run's chain)"
    print(f"worst case per run: {full_run:.1f} min building every stage, {decoding_only:.1f} min decoding only; "
          f"makespan: {bounds}" + ("" if args.deadline_minutes is None else f"; deadline {args.deadline_minutes:.1f} min"))
    if args.deadline_minutes is not None and full_run > args.deadline_minutes:
        print(f"note: a run that builds every stage may need up to {full_run:.1f} min (time limits + estimated "
              f"overheads) > the {args.deadline_minutes:.1f}-minute deadline: runs stop (exit 3) before a stage "
              "that could end late, and the same command again continues them")
    for job in jobs:
        print(f"  {job.name:<24} {job.status}")
    if args.dry_run:
        for job in todo:
            print("$ " + " ".join(job.command))
        return 0

    os.makedirs(output, exist_ok=True)
    start = time.monotonic()
    run_jobs(jobs, args.parallel, gpus=gpus, deadline_minutes=args.deadline_minutes,
             min_start_minutes=args.min_start_minutes)
    print(f"\nall runs ended after {(time.monotonic() - start) / 60:.1f} min:")
    for job in jobs:
        print(f"  {job.name:<24} {job.status:<8} {'' if job.returncode is None else f'exit {job.returncode}'}"
              f"{'' if job.gpu is None else f' (GPU {job.gpu})'}")
    unfinished = [job for job in jobs if job.status != "done"]
    if unfinished:
        print(f"{len(unfinished)} run(s) unfinished: run the same command again to continue "
              f"({', '.join(j.name for j in unfinished)}); logs in {os.path.join(output, 'logs')}")
    if any(job.status == "done" for job in jobs):
        _aggregate_and_print([os.path.join(output, "runs")], output, args.table)
    return 0 if not unfinished else (EXIT_DEADLINE if all(j.status in ("done", "deadline") for j in jobs) else 1)


if __name__ == "__main__":
    sys.exit(main())
