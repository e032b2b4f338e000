"""AppTest of the Experiments page over a synthesised seed-ablation folder."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ttft.engine.experiment import results_frame
from ttft.views.sweepviz import ablation_figure

ROOT = Path(__file__).resolve().parents[1]


def fake_experiment(root: Path) -> Path:
    exp = root / "experiments" / "seed-ablation-test"
    exp.mkdir(parents=True)
    cfg = {
        "experiment": "seed-ablation",
        "dataset": "arc-agi-1/evaluation",
        "rows": ["baseline", "n-1"],
        "steps": 3,
        "views": 2,
        "seed": 0,
        "gpus": 1,
    }
    (exp / "config.json").write_text(json.dumps(cfg))
    (exp / "status.json").write_text(json.dumps({"status": "finished", "rows_done": 2, "n_rows": 2, "n_tasks": 2}))
    rows = {
        "baseline": {
            "experiment": "baseline",
            "status": "finished",
            "val_loss": 1.5,
            "accuracy": 0.0,
            "pass_at_2": 0.0,
            "vote_1": 0.0,
            "correct_pixels": 0.4,
            "train_seconds": 0.0,
            "wall_seconds": 10.0,
            "ttft_seconds_per_task_per_100_steps": None,
        },
        "n-1": {
            "experiment": "n-1",
            "status": "finished",
            "val_loss": 1.1,
            "accuracy": 0.5,
            "pass_at_2": 0.5,
            "vote_1": 0.5,
            "correct_pixels": 0.7,
            "train_seconds": 30.0,
            "wall_seconds": 40.0,
            "ttft_seconds_per_task_per_100_steps": 500.0,
        },
    }
    # per-task losses in each row's predictions (recorded paths are stale: found under rows/<row>/predictions)
    per_task = {"baseline": {"t1": 2.0, "t2": 1.0, "t3": None}, "n-1": {"t1": 1.0, "t2": 1.5, "t3": 0.5}}
    for name, losses in per_task.items():
        rows[name]["predictions"] = f"/nonexistent/{name}/predictions"
        d = exp / "rows" / name / "predictions"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"per_task": {t: {"val_loss": v} for t, v in losses.items()}}))
    (exp / "results.json").write_text(json.dumps({"config": cfg, "rows": rows}))
    return exp


def test_results_frame_and_figure(tmp_path):
    exp = fake_experiment(tmp_path)
    res = json.loads((exp / "results.json").read_text())
    df = results_frame(res)
    assert df["experiment"].tolist() == ["baseline", "n-1"]
    assert df["val loss"].tolist() == [1.5, 1.1]
    assert df["tasks better than baseline"].isna().all()  # predictions not found without the folder
    df = results_frame(res, exp)
    # t1: 2.0 -> 1.0 (-50%), t2: 1.0 -> 1.5 (+50%), t3 has no baseline loss: 1 of 2 better, mean change 0
    assert df["tasks better than baseline"].isna().tolist() == [True, False]
    assert df["tasks better than baseline"].iloc[1] == "1/2"
    assert df["mean loss change per task"].iloc[1] == 0.0
    fig = ablation_figure(res)
    assert [t.name for t in fig.data] == ["val loss", "val accuracy", "pass@2"]
    assert list(fig.data[0].y) == [1.5, 1.1]
    unscored = {**res, "rows": {k: {**r, "accuracy": None, "pass_at_2": None} for k, r in res["rows"].items()}}
    fig = ablation_figure(unscored)  # --no-predict: the val loss alone, no empty share axis
    assert [t.name for t in fig.data] == ["val loss"] and "yaxis2" not in fig.layout


def test_experiments_page_shows_table_chart_and_launch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TTFT_RUNS_DIR", str(tmp_path))
    fake_experiment(tmp_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/5_Experiments.py")
    at.run()
    assert not at.exception, at.exception
    df = at.dataframe[0].value
    assert df["experiment"].tolist() == ["baseline", "n-1"]
    assert any("lower val loss than the baseline: n-1" in c.value for c in at.caption)
    assert df["tasks better than baseline"].tolist()[1] == "1/2"
    per_task = at.dataframe[1].value
    assert set(per_task.columns) >= {"baseline", "n-1"} and len(per_task) == 3
    assert any("experiment seed-ablation" in c.value and "--steps" in c.value for c in at.code)
    assert at.query_params["experiment"] in ("seed-ablation-test", ["seed-ablation-test"])


def test_experiments_page_without_experiments(tmp_path, monkeypatch):
    monkeypatch.setenv("TTFT_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/5_Experiments.py")
    at.run()
    assert not at.exception
    assert any("No experiment" in i.value for i in at.info)


def _sweep_page(tmp_path, monkeypatch):
    monkeypatch.setenv("TTFT_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/5_Experiments.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_sweep_form_builds_the_grid_command_and_launches_it(tmp_path, monkeypatch):
    """The sweep form: swept options from the declarations, their values checked, the rows and the exact command;
    Launch queues that command (the queue is faked: nothing runs)."""
    from ttft.engine import commands
    from ttft.runs.registry import Job

    queued = []

    def fake_enqueue(path, argv, kind, cfg, config, extra=None):
        queued.append(argv)
        return Job(path=path, status="queued")

    monkeypatch.setattr(commands, "_enqueue", fake_enqueue)
    at = _sweep_page(tmp_path, monkeypatch)
    at.multiselect(key="sweep._keys").set_value(["lr", "steps"]).run()
    at.text_input(key="sweep._values.lr").set_value("1e-4,3e-4").run()
    at.text_input(key="sweep._values.steps").set_value("30,60").run()
    assert not at.exception, at.exception
    code = next(c.value for c in at.code if "experiment sweep" in c.value)
    assert "--grid lr=1e-4,3e-4 --grid steps=30,60" in code and "--limit 10" in code
    assert any("4 row(s): lr=1e-4 steps=30; lr=1e-4 steps=60" in c.value for c in at.caption)
    # a bad value is refused naming the option and the value, and Launch is off
    at.text_input(key="sweep._values.steps").set_value("30,0").run()
    assert any("steps" in e.value and "'0'" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="launch_sweep").disabled
    at.text_input(key="sweep._values.steps").set_value("30,60").run()
    at.button(key="launch_sweep").click().run()
    assert not at.exception, at.exception
    assert len(queued) == 1 and queued[0][:2] == ["experiment", "sweep"]
    assert "--grid" in queued[0] and "lr=1e-4,3e-4" in queued[0]
    assert any("Queued as job" in s.value for s in at.success)


def test_sweep_panel_plots_each_swept_value_and_stops_a_running_sweep(tmp_path, monkeypatch):
    import subprocess
    import sys

    from ttft.runs.process import process_start_time

    exp = fake_experiment(tmp_path)
    res = json.loads((exp / "results.json").read_text())
    res["row_options"] = {"baseline": {"lr": 1e-4}, "n-1": {"lr": 1e-3}}
    (exp / "results.json").write_text(json.dumps(res))
    cfg = json.loads((exp / "config.json").read_text())
    (exp / "config.json").write_text(json.dumps({**cfg, "experiment": "sweep"}))
    got = tmp_path / "got-sigterm"  # (its exit status may be reaped by ttft's liveness check: a file says it)
    code = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: "
        f"(pathlib.Path({str(got)!r}).write_text('x'), sys.exit(7))); time.sleep(120)"
    )
    sleeper = subprocess.Popen([sys.executable, "-c", code])
    try:
        status = {"status": "running", "pid": sleeper.pid, "pid_start": process_start_time(sleeper.pid), "n_rows": 3}
        (exp / "status.json").write_text(json.dumps(status))
        at = _sweep_page(tmp_path, monkeypatch)
        keys = [c.proto.id for c in at.get("plotly_chart")]
        assert any("loss_vs_lr" in k for k in keys) and any("task_heatmap" in k for k in keys), keys
        assert any("sweep · status **running**" in c.value for c in at.caption)
        at.button(key="exp_stop").click().run()
        assert not at.exception, at.exception
        assert any("Stopping" in i.value for i in at.info)
        sleeper.wait(timeout=30)
        assert got.exists()  # it got SIGTERM
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait()


def test_compare_two_experiments(tmp_path, monkeypatch):
    import shutil

    exp = fake_experiment(tmp_path)
    shutil.copytree(exp, exp.parent / "sweep-b")
    at = _sweep_page(tmp_path, monkeypatch)
    table = next(d.value for d in at.dataframe if "row" in d.value.columns)
    assert sorted(set(table["experiment"])) == ["seed-ablation-test", "sweep-b"] and len(table) == 4


def test_sweep_form_has_the_sweep_wide_threads_and_profile(tmp_path, monkeypatch):
    """threads and profile, declared once in SweepConfig, appear in the generated form and in the command."""
    at = _sweep_page(tmp_path, monkeypatch)
    at.multiselect(key="sweep._keys").set_value(["lr"]).run()
    at.text_input(key="sweep._values.lr").set_value("1e-4,3e-4").run()
    code = next(c.value for c in at.code if "experiment sweep" in c.value)
    assert "--threads" not in code and "--profile" not in code  # the defaults are not written
    assert at.selectbox(key="sweep.profile").options == ["ttft", "arc24", "marc"]
    at.number_input(key="sweep.threads").set_value(2).run()
    at.selectbox(key="sweep.profile").set_value("marc").run()
    assert not at.exception, at.exception
    code = next(c.value for c in at.code if "experiment sweep" in c.value)
    assert "--threads 2" in code and "--profile marc" in code
    assert any("2 row(s)" in c.value for c in at.caption)  # every row planned with them


def test_the_status_line_names_a_sweep_wide_profile_and_threads():
    from ttft.ui.experiment_view import _status_line

    cfg = {"experiment": "sweep", "dataset": "d", "steps": 3, "views": 1, "seed": 0, "gpus": 1}
    plain = _status_line({"status": "finished"}, {**cfg, "profile": "ttft", "threads": 0})
    assert "profile" not in plain and "thread" not in plain
    named = _status_line({"status": "finished"}, {**cfg, "profile": "marc", "threads": 2})
    assert "profile marc" in named and "2 CPU thread(s)" in named
