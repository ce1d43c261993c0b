"""train/recipes/run_ablations.py over several GPUs (`--gpus`): parsing and resolving the GPU list, the runner's
least-loaded placement and each child's CUDA_VISIBLE_DEVICES (stand-in commands, no GPU needed), and the command
line's plan and errors with a stand-in recipe."""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import textwrap

import pytest
from recipe_modules import load_recipe_module

ablations = load_recipe_module("run_ablations")


def test_gpu_list_parsing():
    assert ablations.parse_gpu_list("0,1,2,3") == ["0", "1", "2", "3"]
    assert ablations.parse_gpu_list(" 3, 1 ") == ["1", "3"]  # sorted: ties of the placement go to the lowest index
    assert ablations.parse_gpu_list("ALL") == "all"
    for text, message in (("1,x", r"got \['x'\]"), ("-1", r"got \['-1'\]"), ("0,,2", r"got \[''\]"),
                          ("", r"got \[''\]"), ("1.5", r"got \['1.5'\]"), ("0,2,0,2", r"repeat: \[0, 2\]")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            ablations.parse_gpu_list(text)


def _never():
    raise AssertionError("must not be asked")


def test_visible_gpus_and_all_resolution(tmp_path, monkeypatch):
    # CUDA_VISIBLE_DEVICES, when set, answers alone (no nvidia-smi, no torch), read as CUDA reads it
    for value, expected in (("2,3", ["2", "3"]), ("1, 3", ["1", "3"]), ("", []), ("-1", []), ("0,1,-1,3", ["0", "1"]),
                            ("GPU-8a1b-22,MIG-3c4d/1/0", ["GPU-8a1b-22", "MIG-3c4d/1/0"])):
        found, source = ablations.visible_gpus({"CUDA_VISIBLE_DEVICES": value}, nvidia_smi_count=_never,
                                               torch_count=_never)
        assert (found, source) == (expected, f"CUDA_VISIBLE_DEVICES={value!r}")
    assert ablations.visible_gpus({}, nvidia_smi_count=lambda: 4, torch_count=_never) == (
        ["0", "1", "2", "3"], "nvidia-smi -L")
    assert ablations.visible_gpus({}, nvidia_smi_count=lambda: None, torch_count=lambda: 2)[0] == ["0", "1"]
    assert ablations.visible_gpus({}, use_torch=False, nvidia_smi_count=lambda: None, torch_count=_never)[0] is None

    assert ablations.resolve_gpus("all", {"CUDA_VISIBLE_DEVICES": "3,1"}, nvidia_smi_count=_never)[0] == ["3", "1"]
    with pytest.raises(ValueError, match="--gpus all found no GPU"):
        ablations.resolve_gpus("all", {"CUDA_VISIBLE_DEVICES": ""})
    with pytest.raises(ValueError, match="--gpus all found no GPU"):
        ablations.resolve_gpus("all", {}, nvidia_smi_count=lambda: None, torch_count=lambda: 0)
    # indices: checked where CUDA_VISIBLE_DEVICES or nvidia-smi tells the GPUs, never by initialising torch
    assert ablations.resolve_gpus(["1", "2"], {"CUDA_VISIBLE_DEVICES": "0,1,2,3"})[0] == ["1", "2"]
    assert ablations.resolve_gpus(["5"], {}, nvidia_smi_count=lambda: None, torch_count=_never)[0] == ["5"]
    with pytest.raises(ValueError, match=r"GPU\(s\) \['0'\] not visible here \(CUDA_VISIBLE_DEVICES='2,3' shows"):
        ablations.resolve_gpus(["0", "3"], {"CUDA_VISIBLE_DEVICES": "2,3"})
    with pytest.raises(ValueError, match=r"\['4'\] not visible here \(nvidia-smi -L shows"):
        ablations.resolve_gpus(["1", "4"], {}, nvidia_smi_count=lambda: 4)
    with pytest.raises(ValueError, match="names GPUs by UUID"):
        ablations.resolve_gpus(["0"], {"CUDA_VISIBLE_DEVICES": "GPU-8a1b"})

    # nvidia-smi -L: GPU lines counted, their MIG instances not
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho '  MIG 1g.10gb Device 0: (UUID: MIG-b)'\n"
                    "echo 'GPU 1: NVIDIA H100 (UUID: GPU-c)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert ablations._nvidia_smi_gpu_count() == 2
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert ablations._nvidia_smi_gpu_count() is None


def _env_job(tmp_path, name, *, seconds=0.0, wait_for=None, marker=None):
    """A stand-in run that records the CUDA_VISIBLE_DEVICES it was given and when it ran; it may first touch
    `marker` and wait (up to 20 s) for the file `wait_for`."""
    result = tmp_path / "runs" / name / "results.json"
    script = textwrap.dedent(f"""
        import json, os, time
        record = {{"start": time.time(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}}
        if {str(marker) if marker else None!r}:
            open({str(marker)!r}, "w").close()
        if {str(wait_for) if wait_for else None!r}:
            give_up = time.time() + 20
            while not os.path.exists({str(wait_for)!r}) and time.time() < give_up:
                time.sleep(0.02)
        time.sleep({seconds})
        record["end"] = time.time()
        os.makedirs({str(result.parent)!r}, exist_ok=True)
        json.dump(record, open({str(result)!r}, "w"))
    """)
    return ablations.Job(name=name, command=[sys.executable, "-c", script], log=str(tmp_path / "logs" / f"{name}.log"),
                         result=str(result))


def _record(job):
    with open(job.result) as f:
        return json.load(f)


EVENT = re.compile(r"^\[\d\d:\d\d\] (\S+): (started|done|failed|deadline) on GPU (\S+) \((\d+ running|exit)")


def test_runner_places_each_run_on_the_least_loaded_gpu(tmp_path):
    e_started = tmp_path / "e-started"
    # b, c and d hold their slots until e has started: e must find GPU 1 full (b, d) and GPU 0 with c alone.
    jobs = [_env_job(tmp_path, "a", seconds=0.1),
            *[_env_job(tmp_path, name, seconds=0.2, wait_for=e_started) for name in "bcd"],
            _env_job(tmp_path, "e", marker=e_started), _env_job(tmp_path, "f"), _env_job(tmp_path, "g")]
    lines = []
    ablations.run_jobs(jobs, 2, gpus=["0", "1"], poll_seconds=0.02, environment=dict(os.environ),
                       print_fn=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert all(job.status == "done" for job in jobs), [(job.name, job.status, open(job.log).read()) for job in jobs]
    placed = {job.name: job.gpu for job in jobs}
    assert [placed[name] for name in "abcd"] == ["0", "1", "0", "1"]  # alternating; ties to the lowest index
    assert placed["e"] == "0"
    for job in jobs:  # each child saw its own GPU alone, and its log says how it was started
        assert _record(job)["gpu"] == job.gpu
        assert open(job.log).read().startswith(f"$ CUDA_VISIBLE_DEVICES={job.gpu} ")

    # Replaying the runner's own start / end lines: every start went to a least-loaded GPU (the lowest index of
    # a tie) and no GPU ever ran more than 2.
    load = {"0": 0, "1": 0}
    events = [EVENT.match(line) for line in lines]
    assert all(events) and len(events) == 2 * len(jobs), lines
    for event in events:
        name, what, gpu, detail = event.groups()
        if what == "started":
            assert gpu == min(load, key=lambda g: (load[g], int(g))), (name, load, lines)
            load[gpu] += 1
            assert load[gpu] <= 2 and detail == f"{sum(load.values())} running"
        else:
            load[gpu] -= 1
    # and from the children's own clocks: at most 2 at once per GPU, 4 in all
    spans = [(_record(job)["start"], _record(job)["end"], job.gpu) for job in jobs]
    for start, _, gpu in spans:
        assert sum(1 for s, e, g in spans if g == gpu and s <= start < e) <= 2
        assert sum(1 for s, e, _ in spans if s <= start < e) <= 4


def test_runner_without_gpus_leaves_cuda_visible_devices_alone(tmp_path):
    inherited = {**os.environ, "CUDA_VISIBLE_DEVICES": "5,6"}
    unset = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    kept, absent, replaced = (_env_job(tmp_path, name) for name in ("kept", "absent", "replaced"))
    lines = []

    def record(*parts, **_):
        lines.append(" ".join(map(str, parts)))

    ablations.run_jobs([kept], 1, poll_seconds=0.02, environment=inherited, print_fn=record)
    ablations.run_jobs([absent], 1, poll_seconds=0.02, environment=unset, print_fn=record)
    ablations.run_jobs([replaced], 1, gpus=["6"], poll_seconds=0.02, environment=inherited, print_fn=record)
    assert [_record(job)["gpu"] for job in (kept, absent, replaced)] == ["5,6", None, "6"]
    assert (kept.gpu, absent.gpu, replaced.gpu) == (None, None, "6")
    assert "kept: started (1 running)" in lines[0] and "on GPU" not in lines[1]
    assert open(kept.log).read().startswith("$ " + sys.executable)
    for gpus in ([], ["1", "1"]):
        with pytest.raises(ValueError, match="gpus must be distinct and at least one"):
            ablations.run_jobs([_env_job(tmp_path, "x")], 1, gpus=gpus)


FAKE_RECIPE = '''
import argparse, json, os
parser = argparse.ArgumentParser()
for name in ("--output", "--seed", "--label", "--budget-scale", "--threads", "--dataloader-workers", "--device"):
    parser.add_argument(name)
parser.add_argument("--smoke", action="store_true")
args, _ = parser.parse_known_args()
os.makedirs(args.output, exist_ok=True)
gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
results = {"label": args.label, "date": "2026-11-27", "device": f"fake GPU {gpu}", "gpu": gpu,
           "threads": args.threads, "config": {"seed": int(args.seed), "size": "smoke" if args.smoke else "gpu",
                                               "budget_scale": float(args.budget_scale)},
           "splits": {"test": {"clap_rescoring": {"cider_d": 1.0}}}}
json.dump(results, open(os.path.join(args.output, "results.json"), "w"))
'''


def test_command_line_over_gpus(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "fake_recipe.py"
    fake.write_text(FAKE_RECIPE)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    output = tmp_path / "ablations"
    argv = ["--output", str(output), "--configs", "baseline,slam", "--seeds", "0", "1", "--gpus", "1,2",
            "--budget-scale", "0.3", "--recipe", str(fake)]
    assert ablations.main(argv) == 0
    out = capsys.readouterr().out
    assert "4 runs (0 already done), 2 at a time on 2 GPUs;" in out and "GPUs 1, 2: 1 slot(s) each" in out
    assert re.search(r"baseline-seed0: started on GPU 1 \(1 running\)", out)
    assert re.search(r"fake GPU 1, fake GPU 2", out)  # the table's devices, as each run recorded its own
    gpus = {}
    for name in ("baseline-seed0", "baseline-seed1", "slam-seed0", "slam-seed1"):
        record = json.loads((output / "runs" / name / "results.json").read_text())
        gpus[name] = record["gpu"]
        assert record["threads"] == "2"  # 4 cores / 2 runs at once (one on each GPU)
        assert (output / "logs" / f"{name}.log").read_text().startswith(f"$ CUDA_VISIBLE_DEVICES={record['gpu']} ")
    assert gpus["baseline-seed0"] == "1" and set(gpus.values()) == {"1", "2"}

    # The plan: the GPUs, the slots, the CPU share over all runs at once, the makespan bound on N x G slots.
    plan = ["--output", str(tmp_path / "plan"), "--configs", "baseline,fbank,qformer", "--seeds", "0", "1",
            "--budget-scale", "0.3", "--dry-run"]
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert ablations.main(plan + ["--parallel", "2"]) == 0
    alone = capsys.readouterr().out
    assert "6 runs (0 already done), 2 at a time; each:" in alone and "GPU" not in alone
    assert all("--threads 4" in line and "--dataloader-workers 7" in line
               for line in alone.splitlines() if line.startswith("$ "))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,0,2,1")
    assert ablations.main(plan + ["--parallel", "2", "--gpus", "all"]) == 0
    spread = capsys.readouterr().out
    assert "6 runs (0 already done), 8 at a time on 4 GPUs;" in spread
    assert "GPUs 3, 0, 2, 1 (all: 4 from CUDA_VISIBLE_DEVICES='3,0,2,1'): 2 slot(s) each" in spread
    assert all("--threads 2" in line and "--dataloader-workers 1" in line
               for line in spread.splitlines() if line.startswith("$ "))
    # 6 runs on 8 slots: each has a slot of its own, the bound is the longest run, and the sharing bound applies;
    # on 2 slots, runs queue
    worst = re.search(r"worst case per run: ([\d.]+) min", spread).group(1)
    assert f"makespan: {worst} min if no stage were shared, ~{worst} min with the sharing" in spread
    unshared = re.search(r"makespan: ([\d.]+) min if no stage were shared", alone).group(1)
    assert float(unshared) > 2 * float(worst) and "with the sharing" not in alone


def test_command_line_gpu_errors(tmp_path, monkeypatch, capsys):
    base = ["--output", str(tmp_path / "out"), "--configs", "baseline", "--seeds", "0", "--dry-run"]
    with pytest.raises(SystemExit) as exit_info:
        ablations.main(base + ["--gpus", "0,0"])
    assert exit_info.value.code == 2 and "argument --gpus: GPU indices repeat: [0]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ablations.main(base + ["--gpus", "0,first"])
    assert "argument --gpus: GPU indices are non-negative integers" in capsys.readouterr().err

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert ablations.main(base + ["--gpus", "all"]) == 2
    assert "--gpus all found no GPU (from CUDA_VISIBLE_DEVICES='')" in capsys.readouterr().err
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert ablations.main(base + ["--gpus", "1,2"]) == 2
    assert "GPU(s) ['2'] not visible here" in capsys.readouterr().err
    # the recipe's smoke size runs on the CPU unless told otherwise
    assert ablations.main(base + ["--gpus", "0,1", "--smoke"]) == 2
    assert "--gpus with --smoke runs the recipe on the CPU" in capsys.readouterr().err
    assert ablations.main(base + ["--gpus", "0,1", "--smoke", "--recipe-arg=--device", "--recipe-arg=cuda"]) == 0
    assert "on 2 GPUs" in capsys.readouterr().out
    assert ablations.main(base + ["--gpus", "0", "--recipe-arg=--device=cpu"]) == 2
    assert "--recipe-arg --device cpu runs the recipe on the CPU" in capsys.readouterr().err
    assert ablations.main(base + ["--gpus", "0,1", "--recipe-arg=--feature-device", "--recipe-arg=cuda:1"]) == 2
    assert "--feature-device cuda:1: each run sees only its own GPU, as cuda:0" in capsys.readouterr().err
