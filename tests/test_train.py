"""Training engine: tiny models built in the tests, real Trainer runs on CPU."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import CLI_ENV as ENV
from conftest import ROOT, run_group

from ttft.core.data import Pair, Task
from ttft.runs.rundir import RunDir, read_jsonl

SMALL_TASKS = "00576224,0c786b71"  # arc-agi-1/evaluation, small grids


def run_train(*args, timeout=300, env=None):
    return run_group([sys.executable, "-m", "ttft", "train", *args], timeout=timeout, env=env)


def train_then_sigterm(args: list[str], run_dir) -> tuple[subprocess.Popen, str, str]:
    """Start ``ttft train ARGS``, send SIGTERM once its first loss is logged; the process, its stdout and stderr."""
    p = subprocess.Popen(
        [sys.executable, "-m", "ttft", "train", *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any("loss" in m for m in read_jsonl(run_dir / "metrics.jsonl")):
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    return p, out, err


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def base_args(model, run_dir, *extra):
    return [
        "--base-model",
        model,
        "--dataset",
        "arc-agi-1/evaluation",
        "--tasks",
        SMALL_TASKS,
        "--run-dir",
        str(run_dir),
        "--threads",
        "1",
        "--json",
        *extra,
    ]


def test_loss_falls_on_a_repeated_task(tiny_model, tmp_path):
    """Full fine-tuning, no augmentation, one task: the loss must fall clearly."""
    r = run_train(
        *base_args(
            tiny_model,
            tmp_path / "r",
            "--mode",
            "ttft",
            "--tasks",
            "00576224",
            "--full-finetune",
            "--steps",
            "40",
            "--lr",
            "3e-3",
            "--transforms",
            "identity",
            "--colors",
            "none",
            "--no-shuffle",
            "--val",
            "none",
        )
    )
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    assert out["status"] == "finished" and out["steps"] == 40
    losses = [m["loss"] for m in read_jsonl(tmp_path / "r" / "metrics.jsonl") if "loss" in m]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    assert (tmp_path / "r" / "model" / "config.json").exists()


def test_lora_run_writes_the_run_directory_contract(tiny_model, tmp_path):
    run_dir = tmp_path / "lora"
    r = run_train(
        *base_args(
            tiny_model,
            run_dir,
            "--mode",
            "ttft",
            "--steps",
            "4",
            "--lora-r",
            "4",
            "--lora-alpha",
            "8",
            "--target-modules",
            "q_proj,v_proj",
            "--eval-steps",
            "2",
        )
    )
    assert r.returncode == 0, r.stderr
    out = last_json(r.stdout)
    for k in ("run_dir", "status", "steps", "train_tokens", "train_tokens_per_second", "final_loss", "val_loss"):
        assert k in out
    assert out["status"] == "finished" and out["steps"] == 4 and out["train_tokens"] > 0
    assert out["val_loss"] is not None and out["val_loss"] > 0
    run = RunDir(run_dir)
    cfg = run.config()
    assert cfg["model"]["lora_r"] == 4 and cfg["tasks"] == SMALL_TASKS.split(",")
    man = run.manifest()
    for k in (
        "ttft_version",
        "ttft_commit",
        "python",
        "torch",
        "transformers",
        "peft",
        "dataset",
        "dataset_version",
        "seed",
        "device",
    ):
        assert k in man, k
    assert man["device"] == "cpu" and "arcagi_aa922be" in man["dataset_version"]
    assert run.status()["status"] == "finished"
    steps = [m for m in run.metrics() if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4]
    for m in steps:
        for k in ("step", "loss", "lr", "grad_norm", "tokens_per_second", "elapsed"):
            assert k in m, (k, m)
    assert any("eval_loss" in m for m in run.metrics())
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    acfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert set(acfg["target_modules"]) == {"q_proj", "v_proj"}
    assert "step 4/4" in run.log_file.read_text()


def test_per_task_writes_one_adapter_per_task(tiny_model, tmp_path):
    r = run_train(
        *base_args(tiny_model, tmp_path / "pt", "--mode", "ttft", "--per-task", "--steps", "2", "--lora-r", "2")
    )
    assert r.returncode == 0, r.stderr
    adapters = sorted(p.name for p in (tmp_path / "pt" / "adapters").iterdir())
    assert adapters == sorted(SMALL_TASKS.split(","))
    out = last_json(r.stdout)
    assert out["steps"] == 4
    tasks_logged = {m.get("task") for m in read_jsonl(tmp_path / "pt" / "metrics.jsonl") if "loss" in m}
    assert tasks_logged == set(SMALL_TASKS.split(","))


@pytest.mark.slow
def test_sigterm_stops_with_checkpoint_and_resume_reaches_same_steps(tiny_model, tmp_path):
    run_dir = tmp_path / "stop"
    args = base_args(
        tiny_model,
        run_dir,
        "--mode",
        "ttft",
        "--steps",
        "400",
        "--lora-r",
        "2",
        "--save-steps",
        "1000",
        "--val",
        "none",
    )
    p, out, err = train_then_sigterm(args, run_dir)
    assert p.returncode == 0, err
    res = last_json(out)
    assert res["status"] == "stopped" and 0 < res["steps"] < 400
    run = RunDir(run_dir)
    assert run.status()["status"] == "stopped"
    ckpt = run.last_checkpoint()
    assert ckpt is not None and int(ckpt.name.split("-")[1]) == res["steps"]
    assert (ckpt / "optimizer.pt").exists() and (ckpt / "scheduler.pt").exists()
    # resume: the same run, continued from the checkpoint, ends at the configured step count
    r = run_train("--resume", str(run_dir), "--json", "--threads", "1", timeout=600)
    assert r.returncode == 0, r.stderr
    res2 = last_json(r.stdout)
    assert res2["status"] == "finished" and res2["steps"] == 400
    steps = [m["step"] for m in run.metrics() if "loss" in m]
    assert steps[-1] == 400 and min(s for s in steps if s > res["steps"]) == res["steps"] + 1


def test_torchrun_two_cpu_processes(tiny_model, tmp_path):
    run_dir = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "ttft",
        "train",
        *base_args(
            tiny_model, run_dir, "--mode", "ttft", "--steps", "3", "--lora-r", "2", "--val", "none", "--device", "cpu"
        ),
    ]
    r = run_group(cmd, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = last_json(r.stdout)
    assert out["status"] == "finished" and out["steps"] == 3
    assert RunDir(run_dir).manifest()["world_size"] == 2
    assert (run_dir / "adapter" / "adapter_config.json").exists()


def test_stopping_a_torchrun_per_task_stage_ends_stopped(tiny_model, tmp_path):
    """An experiment's `--gpus 2` TTFT stage is `python -m torch.distributed.run … ttft train --per-task`: a stop
    (SIGTERM to torchrun, which passes it on and exits 1 with a SignalException) ends the job `stopped`, with the
    shards' checkpoints, not `failed`."""
    from ttft.runs import jobs, registry

    cfg = registry.JobConfig.from_env(runs_dir=str(tmp_path / "runs"))
    run_dir = tmp_path / "runs" / "pt-run"
    argv = ["--standalone", "--nproc-per-node", "2", "-m", "ttft", "train"]
    argv += base_args(tiny_model, run_dir, "--mode", "ttft", "--per-task", "--steps", "400", "--lora-r", "2")
    argv += ["--save-steps", "1000", "--val", "none", "--device", "cpu"]
    job = jobs.enqueue_stage(argv, "pt-stage", "cpu", cfg, run_dir=run_dir, module="torch.distributed.run")
    deadline = time.time() + 180
    while time.time() < deadline and not any(
        "loss" in m for f in run_dir.glob("shard-*/**/metrics.jsonl") for m in read_jsonl(f)
    ):
        assert jobs.get_job(job.path, cfg.root).status in ("queued", "running"), (job.path / "stderr.txt").read_text()
        time.sleep(0.2)
    got = jobs.stop(job.path, cfg, wait=True, timeout=120)
    assert got.status == "stopped", (got.raw, (job.path / "stderr.txt").read_text()[-2000:])
    assert "error" not in got.raw
    assert list(run_dir.glob("shard-*/**/checkpoint-*")), "the shards saved their checkpoints on the stop"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--dataset", "arc-agi-9/training"], "arc-agi-9/training"),
        (["--tasks", "nosuchtask"], "unknown task id(s) nosuchtask"),
        (["--lr", "-1"], "lr: must be a positive number, got -1.0"),
        (["--lr", "0"], "lr: must be a positive number, got 0.0"),
        (["--steps", "0"], "steps: must be a positive integer, got 0"),
        (["--steps", "-5"], "steps: must be a positive integer, got -5"),
        (["--target-modules", "q_proj,nope_proj"], "unknown target module(s) nope_proj"),
        (["--base-model", "/no/such/model/folder"], "model folder '/no/such/model/folder' does not exist"),
        (["--device", "tpu"], "device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
        (["--base-model", "no-such-org/no-such-model"], "cannot load model 'no-such-org/no-such-model'"),
    ],
)
def test_bad_options_rejected_before_any_work(tiny_model, tmp_path, extra, message):
    args = base_args(tiny_model, tmp_path / "bad", "--mode", "ttft", "--steps", "2") + extra
    r = run_train(*args, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "bad").exists()


def test_run_dir_holding_a_different_run_is_refused(tiny_model, tmp_path):
    run_dir = tmp_path / "same"
    r = run_train(*base_args(tiny_model, run_dir, "--mode", "ttft", "--steps", "1", "--lora-r", "2", "--val", "none"))
    assert r.returncode == 0, r.stderr
    before = (run_dir / "config.json").read_text()
    r = run_train(*base_args(tiny_model, run_dir, "--mode", "ttft", "--steps", "2", "--lora-r", "2", "--val", "none"))
    assert r.returncode == 2 and "already holds a different run" in r.stderr and "steps" in r.stderr
    assert (run_dir / "config.json").read_text() == before


def test_sample_stream_is_deterministic_and_never_uses_test_outputs():
    import numpy as np

    from ttft.core.leaveout import leave_one_out
    from ttft.engine.samples import SampleStream
    from ttft.engine.train_config import TrainConfig

    a, b, c = (np.full((2, 2), k, np.uint8) for k in (1, 2, 3))
    secret = np.full((2, 2), 9, np.uint8)
    task = Task("t", (Pair(a, b), Pair(b, c), Pair(c, a)), (Pair(a, secret),))
    cfg = TrainConfig(tasks=("t",))
    s1 = SampleStream(leave_one_out(task), "ttft", 30, cfg, None)
    s2 = SampleStream(leave_one_out(task), "ttft", 30, cfg, None)
    for i in range(30):
        f = s1[i]
        assert f == s2[i]
        assert f["input_ids"] and any(x != -100 for x in f["labels"])
    # 9 never appears (colour permutations keep 0 fixed and map 9 to some colour, so check the raw stream without
    # colours): with identity augmentation no sample contains the secret test output colour
    from ttft.core.augment import AugmentOptions

    cfg2 = TrainConfig(tasks=("t",), augment=AugmentOptions(transforms=("identity",), colors="none", shuffle=False))
    from ttft.core.tokenizer import VOCAB

    nine = VOCAB["9"]
    s3 = SampleStream(leave_one_out(task), "ttft", 20, cfg2, None)
    assert all(nine not in s3[i]["input_ids"] for i in range(20))


def test_embedded_model_and_tokenizer_load_offline_from_the_package():
    from ttft.engine.models import (
        EMBEDDED_MODEL_DIR,
        ModelConfig,
        embedded_model_available,
        load_model,
        load_tokenizer_for,
    )

    if not embedded_model_available():
        pytest.fail(f"the embedded model is missing from {EMBEDDED_MODEL_DIR}")
    tok = load_tokenizer_for(ModelConfig())
    model = load_model(ModelConfig())
    assert model.config.vocab_size == len(tok)
    size = sum(f.stat().st_size for f in EMBEDDED_MODEL_DIR.rglob("*") if f.is_file())
    assert size <= 16 * 1024 * 1024, size


def test_leave_two_out_and_keep_original_colors_streams():
    import numpy as np

    from ttft.core.augment import AugmentOptions
    from ttft.core.leaveout import leave_two_out
    from ttft.core.tokenizer import VOCAB
    from ttft.engine.samples import SampleStream
    from ttft.engine.train_config import TrainConfig

    grids = [np.full((2, 2), k, np.uint8) for k in (1, 2, 3, 4)]
    task = Task("t", tuple(Pair(grids[i], grids[(i + 1) % 4]) for i in range(3)), (Pair(grids[3], None),))
    n2 = leave_two_out(task)
    assert len(n2) == 3 and all(len(t.train) == 1 and len(t.test) == 2 for t in n2)
    cfg = TrainConfig(
        leave_out=2,
        augment=AugmentOptions(transforms=("identity",), colors="all", shuffle=False),
        keep_original_colors=1.0,
    )
    s = SampleStream(n2, "ttft", 10, cfg, None)
    out_marker = VOCAB["<output>"]
    for i in range(10):
        ids = s[i]["input_ids"]
        assert ids.count(out_marker) == 2  # one example + the test
        # keep_original_colors=1.0: colours never permuted, so only colours 1-4 occur
        digits = {t - VOCAB["0"] for t in ids if VOCAB["0"] <= t <= VOCAB["9"]}
        assert digits <= {1, 2, 3, 4}
    with pytest.raises(Exception, match="leave_out: must be one of 1, 2"):
        TrainConfig(leave_out=3).validate()


def test_balanced_shards_cover_every_task_once_and_even_out_the_work():
    from ttft.core.selection import select_tasks
    from ttft.engine.shards import balanced_shards

    _, tasks = select_tasks("arc-agi-1/evaluation", (), 1200)
    cost = {t.id: t.stats().tokens + 300 for t in tasks}
    for world in (1, 2, 3, 8):
        shards = balanced_shards(tasks, world)
        assert len(shards) == world
        flat = [i for s in shards for i in s]
        assert sorted(flat) == sorted(cost)  # every task exactly once
        loads = [sum(cost[i] for i in s) for s in shards]
        assert max(loads) - min(loads) <= max(cost.values())  # LPT bound: within one task's cost
        assert balanced_shards(tasks, world) == shards  # every rank computes the same split
    # round-robin by id would put the two long tasks of this set on one rank
    small = [t for t in tasks if t.id in {"00576224", "0692e18c", "03560426", "0bb8deee"}]
    ids = sorted(t.id for t in small)
    rr = sorted(sum(cost[i] for i in ids[r::2]) for r in range(2))
    assert rr[1] / rr[0] > 2
    loads = sorted(sum(cost[i] for i in s) for s in balanced_shards(small, 2))
    assert loads[1] / loads[0] < 1.2


def test_per_task_adapter_does_not_depend_on_the_other_tasks(tiny_model, tmp_path):
    """Each task's adapter is seeded from the run seed and its id: training it alone or after another task gives the
    same weights (issue 14: order independence, also what makes --gpus N shards reproducible)."""
    from safetensors.torch import load_file

    alone = run_train(
        *base_args(
            tiny_model,
            tmp_path / "alone",
            "--per-task",
            "--steps",
            "3",
            "--lora-r",
            "2",
            "--tasks",
            "0c786b71",
            "--val",
            "none",
        )
    )
    both = run_train(
        *base_args(
            tiny_model,
            tmp_path / "both",
            "--per-task",
            "--steps",
            "3",
            "--lora-r",
            "2",
            "--tasks",
            "00576224,0c786b71",
            "--val",
            "none",
        )
    )
    assert alone.returncode == 0 and both.returncode == 0, alone.stderr + both.stderr
    a = load_file(tmp_path / "alone" / "adapters" / "0c786b71" / "adapter_model.safetensors")
    b = load_file(tmp_path / "both" / "adapters" / "0c786b71" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    other = load_file(tmp_path / "both" / "adapters" / "00576224" / "adapter_model.safetensors")
    assert max(float((a[k] - other[k]).abs().max()) for k in a) > 1e-6, "tasks get their own seeds"


def test_per_task_results_record_val_loss_before_and_after(tiny_model, tmp_path):
    r = run_train(*base_args(tiny_model, tmp_path / "pt", "--per-task", "--steps", "2", "--lora-r", "2"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "pt" / "result.json").read_text())
    assert set(res["per_task"]) == set(SMALL_TASKS.split(","))
    for row in res["per_task"].values():
        assert row["steps"] == 2 and row["val_loss_before"] > 0 and row["val_loss"] > 0 and row["seconds"] > 0
    before = [row["val_loss_before"] for row in res["per_task"].values()]
    assert res["val_loss_before"] == pytest.approx(sum(before) / len(before))
    lines = [m for m in read_jsonl(tmp_path / "pt" / "metrics.jsonl") if "val_loss_before" in m]
    assert {m["task"] for m in lines} == set(SMALL_TASKS.split(",")) and all(m["step"] in (0, 2) for m in lines)


def test_a_per_task_run_resumed_mid_task_keeps_that_task_s_val_loss_before(tiny_model, tmp_path):
    """Stopped during its first task and resumed, a per-task run still reports every task's val loss before TTFT
    (the interrupted task's was logged when it started), so the run's mean covers every task."""
    run_dir = tmp_path / "pt-resume"
    args = base_args(tiny_model, run_dir, "--per-task", "--steps", "40", "--lora-r", "2", "--save-steps", "1000")
    p, _, err = train_then_sigterm(args, run_dir)
    assert p.returncode == 0, err
    first = json.loads((run_dir / "status.json").read_text())
    assert first["status"] == "stopped", first
    r = run_train("--resume", str(run_dir), "--json", "--threads", "1", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((run_dir / "result.json").read_text())
    assert set(res["per_task"]) == set(SMALL_TASKS.split(","))
    before = [row["val_loss_before"] for row in res["per_task"].values()]
    assert all(b is not None and b > 0 for b in before), res["per_task"]
    assert res["val_loss_before"] == pytest.approx(sum(before) / len(before))


def test_a_run_in_which_no_sample_fits_is_refused_before_any_work(tiny_model, tmp_path):
    r = run_train(*base_args(tiny_model, tmp_path / "tiny", "--max-seq-len", "8", "--steps", "2"))
    assert r.returncode == 2
    assert "encoding.max_seq_len: no training sample of the 2 selected task(s) fits in 8 tokens" in r.stderr
    assert not (tmp_path / "tiny").exists(), "nothing is written for a run that cannot train"
