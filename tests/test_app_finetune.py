"""AppTest of the Fine-tune page: the options form and its command, validation, launch into a temporary runs folder,
the runs list and the run panel (queued, failed, lost; clone config; delete with confirmation; config files)."""

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

    keys = {w.key for kind in ("text_input", "number_input", "selectbox", "multiselect", "checkbox", "radio")
            for w in getattr(at, kind)}
    missing = ["ft." + o.path for o in flat_options(TrainConfig) if "ft." + o.path not in keys
               and o.path not in ("dataset",)]
    assert not missing, missing
    at = fill(at, model_dir)
    cmd = command(at)
    assert cmd.startswith(f"python -m ttft train --mode ttft --dataset arc-agi-1/evaluation --tasks {TASKS} "
                          f"--base-model {model_dir} --steps 7 --lr 0.0001"), cmd
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
    d = fake_run(runs, "20250101-000000-old", {"status": "finished", "step": 42, "max_steps": 42,
                                                "final_loss": 0.5, "ended": time.time()}, cfg)
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
    fake_run(runs, "20250101-000001-failed", {"status": "failed", "error": "ValueError: boom", "step": 3,
                                               "traceback": "Traceback (most recent call last):\n  File x\n"
                                                            "ValueError: boom\n"})
    lost = fake_run(runs, "20250101-000002-lost", {"status": "running", "pid": 2 ** 22 + 3, "pid_start": 1.0,
                                                    "step": 5, "max_steps": 10})
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
