"""Sweeps: rows from a grid or a file, validated by the options' declarations before any work; the sweep-wide
threads and profile; a 2x2 sweep end to end on a tiny model (stages run in this process); a sweep through the real
job queue stopped while a stage runs, then rerun; the seed ablation as the predefined sweep."""

import json
import time
from pathlib import Path

import pytest

from ttft.engine import commands
from ttft.engine.experiment import ablation_rows, run_sweep, train_config_for
from ttft.engine.experiment_config import ROWS, AblationConfig, SweepConfig, slug
from ttft.engine.sweep_plan import parse_grid, plan, read_rows_file, resolve, rows_of_json
from ttft.options import ConfigError
from ttft.runs.registry import Job

TASKS = ("00576224", "0c786b71")


def inprocess(argv, module, run_dir):
    """A stage run in this process (``python -m ttft <argv>``), as the finished or failed job the queue returns."""
    from ttft.cli.main import main

    assert module == "ttft"
    t0 = time.time()
    rc = main(list(argv))
    return Job(
        path=Path(run_dir), status="finished" if rc == 0 else "failed", raw={"started": t0, "ended": time.time()}
    )


def test_names_resolve_to_declared_options():
    assert resolve("lr").key == "lr" and resolve("views").key == "views" and resolve("ttft").key == "ttft"
    assert resolve("lora-dropout").key == "train.model.lora_dropout"
    assert resolve("--decode").key == "predict.decode"
    assert resolve("augment.colors").key == "train.augment.colors"
    assert resolve("predict.colors").key == "predict.colors"
    assert resolve("train.profile").key == "train.profile"


@pytest.mark.parametrize(
    "spec, words",
    [
        ("bogus=1,2", ["bogus", "unknown option"]),
        ("colors=none", ["train.augment.colors or predict.colors"]),
        ("seed=0,1", ["seed", "shared by every row"]),
        ("limit=2", ["limit", "shared by every row"]),
        ("train.dataset=x", ["train.dataset", "set by the sweep"]),
        ("lr=1e-4,-1", ["lr", "positive", "'-1'"]),
        ("lr=fast", ["lr", "not a number", "'fast'"]),
        ("steps=10,0", ["steps", "positive integer", "'0'"]),
        ("train.leave_out=3", ["train.leave_out", "one of 1, 2", "3"]),
        ("ttft=maybe", ["ttft", "true or false", "'maybe'"]),
        ("train.scheduler=wavy", ["train.scheduler", "cosine", "'wavy'"]),
        ("lr=1e-4,1e-4", ["lr", "twice"]),
        ("lr", ["NAME=V1,V2"]),
        ("lr=", ["empty value"]),
    ],
)
def test_bad_grids_are_refused_naming_the_option_and_value(spec, words):
    with pytest.raises(ConfigError) as e:
        parse_grid([spec])
    for w in words:
        assert w in str(e.value), (spec, str(e.value))


def test_grid_product_and_row_configs():
    rows = parse_grid(["lr=1e-4,1e-3", "steps=30,60", "augment.transforms=identity|identity,rot90"])
    assert len(rows) == 8 and rows[0].name == "lr=1e-4 steps=30 augment.transforms=identity"
    assert rows[1].options == {"lr": 1e-4, "steps": 30, "train.augment.transforms": ["identity", "rot90"]}
    cfg = SweepConfig(tasks=TASKS, max_task_tokens=None)
    plans = plan(cfg, rows, list(TASKS), Path("/out"))
    p = plans[3]  # lr=1e-4 steps=60 augment.transforms=identity,rot90
    assert p.train.lr == 1e-4 and p.train.steps == 60 and p.train.augment.transforms == ("identity", "rot90")
    assert p.train.seed == 0 and p.train.tasks == TASKS and p.train.logging_steps == 6
    assert p.predict.run == f"/out/rows/{p.folder}/run" and p.predict.views == cfg.views
    assert {q.train.seed for q in plans} == {0} and {q.predict.tasks for q in plans} == {TASKS}
    # a cross-option rule of the training config is checked for the row, before any work
    with pytest.raises(ConfigError, match="row 'train.n2_only=true'.*n2_only"):
        plan(cfg, parse_grid(["train.n2_only=true"]), list(TASKS), Path("/out"))
    with pytest.raises(ConfigError, match="predict is off"):
        plan(SweepConfig(predict=False), parse_grid(["ttft=false,true"]), list(TASKS), Path("/out"))
    base = plan(cfg, parse_grid(["ttft=false"]), list(TASKS), Path("/out"))[0]
    assert base.train is None and base.predict.base_model == "default" and base.predict.run is None


def test_sweep_wide_threads_and_profile_reach_both_stages_unless_the_row_sets_its_own():
    """``threads`` and ``profile`` are declared once for the sweep and go to every row's train and predict stages;
    a row's train.*/predict.* value wins for its stage, a row's own sweep-level value for both."""
    from ttft.core.profiles import profile_values

    cfg = SweepConfig(tasks=TASKS, max_task_tokens=None, threads=2, profile="marc")
    rows = rows_of_json(
        [
            {"name": "plain", "options": {}},
            {"name": "own", "options": {"train.threads": 4, "predict.threads": 1, "predict.profile": "ttft"}},
            {"name": "row-wide", "options": {"threads": 3, "profile": "arc24"}},
        ],
        "rows",
    )
    assert rows[2].options == {"threads": 3, "profile": "arc24"}  # sweep options, not train/predict ones
    plain, own, wide = plan(cfg, rows, list(TASKS), Path("/out"))
    assert plain.train.threads == plain.predict.threads == 2
    assert plain.train.profile == plain.predict.profile == "marc"
    marc_train = profile_values("marc", "train")
    assert plain.train.encoding.prompt == marc_train["encoding"]["prompt"] == "marc"
    assert (plain.predict.views_from, plain.predict.score) == ("marc", "marc")
    assert plain.train.steps == cfg.steps and plain.train.lr == cfg.lr  # the sweep's options over the profile's
    assert (own.train.threads, own.predict.threads) == (4, 1)
    assert own.train.profile == "marc" and own.predict.profile == "ttft" and own.predict.views_from == "task"
    assert (wide.train.threads, wide.predict.threads) == (3, 3)
    assert wide.train.profile == wide.predict.profile == "arc24" and wide.train.encoding.format == "arc24"
    # the defaults leave the stages as they were: no threads (each stage's own default), ttft's definitions
    d = plan(SweepConfig(tasks=TASKS, max_task_tokens=None), rows[:1], list(TASKS), Path("/out"))[0]
    assert (d.train.threads, d.predict.threads, d.train.profile, d.predict.profile) == (0, 0, "ttft", "ttft")
    # the command line, and the predict stage's flags
    argv = ["experiment", "sweep", "--tasks", TASKS[0], "--grid", "lr=1e-4", "--threads", "2", "--profile", "marc"]
    cmd = commands.parse_command(argv)
    assert (cmd.config.threads, cmd.config.profile) == (2, "marc")
    for bad, word in ((["--profile", "bogus"], "profile"), (["--threads", "-1"], "threads")):
        with pytest.raises(ConfigError, match=word):
            commands.parse_command([*argv[:6], *bad])
    with pytest.raises(ConfigError, match="threads"):
        rows_of_json([{"name": "x", "options": {"threads": -1}}], "rows")


def test_rows_file(tmp_path):
    f = tmp_path / "rows.json"
    f.write_text(json.dumps([{"name": "slow", "options": {"lr": 1e-4}}, {"name": "fast", "options": {"lr": "1e-3"}}]))
    assert [(r.name, r.options) for r in read_rows_file(f)] == [("slow", {"lr": 1e-4}), ("fast", {"lr": 1e-3})]
    f.write_text(json.dumps([{"name": "x", "options": {"views": 0}}]))
    with pytest.raises(ConfigError, match=r"rows.json: row 1 \(x\): views: must be a positive integer, got 0"):
        read_rows_file(f)
    f.write_text(json.dumps({"name": "x"}))
    with pytest.raises(ConfigError, match="non-empty JSON list"):
        read_rows_file(f)
    f.write_text("[{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_rows_file(f)
    with pytest.raises(ConfigError, match="no such file"):
        read_rows_file(tmp_path / "none.json")


def test_sweep_command_is_refused_before_any_work(tmp_path):
    out = tmp_path / "exp"
    for argv, words in [
        (["--grid", "lr=1e-4,oops"], ["lr", "oops"]),
        (["--grid", "nonsense=1"], ["nonsense", "unknown"]),
        ([], ["--grid"]),
        (["--grid", "train.leave_out=2", "--preset", "seed-ablation"], ["train.leave_out", "grid sweeps too"]),
    ]:
        with pytest.raises(ConfigError) as e:
            commands.parse_command(["experiment", "sweep", "--tasks", ",".join(TASKS), *argv, "--out", str(out)])
        assert all(w in str(e.value) for w in words), str(e.value)
    assert not out.exists()
    cmd = commands.parse_command(["experiment", "sweep", "--tasks", TASKS[0], "--grid", "lr=1e-4,1e-3"])
    assert isinstance(cmd.config, SweepConfig) and cmd.config.tasks == (TASKS[0],)


def test_seed_ablation_is_the_predefined_sweep():
    """The seed ablation's rows, as the predefined sweep, give the TTFT runs and predictions the rows had before
    (the same TrainConfig as the row definitions, ROWS, built the earlier way)."""
    from ttft.core.augment import AugmentOptions
    from ttft.core.encoding import EncodingConfig
    from ttft.engine.models import ModelConfig
    from ttft.engine.train_config import TrainConfig

    cfg = AblationConfig(tasks=TASKS, max_task_tokens=None, steps=7, lr=3e-3, lora_r=4, seed=5)
    ids = list(TASKS)
    for row, over in ROWS.items():
        got = train_config_for(row, cfg, ids)
        if over is None:
            assert got is None
            continue
        aug = AugmentOptions.from_json({**AugmentOptions(seed=cfg.seed).to_json(), **over.get("augment", {})})
        before = TrainConfig(
            mode="ttft",
            dataset=cfg.dataset,
            tasks=tuple(ids),
            per_task=cfg.per_task,
            task_weighting="task",
            steps=cfg.steps,
            lr=cfg.lr,
            seed=cfg.seed,
            device=cfg.device,
            save_steps=max(cfg.steps, 1000),
            logging_steps=max(1, cfg.steps // 10),
            **{k: over[k] for k in ("leave_out", "n2_only", "keep_original_colors") if k in over},
            model=ModelConfig(base_model=cfg.base_model, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha),
            encoding=EncodingConfig(max_seq_len=cfg.max_seq_len),
            augment=aug,
        ).validate()
        assert got.to_json() == before.to_json(), row
    # the alias and `sweep --preset seed-ablation` plan the same rows
    preset = commands.parse_command(["experiment", "sweep", "--preset", "seed-ablation", "--tasks", ",".join(TASKS)])
    _, rows = commands.sweep_from_args(
        commands._parse(["experiment", "sweep", "--preset", "seed-ablation", "--tasks", ",".join(TASKS)])
    )
    alias = ablation_rows(AblationConfig(tasks=TASKS, max_task_tokens=None))
    assert [r.to_json() for r in rows] == [r.to_json() for r in alias]
    a = plan(AblationConfig(tasks=TASKS, max_task_tokens=None), alias, ids, Path("/o"))
    b = plan(preset.config, rows, ids, Path("/o"))
    assert [(x.train and x.train.to_json(), x.predict.to_json()) for x in a] == [
        (x.train and x.train.to_json(), x.predict.to_json()) for x in b
    ]


def test_two_by_two_sweep_end_to_end(tiny_model, tmp_path):
    """lr x steps on a tiny model and one task: four TTFT runs and predictions, the table, a rerun skips them."""
    from ttft.runs.experiments import results_frame
    from ttft.views.sweepviz import loss_vs_value, swept_options, task_heatmap

    cfg = SweepConfig(tasks=TASKS[:1], max_task_tokens=None, base_model=tiny_model, lora_r=2, views=1, device="cpu")
    rows = parse_grid(["lr=1e-3,1e-2", "steps=1,2"])
    out = tmp_path / "sweep"
    res = run_sweep(cfg, rows, out, progress=lambda m: None, execute=inprocess)
    assert res["status"] == "finished" and res["config"]["rows"] == [r.name for r in rows]
    recs = res["rows"]
    assert list(recs) == ["lr=1e-3 steps=1", "lr=1e-3 steps=2", "lr=1e-2 steps=1", "lr=1e-2 steps=2"]
    for name, r in recs.items():
        assert r["status"] == "finished" and r["n_tasks"] == 1 and r["val_loss"] > 0, name
        assert r["accuracy"] is not None and r["pass_at_2"] is not None and r["train_seconds"] > 0
    assert recs["lr=1e-2 steps=2"]["options"] == {"lr": 1e-2, "steps": 2}
    assert json.loads((out / "rows" / "lr=1e-2-steps=2" / "run" / "config.json").read_text())["lr"] == 1e-2
    results = json.loads((out / "results.json").read_text())
    df = results_frame(results, out)
    assert df["experiment"].tolist() == list(recs)
    assert df["val loss"].tolist() == [recs[n]["val_loss"] for n in recs]
    assert df["tasks better than first row"].isna().tolist() == [True, False, False, False]
    assert all(v in ("0/1", "1/1") for v in df["tasks better than first row"].tolist()[1:])
    table = (out / "results.md").read_text()
    assert "| experiment | val loss | val accuracy | pass@2 | tasks better than first row |" in table
    assert "| lr=1e-2 steps=2 |" in table
    assert swept_options(results) == ["lr", "steps"]
    fig = loss_vs_value(results, "steps", out)
    assert [t.name for t in fig.data] == ["lr=0.001", "lr=0.01"] and list(fig.data[0].x) == [1, 2]
    heat = task_heatmap(results, out)
    assert list(heat.data[0].x) == list(recs) and list(heat.data[0].y) == [TASKS[0]]
    # a rerun into the same folder skips every finished row (no stage runs)
    ran = []
    again = run_sweep(cfg, rows, out, progress=lambda m: None, execute=lambda *a: ran.append(a))
    assert again["status"] == "finished" and not ran and again["rows"] == recs


def test_sweep_without_prediction_takes_the_runs_val_loss(tiny_model, tmp_path):
    cfg = SweepConfig(
        tasks=TASKS, max_task_tokens=None, base_model=tiny_model, lora_r=2, device="cpu", predict=False, steps=1
    )
    seen = []

    def execute(argv, module, run_dir):
        seen.append(argv[0])
        return inprocess(argv, module, run_dir)

    res = run_sweep(
        cfg, rows_of_json([{"name": "one", "options": {}}], "rows"), tmp_path / "s", lambda m: None, execute=execute
    )
    r = res["rows"]["one"]
    assert seen == ["train"] and r["val_loss"] > 0 and r["accuracy"] is None and r["predictions"] is None
    from ttft.runs.experiments import per_task_losses

    losses = per_task_losses(json.loads((tmp_path / "s" / "results.json").read_text()), tmp_path / "s")
    assert sorted(losses.index) == sorted(TASKS) and list(losses.columns) == ["one"]


def test_a_rerun_reads_the_folders_options_and_rows(tmp_path):
    """``experiment sweep --out OUT`` alone (what resuming the experiment runs) takes the saved options and rows;
    ``experiment seed-ablation --out OUT`` reads its saved options (config.json's extra keys are not options)."""
    out = tmp_path / "exp"
    out.mkdir()
    rows = [{"name": "lr=1e-4", "options": {"lr": 1e-4}}, {"name": "lr=1e-3", "options": {"lr": 1e-3}}]
    saved = {**SweepConfig(tasks=TASKS, max_task_tokens=None, steps=9).to_json(), "task_ids": list(TASKS)}
    (out / "config.json").write_text(json.dumps({"experiment": "sweep", **saved, "sweep_rows": rows}))
    cfg, got = commands.sweep_from_args(commands._parse(["experiment", "sweep", "--out", str(out)]))
    assert cfg.steps == 9 and cfg.tasks == TASKS and [r.to_json() for r in got] == rows
    cfg, _ = commands.sweep_from_args(commands._parse(["experiment", "sweep", "--out", str(out), "--steps", "4"]))
    assert cfg.steps == 4
    abl = AblationConfig(tasks=TASKS, max_task_tokens=None, rows=("baseline",)).to_json()
    (out / "config.json").write_text(json.dumps({"experiment": "seed-ablation", **abl, "task_ids": list(TASKS)}))
    assert commands.saved_experiment(out) == abl


def test_sweep_json_prints_a_list_of_rows_with_val_loss(tmp_path, monkeypatch, capsys):
    from ttft.cli.main import main
    from ttft.engine import experiment

    seen = {}

    def fake_run(cfg, rows, out, progress=print, jobs_cfg=None, name="sweep", execute=None):
        seen["rows"] = [r.name for r in rows]
        recs = {r.name: {"experiment": r.name, "val_loss": 1.0 + i, "options": r.options} for i, r in enumerate(rows)}
        return {"config": {**cfg.to_json(), "rows": list(recs)}, "rows": recs, "status": "finished"}

    monkeypatch.setattr(experiment, "run_sweep", fake_run)
    rc = main(
        ["experiment", "sweep", "--grid", "lr=1e-4,1e-3", "--tasks", TASKS[0], "--out", str(tmp_path / "o"), "--json"]
    )
    assert rc == 0 and seen["rows"] == ["lr=1e-4", "lr=1e-3"]
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["val_loss"] for r in res["rows"]] == [1.0, 2.0] and res["rows"][1]["options"] == {"lr": 1e-3}
    rc = main(["experiment", "sweep", "--grid", "lr=1e-4,0", "--tasks", TASKS[0], "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "lr" in err[0] and "'0'" in err[0] and not (tmp_path / "p").exists()


@pytest.mark.slow
def test_stopping_a_real_queued_sweep_then_rerunning_it(tiny_model, tmp_path, monkeypatch, request):
    """Through the real job queue, as the Experiments page launches it (``launch_sweep``): a 2-row sweep (1, 300
    TTFT steps) is stopped while row 2's TTFT stage runs. The experiment and that stage end ``stopped`` (the run with
    its checkpoint), the stage still to come (row 2's prediction) was never queued, row 1's results stay; a rerun
    into the same --out (resuming the experiment's job) skips row 1, resumes row 2's run and finishes."""
    from ttft.runs import jobs, registry
    from ttft.runs.rundir import RunDir, read_json, read_jsonl, safe_name

    root = tmp_path / "runs"
    for k, v in {
        "TTFT_RUNS_DIR": str(root),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TTFT_WARM_WORKER": "0",
    }.items():
        monkeypatch.setenv(k, v)
    jc = registry.JobConfig(runs_dir=str(root), poll_s=0.1, stop_timeout_s=60)

    def leave_nothing_running():  # a failed assertion must not leave the sweep's jobs behind
        for j in registry.list_jobs(jc.root):
            if j.active:
                jobs.stop(j, jc, wait=True, timeout=30)

    request.addfinalizer(leave_nothing_running)
    cfg = SweepConfig(
        tasks=TASKS[:1], max_task_tokens=None, base_model=tiny_model, lora_r=2, views=1, device="cpu", threads=1
    )
    out = tmp_path / "sweep"
    job = commands.launch_sweep(cfg, ["steps=1,300", "train.logging_steps=1"], str(out), jobs_cfg=jc)
    first, second = (f"steps={s} train.logging_steps=1" for s in (1, 300))
    run2 = out / "rows" / "steps=300-train.logging_steps=1" / "run"

    def check_alive():
        j = jobs.get_job(job.path, jc.root)
        assert j.status in ("queued", "running"), (j.status, j.raw, (j.path / "stderr.txt").read_text()[-3000:])

    deadline = time.time() + 480
    while not (run2 / "metrics.jsonl").exists() or not any("loss" in m for m in read_jsonl(run2 / "metrics.jsonl")):
        check_alive()
        assert time.time() < deadline, "row 2's TTFT stage never logged a loss"
        time.sleep(0.2)
    kept = read_json(out / "results.json")["rows"]
    assert list(kept) == [first] and kept[first]["status"] == "finished"
    got = jobs.stop(job, jc, wait=True, timeout=120)
    assert got.status == "stopped", (got.raw, (got.path / "stderr.txt").read_text()[-3000:])
    assert RunDir(out).status()["status"] == "stopped"
    stages = {j.path.name: j for j in registry.list_jobs(jc.root) if j.meta.get("stage")}
    name = lambda row, stage: safe_name(f"{out.name}--{slug(row)}--{stage}")  # noqa: E731
    assert sorted(stages) == sorted([name(first, "train"), name(first, "predict"), name(second, "train")])
    assert stages[name(second, "train")].status == "stopped" and RunDir(run2).status()["status"] == "stopped"
    assert list(run2.glob("**/checkpoint-*")), "the stopped TTFT run saved a checkpoint"
    assert stages[name(first, "train")].status == stages[name(first, "predict")].status == "finished"
    assert not (out / "rows" / "steps=300-train.logging_steps=1" / "predictions").exists()  # never began
    assert read_json(out / "results.json")["rows"] == kept  # nothing finished is lost
    assert (out / "rows" / "steps=1-train.logging_steps=1" / "predictions" / "metrics.json").exists()
    assert read_json(run2 / "config.json")["threads"] == 1  # the sweep's threads reached the stage
    ended = stages[name(first, "train")].raw.get("ended")

    again = jobs.resume(job, jc)
    deadline = time.time() + 480
    while (j := jobs.get_job(again.path, jc.root)).status in ("queued", "running", "stopping"):
        assert time.time() < deadline, "the rerun did not finish"
        time.sleep(0.5)
    assert j.status == "finished", (j.raw, (j.path / "stderr.txt").read_text()[-3000:])
    rows = read_json(out / "results.json")["rows"]
    assert list(rows) == [first, second] and all(r["status"] == "finished" for r in rows.values())
    assert rows[first] == kept[first]  # skipped, not run again
    st = {j.path.name: j for j in registry.list_jobs(jc.root) if j.meta.get("stage")}
    assert st[name(first, "train")].raw.get("ended") == ended
    assert st[name(second, "train")].meta["argv"][:2] == ["train", "--resume"]  # resumed from its checkpoint
    assert RunDir(run2).status()["status"] == "finished"
    assert read_json(out / "rows" / "steps=300-train.logging_steps=1" / "predictions" / "config.json")["threads"] == 1
