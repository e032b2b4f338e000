"""AppTest of the Fine-tune page: the options form and its command, validation, launch into a temporary runs folder,
the runs list and the run panel (queued, failed, lost; clone config; delete with confirmation; config files); per-task
runs as per-task results (curves, table, means), status labels, times over resumed segments, the log's newest lines,
the Predict link."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ttft.engine import commands
from ttft.engine.train_config import TrainConfig
from ttft.runs import jobs, process, registry, rundir
from ttft.runs.rundir import read_json, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/3_Fine-tune.py"
TASKS = "00576224,0c786b71"


@pytest.fixture
def model_dir(tmp_path) -> str:
    """A folder the form accepts as a local model (launched jobs here never get to load it: the slot is held)."""
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return str(d)


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("TTFT_RUNS_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield root
    for j in registry.list_jobs(root):
        if j.active and j.meta.get("argv"):
            jobs.stop(j, registry.JobConfig(runs_dir=str(root)), wait=True, timeout=10)


def page(**params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(PAGE)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def fill(at: AppTest, model: str, steps: int = 7) -> AppTest:
    at.radio(key="ft.base_src").set_value("local folder").run()  # the folder field is enabled by the choice
    at.text_input(key="ft.model.base_model").set_value(model)
    at.text_input(key="ft.tasks").set_value(TASKS)
    at.selectbox(key="ft.device").set_value("cpu")
    at.number_input(key="ft.steps").set_value(steps)
    return at.run()


def command(at: AppTest) -> str:
    return next(c.value for c in at.code if c.value.startswith("python -m ttft train"))


def fake_run(root: Path, name: str, status: dict, cfg: TrainConfig | None = None) -> Path:
    d = root / name
    d.mkdir()
    write_json_atomic(d / "config.json", (cfg or TrainConfig()).to_json())
    write_json_atomic(d / "status.json", status)
    return d


def test_form_gives_the_exact_command_and_validates_before_launch(runs, model_dir):
    at = page()
    assert not at.exception, at.exception
    assert "Fine-tune" in at.title[0].value
    assert any("No runs yet" in i.value for i in at.info)
    # every option of the config dataclasses has a widget (generated from their fields)
    from ttft.options import flat_options

    keys = {
        w.key
        for kind in ("text_input", "number_input", "selectbox", "multiselect", "checkbox", "radio")
        for w in getattr(at, kind)
    }
    missing = [
        "ft." + o.path for o in flat_options(TrainConfig) if "ft." + o.path not in keys and o.path not in ("dataset",)
    ]
    assert not missing, missing
    at = fill(at, model_dir)
    cmd = command(at)
    assert cmd.startswith(
        f"python -m ttft train --mode ttft --dataset arc-agi-1/evaluation --tasks {TASKS} "
        f"--base-model {model_dir} --steps 7 --lr 0.0001"
    ), cmd
    assert "--device cpu" in cmd
    cfg, _, _ = commands.parse_train_argv(cmd.split()[3:])
    assert cfg.steps == 7 and cfg.tasks == tuple(TASKS.split(",")) and cfg.model.base_model == model_dir
    assert any("2 of 400 tasks" in c.value for c in at.caption)
    assert not at.button(key="ft_launch").disabled
    # a bad lr: the error names the field, and nothing can be launched
    at.text_input(key="ft.lr").set_value("-0.001").run()
    assert any(e.value.startswith("lr: must be a positive number") for e in at.error), [e.value for e in at.error]
    assert at.button(key="ft_launch").disabled
    at.text_input(key="ft.lr").set_value("fast").run()
    assert any("lr: not a number: 'fast'" in e.value for e in at.error)
    at.text_input(key="ft.lr").set_value("3e-4").run()
    assert not at.error and "--lr 0.0003" in command(at)
    at.text_input(key="ft.tasks").set_value("00576224,nope").run()
    assert any("tasks: unknown task id(s) nope" in e.value for e in at.error)
    at.text_input(key="ft.tasks").set_value("").run()
    at.number_input(key="ft.max_task_tokens").set_value(300).run()
    assert not at.error and "--max-task-tokens 300" in command(at)
    # every option has a flag now (an option without one would make the command read a config file: see
    # test_options.py)
    at.number_input(key="ft.save_total_limit").set_value(5).run()
    assert "--save-total-limit 5" in command(at)


def test_launch_into_the_runs_folder_then_queue_position_and_stop(runs, model_dir):
    held = process.try_acquire_slot(runs, "cpu", 1, holder="test")  # keep the job queued: no training in this test
    try:
        at = fill(page(), model_dir)
        at.text_input(key="ft_name").set_value("apptest")
        at.button(key="ft_launch").click().run()
        assert not at.exception, at.exception
        launched = [j for j in registry.list_jobs(runs)]
        assert len(launched) == 1 and launched[0].id.endswith("-apptest") and launched[0].status == "queued"
        rid = launched[0].id
        assert any(f"Launched {rid}" in s.value for s in at.success)
        table = at.dataframe[0].value
        row = table[table["run"] == rid].iloc[0]
        assert "queued" in row["status"] and row["queue"] == "#1"
        assert at.selectbox(key="ft_run").value == rid
        assert any("Queued: position 1 for the cpu slot" in i.value for i in at.info)
        assert read_json(runs / rid / rundir.JOB_FILE)["config"]["steps"] == 7
        at.button(key="ft_stop").click().run()
        assert registry.get_job(runs / rid).status == "stopped"
        at.run()
        assert "stopped" in at.dataframe[0].value.iloc[0]["status"]
        assert at.button(key="ft_resume").disabled is False and at.button(key="ft_stop").disabled
    finally:
        os.close(held[0])


def test_clone_config_and_delete_with_confirmation(runs):
    cfg = TrainConfig(lr=0.003, steps=42, mode="finetune", dataset="arc-agi-1/training", max_task_tokens=500)
    d = fake_run(
        runs,
        "20250101-000000-old",
        {"status": "finished", "step": 42, "max_steps": 42, "final_loss": 0.5, "ended": time.time()},
        cfg,
    )
    at = page(run="20250101-000000-old")
    assert at.selectbox(key="ft_run").value == "20250101-000000-old"
    assert at.query_params["run"] == "20250101-000000-old"
    at.button(key="ft_clone").click().run()
    assert at.text_input(key="ft.lr").value == "0.003" and at.number_input(key="ft.steps").value == 42
    assert at.selectbox(key="ft.mode").value == "finetune" and at.number_input(key="ft.max_task_tokens").value == 500
    assert at.selectbox(key="ft.dataset_src").value == "arc-agi-1/training"
    assert any("config of 20250101-000000-old" in s.value for s in at.success)
    at.button(key="ft_delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning) and d.exists()
    at.button(key="ft_delete_no").click().run()
    assert not any("cannot be undone" in w.value for w in at.warning) and d.exists()
    at.button(key="ft_delete").click().run()
    at.button(key="ft_delete_yes").click().run()
    assert not d.exists() and any("Deleted 20250101-000000-old" in s.value for s in at.success)
    assert any("No runs yet" in i.value for i in at.info)


def test_failed_and_lost_runs_explain_themselves(runs):
    fake_run(
        runs,
        "20250101-000001-failed",
        {
            "status": "failed",
            "error": "ValueError: boom",
            "step": 3,
            "traceback": "Traceback (most recent call last):\n  File x\nValueError: boom\n",
        },
    )
    lost = fake_run(
        runs,
        "20250101-000002-lost",
        {"status": "running", "pid": 2**22 + 3, "pid_start": 1.0, "step": 5, "max_steps": 10},
    )
    (lost / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (lost / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")  # a complete checkpoint
    at = page(run="20250101-000001-failed")
    assert any(e.value == "Failed: ValueError: boom" for e in at.error)
    assert any("ValueError: boom" in c.value and "Traceback" in c.value for c in at.code)
    at.selectbox(key="ft_run").set_value("20250101-000002-lost").run()
    assert any(w.value.startswith("Lost: process") and "checkpoint-4" in w.value for w in at.warning)
    assert at.button(key="ft_resume").disabled is False
    statuses = dict(zip(at.dataframe[0].value["run"], at.dataframe[0].value["status"]))
    assert "lost" in statuses["20250101-000002-lost"] and "failed" in statuses["20250101-000001-failed"]


def test_config_saved_to_and_loaded_from_a_path(runs, tmp_path, model_dir):
    at = fill(page(), model_dir, steps=11)
    target = tmp_path / "cfgs" / "mine.json"
    at.text_input(key="ft_cfg_path").set_value(str(target))
    at.button(key="ft_cfg_save").click().run()
    saved = json.loads(target.read_text())
    assert saved["steps"] == 11 and saved["model"]["base_model"] == model_dir
    at.number_input(key="ft.steps").set_value(99).run()
    at.button(key="ft_cfg_load").click().run()
    assert at.number_input(key="ft.steps").value == 11 and at.radio(key="ft.base_src").value == "local folder"
    target.write_text("{not json")
    at.button(key="ft_cfg_load").click().run()
    assert any(str(target) in e.value for e in at.error)


# --------------------------------------------------------------------------- per-task runs and status labels (issue 12)

PT_TASKS = ("00576224", "0c786b71")


def per_task_metrics(steps: int = 4, t0: float = 1000.0, before: bool = True, tasks=PT_TASKS) -> list[dict]:
    """metrics.jsonl of a per-task run as train writes it: per task its training lines (``task``, ``task_step``, a
    global ``step``), an eval line during training, the end-of-task eval (``final``); with ``before`` the task's
    first eval line carries ``val_loss_before`` (the val loss of the untrained model)."""
    out, g, t = [], 0, t0
    for k, task in enumerate(tasks):
        start = t
        first_eval = {"val_loss_before": 1.5 + k} if before else {}
        for s in range(1, steps + 1):
            t += 1.0
            out.append(
                {
                    "step": g + s,
                    "time": t,
                    "elapsed": t - start,
                    "loss": 2.0 / s + k,
                    "lr": 1e-4 * (1 - s / (2 * steps)),
                    "task": task,
                    "task_step": s,
                    "tokens_per_second": 100.0,
                }
            )
        out.append(
            {
                "step": g + steps,
                "time": t,
                "elapsed": t - start,
                "eval_loss": 0.5 + k,
                "task": task,
                "task_step": steps,
                **first_eval,
            }
        )
        t += 0.5
        out.append({"step": g + steps, "time": t, "eval_loss": 0.4 + k, "final": True, "task": task})
        g, t = g + steps, t + 2.0
    return out


def write_metrics(d: Path, rows: list[dict]) -> None:
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def chart_spec(at: AppTest) -> dict:
    """The loss chart as sent to the browser, its arrays decoded (plotly sends numpy arrays as base64)."""
    import base64

    import numpy as np

    def arr(v):
        if isinstance(v, dict) and "bdata" in v:
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
        return list(v)

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    for t in spec["data"]:
        t["x"], t["y"] = arr(t.get("x", [])), arr(t.get("y", []))
    return spec


def metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def no_emoji(text: str) -> bool:
    """Only characters every font has (Latin, punctuation, the middle dot, dashes, arrows): no emoji."""
    return all(ord(ch) < 0x2190 for ch in text)


def test_per_task_run_reads_as_per_task_results(runs):
    cfg = TrainConfig(per_task=True, steps=4, tasks=PT_TASKS)
    d = fake_run(
        runs,
        "20250101-000000-pertask",
        {
            "status": "finished",
            "step": 8,
            "max_steps": 8,
            "val_loss": 0.9,
            "final_loss": 1.5,
            "started": 1000.0,
            "ended": 1013.0,
        },
        cfg,
    )
    write_metrics(d, per_task_metrics())
    at = page(run="20250101-000000-pertask")
    assert not at.exception, at.exception
    # a table per task: steps, final train loss, val loss before and after TTFT, the change, the time
    table = next(df.value for df in at.dataframe if list(df.value.columns)[:2] == ["task", "state"])
    assert list(table["task"]) == list(PT_TASKS) and list(table["state"]) == ["done", "done"]
    assert list(table.columns) == [
        "task",
        "state",
        "steps",
        "train loss",
        "val loss before",
        "val loss after",
        "change",
        "time",
    ]
    assert list(table["steps"]) == ["4/4", "4/4"] and list(table["train loss"]) == [0.5, 1.5]
    assert list(table["val loss before"]) == [1.5, 2.5] and list(table["val loss after"]) == [0.4, 1.4]
    assert table["change"].round(6).tolist() == [-1.1, -1.1] and list(table["time"]) == ["0:04", "0:04"]
    # the summary states means over tasks, and says so; the panel's val loss is that mean (as the runs table's)
    assert any(
        "Means over the 2 of 2 tasks done" in md.value
        and "1.5000" not in md.value.split("**")[0]
        and "val loss 2.0000 before TTFT → 0.9000 after" in md.value
        for md in at.markdown
    )
    val = metric(at, "mean val loss")
    assert val.value == "0.9000" and "-1.1000 vs before" in val.proto.delta
    assert "averaged over the 2 tasks done" in val.proto.help
    assert metric(at, "mean train loss").value == "1.0000"
    assert not any(m.label == "eval loss" for m in at.metric)
    runs_table = at.dataframe[0].value
    assert runs_table.iloc[0]["val loss"] == 0.9 and bool(runs_table.iloc[0]["per task"])
    # one curve per task over the task's own steps, eval losses as unconnected markers, lr axis from 0
    spec = chart_spec(at)
    by_name = {t["name"]: t for t in spec["data"]}
    assert by_name[PT_TASKS[0]]["x"] == by_name[PT_TASKS[1]]["x"] == [1, 2, 3, 4]
    assert by_name[f"{PT_TASKS[1]} eval loss"]["mode"] == "markers"
    assert by_name[f"{PT_TASKS[1]} eval loss"]["x"] == [4, 4]
    assert by_name[f"{PT_TASKS[0]} val loss before"]["x"] == [0]
    assert spec["layout"]["yaxis2"]["tickmode"] == "auto", "its own ticks: the loss grid's map below 0"
    assert spec["layout"]["yaxis2"]["range"][0] == 0 and spec["layout"]["xaxis"]["title"]["text"] == "step of the task"
    # a task picker: the chart of one task
    at.selectbox(key="ft_chart_task").set_value(PT_TASKS[1]).run()
    names = {t["name"] for t in chart_spec(at)["data"]}
    assert PT_TASKS[1] in names and PT_TASKS[0] not in names
    # Predict: a link to the Predictions page's New-prediction form for this run
    link = next(pl for pl in at.get("page_link") if pl.proto.label == "Predict")
    assert not link.proto.disabled and link.proto.page == "Predictions"
    from urllib.parse import parse_qs

    assert parse_qs(link.proto.query_string) == {"run": [str(d)], "new": ["1"]}


def test_per_task_table_without_the_val_loss_before_and_while_training(runs):
    cfg = TrainConfig(per_task=True, steps=4, tasks=PT_TASKS)
    d = fake_run(
        runs,
        "20250101-000000-pt-running",
        {
            "status": "running",
            "pid": os.getpid(),
            "pid_start": rundir.process_start_time(os.getpid()),
            "step": 7,
            "max_steps": 8,
            "task": PT_TASKS[1],
            "started": time.time() - 30,
        },
        cfg,
    )
    rows = per_task_metrics(before=False)
    write_metrics(d, rows[:-3])  # the second task at its step 3 of 4
    at = page()
    assert not at.exception, at.exception
    table = next(df.value for df in at.dataframe if list(df.value.columns)[:2] == ["task", "state"])
    assert "val loss before" not in table.columns and "change" not in table.columns
    assert list(table["state"]) == ["done", "training"] and list(table["steps"]) == ["4/4", "3/4"]
    assert any(f"step 7 / 8 · task 2 of 2: {PT_TASKS[1]}" in str(p.proto.text) for p in at.get("progress"))
    assert any("Means over the 1 of 2 tasks done" in md.value for md in at.markdown)
    assert metric(at, f"loss · {PT_TASKS[1]}").value == "1.6667"
    assert metric(at, "mean val loss").value == "0.4000"
    assert "averaged over the 1 task done" in metric(at, "mean val loss").proto.help
    link = next(pl for pl in at.get("page_link") if pl.proto.label == "Predict")
    assert link.proto.disabled, "not finished: nothing to predict yet"


def test_status_labels_are_honest_and_plain_text(runs):
    fake_run(runs, "20250101-000001-done", {"status": "finished", "step": 4, "max_steps": 4, "ended": time.time()})
    live = fake_run(
        runs,
        "20250101-000002-live",
        {
            "status": "running",
            "pid": os.getpid(),
            "step": 2,
            "max_steps": 4,
            "pid_start": rundir.process_start_time(os.getpid()),
        },
    )
    at = page(run="20250101-000002-live")
    # the picker shows the run ids only: a selectbox keeps the label it was drawn with, a status there goes stale
    assert at.selectbox(key="ft_run").options == ["20250101-000002-live", "20250101-000001-done"]
    statuses = dict(zip(at.dataframe[0].value["run"], at.dataframe[0].value["status"]))
    assert statuses == {"20250101-000002-live": "running", "20250101-000001-done": "finished"}
    assert any(md.value == ":blue-badge[running]" for md in at.markdown)
    # no emoji anywhere in the status texts (they render as boxes without an emoji font)
    texts = [*statuses.values(), *(md.value for md in at.markdown), *(s for s in at.selectbox(key="ft_run").options)]
    assert all(no_emoji(t) for t in texts), [t for t in texts if not no_emoji(t)]
    # the job ends: the list, the badge and the buttons follow
    write_json_atomic(live / "status.json", {"status": "finished", "step": 4, "max_steps": 4, "ended": time.time()})
    at.run()
    statuses = dict(zip(at.dataframe[0].value["run"], at.dataframe[0].value["status"]))
    assert statuses["20250101-000002-live"] == "finished"
    assert any(md.value == ":green-badge[finished]" for md in at.markdown)
    assert at.button(key="ft_stop").disabled


def test_time_sums_resumed_segments_and_the_log_shows_its_newest_lines(runs):
    d = fake_run(
        runs,
        "20250101-000003-resumed",
        {"status": "finished", "step": 8, "max_steps": 8, "started": 2000.0, "ended": 2010.0},
    )
    # first life: 5 steps in 1000..1005 (stopped), then resumed at 2000 and finished at 2010
    rows = [{"step": s, "time": 1000.0 + s, "elapsed": float(s), "loss": 1.0 / s} for s in range(1, 6)]
    rows += [{"step": s, "time": 2000.0 + 2 * (s - 5), "elapsed": 2.0 * (s - 5), "loss": 1.0 / s} for s in (6, 7, 8)]
    write_metrics(d, rows)
    (d / "log.txt").write_text("".join(f"log line {i}\n" for i in range(200)))
    at = page()
    assert metric(at, "time").value == "0:15", "5 s before the stop + the last life's 10 s"
    log = next(c.value for c in at.code if "log line" in c.value)
    assert log.splitlines()[-1] == "log line 199" and len(log.splitlines()) <= 15


def test_launch_message_and_stopping_a_queued_job_say_what_happens(runs, model_dir):
    held = process.try_acquire_slot(runs, "cpu", 1, holder="test")  # the slot is busy: the job stays queued
    try:
        at = fill(page(), model_dir)
        at.button(key="ft_launch").click().run()
        (job,) = registry.list_jobs(runs)
        msg = next(s.value for s in at.success if "Launched" in s.value)
        assert msg == f"Launched {job.id}: queued, position 1 for the cpu slot, 1 of 1 slot(s) busy.", msg
        assert any("Queued: position 1 for the cpu slot, 1 of 1 slot(s) busy" in i.value for i in at.info)
        at.button(key="ft_stop").click().run()
        stop_msg = next(i.value for i in at.info if job.id in i.value)
        assert stop_msg.startswith(f"Took {job.id} out of the queue") and "checkpoint" not in stop_msg, stop_msg
        assert at.dataframe[0].value.iloc[0]["status"] == "stopped"
        # queued again: the list and the badge say so (not 'stopped')
        at.button(key="ft_resume").click().run()
        assert at.dataframe[0].value.iloc[0]["status"] == "queued"
        assert any(md.value == ":gray-badge[queued]" for md in at.markdown)
        assert any(f"{job.id} queued again (position 1 for the cpu slot" in i.value for i in at.info)
        at.button(key="ft_stop").click().run()  # out of the queue again before the slot is freed: nothing trains
        assert registry.get_job(runs / job.id).status == "stopped"
    finally:
        os.close(held[0])
    # first in line with the slot free: it says it is starting, not that it waits
    from ttft.ui import jobs_widgets as jw

    first = registry.Job(path=runs / job.id, status="queued", meta={"kind": "cpu"}, position=1)
    assert (
        jw.queue_text(first, runs, registry.JobConfig(runs_dir=str(runs)))
        == "position 1 for the cpu slot, starting now (a slot is free)"
    )
    second = registry.Job(path=runs / job.id, status="queued", meta={"kind": "cpu"}, position=2)
    assert (
        jw.queue_text(second, runs, registry.JobConfig(runs_dir=str(runs)))
        == "position 2 for the cpu slot, 0 of 1 slot(s) busy"
    )


# --------------------------------------------------------------------------- corrupt, damaged metrics, resumes


def status_of(at: AppTest) -> dict:
    df = at.dataframe[0].value
    return {r: (s, n) for r, s, n in zip(df["run"], df["status"], df["note"])}


def test_a_corrupt_run_is_listed_and_shown_as_corrupt_with_the_reason(runs):
    fake_run(runs, "20250101-000001-good", {"status": "finished", "step": 4, "max_steps": 4})
    bad = fake_run(runs, "20250101-000002-bad", {"status": "finished", "step": 4, "max_steps": 4})
    (bad / "status.json").write_bytes(b"\x00\x01\xff binary")
    at = page(run="20250101-000002-bad")
    assert not at.exception, at.exception
    rows = status_of(at)
    assert rows["20250101-000001-good"] == ("finished", "")
    status, note = rows["20250101-000002-bad"]
    assert status == "corrupt" and "status.json is not UTF-8" in note, note
    assert any(md.value == ":yellow-badge[corrupt]" for md in at.markdown)
    err = next(e.value for e in at.error if e.value.startswith("Corrupt: "))
    assert "status.json is not UTF-8" in err and "Delete" in err, err
    assert at.button(key="ft_resume").disabled and not at.button(key="ft_delete").disabled
    texts = [status, note, err, *(md.value for md in at.markdown)]
    assert all(no_emoji(t) for t in texts), [t for t in texts if not no_emoji(t)]


def test_a_metrics_file_read_in_part_or_not_at_all_is_said_in_the_panel(runs):
    part = fake_run(runs, "20250101-000001-part", {"status": "finished", "step": 3, "max_steps": 3})
    (part / "metrics.jsonl").write_text(
        '{"step": 1, "loss": 2.0}\nnot json\n{"step": 2, "loss": 1.5}\n[1, 2]\n\n{"step": 3, "loss": 1.0}\n'
    )
    gone = fake_run(runs, "20250101-000002-folder", {"status": "finished", "step": 3, "max_steps": 3})
    (gone / "metrics.jsonl").mkdir()
    at = page(run="20250101-000001-part")
    assert not at.exception, at.exception
    warn = [w.value for w in at.warning]
    assert "Metrics: 2 damaged line(s) of metrics.jsonl left out; the chart and the losses show the rest." in warn
    assert chart_spec(at)["data"][0]["y"] == [2.0, 1.5, 1.0]
    at.selectbox(key="ft_run").set_value("20250101-000002-folder").run()
    assert not at.exception, at.exception
    assert any(w.value.startswith("Metrics: metrics.jsonl cannot be read") for w in at.warning), [
        w.value for w in at.warning
    ]
    assert status_of(at)["20250101-000002-folder"][0] == "corrupt"


def _checkpoint(run: Path, step: int, whole: bool) -> None:
    import zipfile

    cp = run / "checkpoints" / f"checkpoint-{step}"
    cp.mkdir(parents=True)
    (cp / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if whole:
        with zipfile.ZipFile(cp / "adapter_model.bin", "w") as z:
            z.writestr("data.pkl", b"x")
    else:
        (cp / "adapter_model.safetensors").write_bytes(b"\x10\x00")  # truncated


def test_a_run_queued_again_and_a_resumed_run_say_what_their_resume_does(runs):
    again = fake_run(
        runs,
        "20250101-000001-again",
        {"status": "queued", "step": 6, "max_steps": 10, "queued_at": time.time(), "kind": "cpu"},
    )
    write_json_atomic(again / "job.json", {"kind": "cpu", "launches": 2, "queued_at": time.time()})
    _checkpoint(again, 4, whole=True)
    _checkpoint(again, 6, whole=False)
    resumed = {
        "from": "checkpoint-4",
        "task": None,
        "skipped": ["checkpoint-6: adapter_model.safetensors is truncated"],
        "superseded_lines": 2,
    }
    fake_run(
        runs,
        "20250101-000002-resumed",
        {"status": "finished", "step": 10, "max_steps": 10, "resume": resumed},
    )
    fake_run(
        runs,
        "20250101-000003-restarted",
        {"status": "finished", "step": 10, "max_steps": 10, "resume": {"from": None, "skipped": "not a list"}},
    )
    at = page(run="20250101-000001-again")
    assert not at.exception, at.exception
    rows = status_of(at)
    status, note = rows["20250101-000001-again"]
    assert status == "queued" and note.startswith("queued again: it resumes from checkpoint-4 (skipping checkpoint-6:")
    info = next(i.value for i in at.info if i.value.startswith("Queued again"))
    assert info.startswith("Queued again (it resumes from checkpoint-4 (skipping checkpoint-6: "), info
    assert "position 1 for the cpu slot" in info
    assert rows["20250101-000002-resumed"] == (
        "finished",
        "resumed from checkpoint-4; skipped checkpoint-6: adapter_model.safetensors is truncated; 2 metrics line(s) "
        "after it moved to metrics-superseded.jsonl",
    )
    assert rows["20250101-000003-restarted"][1] == (
        "no intact checkpoint was left: trained the run again from its first step"
    )
    at.selectbox(key="ft_run").set_value("20250101-000002-resumed").run()
    assert any(c.value.startswith("Last resume: resumed from checkpoint-4; skipped checkpoint-6") for c in at.caption)


def test_the_form_builds_a_weighted_mix_with_a_pool_folder(runs, model_dir, tmp_path):
    import json

    pools = tmp_path / "re_arc"
    pools.mkdir()
    pairs = [{"input": [[i % 10, 1]], "output": [[1, i % 10]]} for i in range(8)]
    (pools / "p1.json").write_text(json.dumps(pairs))
    at = page()
    at = fill(at, model_dir)
    at.text_input(key="ft.tasks").set_value("")
    at.selectbox(key="ft.mode").set_value("finetune")
    at.selectbox(key="ft.dataset_src").set_value("arc-agi-1/training")
    at.text_input(key="ft.more_datasets").set_value(str(pools))
    at.text_input(key="ft.dataset_weights").set_value("1, 3").run()
    assert not at.error, [e.value for e in at.error]
    cmd = command(at)
    assert f"--dataset arc-agi-1/training --dataset {pools} --dataset-weights 1.0,3.0" in cmd, cmd
    cfg, _, _ = commands.parse_train_argv(cmd.split()[3:])
    assert cfg.more_datasets == (str(pools),) and cfg.dataset_weights == (1.0, 3.0)
    at.text_input(key="ft.dataset_weights").set_value("1, many").run()
    assert any("dataset_weights: not a list of numbers" in e.value for e in at.error)
    at.text_input(key="ft.dataset_weights").set_value("1").run()
    assert any("dataset_weights: needs one weight per dataset" in e.value for e in at.error)
