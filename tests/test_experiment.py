"""The seed ablation, in miniature: tiny model, 2 tasks, few steps, end to end (train + predict processes)."""

import json
import sys

import pytest
from conftest import CLI_ENV, run_group

from ttft.engine.experiment import train_config_for
from ttft.engine.experiment_config import ROWS, AblationConfig
from ttft.runs.rundir import RunDir

TASKS = "00576224,0c786b71"


def run(cmd, timeout=600, env=None):
    return run_group(cmd, timeout=timeout, env=env)


def test_row_configs_follow_the_seed_experiment():
    cfg = AblationConfig(tasks=("00576224",), max_task_tokens=None)
    n1 = train_config_for("n-1", cfg, ["00576224"])
    geo = train_config_for("n-1 + geometric", cfg, ["00576224"])
    col = train_config_for("n-1 + geometric + colour", cfg, ["00576224"])
    keep = train_config_for("preserve original colours", cfg, ["00576224"])
    n2 = train_config_for("n-2", cfg, ["00576224"])
    assert n1.augment.transforms == ("identity",) and n1.augment.colors == "none" and n1.per_task
    assert len(geo.augment.transforms) == 8 and geo.augment.colors == "none"
    assert col.augment.colors == "keep-bg" and col.keep_original_colors == 0
    assert keep.keep_original_colors == 0.5 and n2.leave_out == 2
    assert {n1.seed, geo.seed, col.seed} == {0} and n1.steps == geo.steps == col.steps
    assert ROWS["baseline"] is None
    # the seed's form: one shared adapter over the tasks, each task drawn with equal weight
    shared = train_config_for("n-1", AblationConfig(tasks=("00576224",), max_task_tokens=None, per_task=False), ["a"])
    assert not shared.per_task and shared.task_weighting == "task" and shared.steps == cfg.steps
    with pytest.raises(ValueError, match="per_task"):
        AblationConfig(per_task="false").validate()
    with pytest.raises(ValueError, match="unknown row"):
        AblationConfig(rows=("bogus",)).validate()


@pytest.mark.slow
def test_miniature_ablation_end_to_end(tiny_model, tmp_path):
    out = tmp_path / "exp"
    # every stage is a job in the runs folder's queue: a runs folder of its own
    r = run(
        [
            sys.executable,
            "-m",
            "ttft",
            "experiment",
            "seed-ablation",
            "--base-model",
            tiny_model,
            "--tasks",
            TASKS,
            "--rows",
            "baseline,n-1,n-1 + geometric + colour",
            "--steps",
            "3",
            "--views",
            "2",
            "--lora-r",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
        ],
        env={**CLI_ENV, "TTFT_RUNS_DIR": str(tmp_path / "runs")},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    rows = res["rows"]
    assert list(rows) == ["baseline", "n-1", "n-1 + geometric + colour"]
    for name, row in rows.items():
        assert row["status"] == "finished" and row["n_tasks"] == 2
        for k in ("val_loss", "accuracy", "pass_at_2", "wall_seconds"):
            assert row[k] is not None, (name, k)
    assert rows["baseline"]["train_seconds"] == 0 and rows["n-1"]["train_seconds"] > 0
    table = (out / "results.md").read_text()
    assert "| n-1 + geometric + colour |" in table and "val loss" in table
    assert RunDir(out).status()["status"] == "finished"
    assert len(list((out / "rows" / "n-1" / "run" / "adapters").iterdir())) == 2


@pytest.mark.slow
def test_sharded_ttft_matches_unsharded_layout(tiny_model, tmp_path):
    common = [
        "--base-model",
        tiny_model,
        "--dataset",
        "arc-agi-1/evaluation",
        "--tasks",
        TASKS + ",0692e18c",
        "--mode",
        "ttft",
        "--per-task",
        "--steps",
        "2",
        "--lora-r",
        "2",
        "--device",
        "cpu",
        "--json",
    ]
    one = run([sys.executable, "-m", "ttft", "train", *common, "--run-dir", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-2000:]
    two = run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "ttft",
            "train",
            *common,
            "--run-dir",
            str(tmp_path / "two"),
        ]
    )
    assert two.returncode == 0, two.stderr[-2000:]
    merged = run([sys.executable, "-m", "ttft", "merge-shards", str(tmp_path / "two"), "--json"])
    assert merged.returncode == 0, merged.stderr[-2000:]
    a, b = RunDir(tmp_path / "one"), RunDir(tmp_path / "two")
    assert sorted(p.name for p in a.adapters_dir.iterdir()) == sorted(p.name for p in b.adapters_dir.iterdir())
    assert len(list(b.adapters_dir.iterdir())) == 3
    keys = lambda run: {k for m in run.metrics() if "loss" in m for k in m}  # noqa: E731
    assert keys(a) == keys(b)
    assert a.status()["status"] == b.status()["status"] == "finished"
    ra, rb = json.loads((a.path / "result.json").read_text()), json.loads((b.path / "result.json").read_text())
    assert set(ra) == set(rb) and ra["steps"] == rb["steps"] == 6
    assert sorted(b.config()["tasks"]) == sorted(a.config()["tasks"])
