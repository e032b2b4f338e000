"""The options layer: one declaration gives validation, JSON, CLI flags with real defaults, the rebuilt command and
the form; strict types for every config, with messages that name the option and the bad value."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ttft.core.augment import AugmentOptions
from ttft.core.encoding import EncodingConfig
from ttft.engine import commands
from ttft.engine.experiment_config import AblationConfig
from ttft.engine.models import ModelConfig
from ttft.engine.predict_config import PredictConfig
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError, Options, add_arguments, apply_args, argv_of, flat_options, option
from ttft.runs.registry import JobConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [TrainConfig, ModelConfig, EncodingConfig, AugmentOptions, PredictConfig, AblationConfig, JobConfig]


# --------------------------------------------------------------------------- adding an option is one edit


@dataclass
class Extended(TrainConfig):
    """TrainConfig plus one throwaway option, declared once."""

    throwaway_knob: int = option(3, "a throwaway option for the test", lo=0, hi=9, group="Optimisation")


def test_a_throwaway_option_appears_in_cli_command_json_validation_and_form():
    # the CLI
    p = argparse.ArgumentParser()
    commands.add_train_arguments(p, Extended)
    assert "--throwaway-knob" in p.format_help() and "[default: 3]" in p.format_help()
    args = p.parse_args(["--throwaway-knob", "7", "--steps", "5"])
    cfg = apply_args(Extended, args)
    assert cfg.throwaway_knob == 7 and cfg.steps == 5
    # the command rebuilt from the config
    flags = argv_of(cfg)
    assert flags is not None and "--throwaway-knob" in flags and flags[flags.index("--throwaway-knob") + 1] == "7"
    assert apply_args(Extended, p.parse_args(flags)).to_json() == cfg.to_json()
    # the JSON
    assert cfg.to_json()["throwaway_knob"] == 7 and Extended.from_json(cfg.to_json()) == cfg
    # validation, named
    with pytest.raises(ConfigError, match=r"throwaway_knob: must be at most 9, got 12"):
        Extended.from_json({"throwaway_knob": 12})
    with pytest.raises(ConfigError, match=r"throwaway_knob: .*got '7'"):
        Extended.from_json({"throwaway_knob": "7"})
    # the form (see test_throwaway_option_in_the_form for the rendered widget)
    assert "throwaway_knob" in {o.path for o in flat_options(Extended)}


FORM_SCRIPT = """
from dataclasses import dataclass
import streamlit as st
from ttft.engine.train_config import TrainConfig
from ttft.options import option
from ttft.ui import forms

@dataclass
class Extended(TrainConfig):
    throwaway_knob: int = option(3, "a throwaway option for the test", lo=0, hi=9, group="Optimisation")

form = forms.config_form(Extended, "x")
cfg, err = forms.read_config(Extended, form)
st.write(f"knob={cfg.throwaway_knob if cfg else err}")
"""


def test_throwaway_option_in_the_form():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(FORM_SCRIPT, default_timeout=60).run()
    assert not at.exception, at.exception
    w = at.number_input(key="x.throwaway_knob")
    assert w.value == 3 and w.label == "throwaway_knob"
    w.set_value(8).run()
    assert any(m.value == "knob=8" for m in at.markdown)


# --------------------------------------------------------------------------- strict types, every config

#: per option kind: bad values and a fragment of the message
BAD = {
    "bool": [("false", "must be true or false"), (1, "must be true or false"), (None, "not empty")],
    "int": [(True, "integer"), (1.0, "integer"), ("3", "integer"), (2**70, "")],
    "float": [(True, "number"), ("0.1", "number"), (math.nan, "finite"), (math.inf, "finite")],
    "str": [(5, "must be text"), (["a"], "must be text"), ("a\nb", "control characters")],
    "list": [("abc", "list"), (5, "list"), ([1, 2], "list of text")],
    "floats": [("abc", "list"), (5, "list"), (["1"], "list of numbers"), ([True], "list of numbers")],
}


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_option_refuses_wrong_types_with_its_name(cls):
    checked = 0
    for o in flat_options(cls):
        for value, fragment in BAD["floats" if o.item == "float" else o.kind]:
            if value is None and o.optional:
                continue
            d: dict = {}
            node = d
            *heads, leaf = o.path.split(".")
            for h in heads:
                node = node.setdefault(h, {})
            node[leaf] = value
            with pytest.raises(ConfigError) as e:
                cls.from_json(d)
            msg = str(e.value)
            assert msg.startswith(o.path + ":") and fragment in msg, (o.path, value, msg)
            if o.kind != "bool" or value is not None:
                assert repr(value)[:20] in msg or "..." in msg, (o.path, value, msg)
            checked += 1
    assert checked >= len(flat_options(cls))


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_unknown_keys_and_non_objects_are_refused(cls):
    with pytest.raises(ConfigError, match="unknown .* option\\(s\\): bogus"):
        cls.from_json({"bogus": 1})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        cls.from_json([1, 2])
    ok = PredictConfig(base_model="default", dataset="arc-agi-1/evaluation") if cls is PredictConfig else cls()
    assert cls.from_json(ok.to_json()) == ok


def test_bounds_choices_and_nested_paths():
    cases = [
        ({"steps": 0}, "steps: must be a positive integer"),
        ({"lr": -1e-3}, "lr: must be a positive number"),
        ({"weight_decay": float("nan")}, "weight_decay: must be a finite number"),
        ({"mode": "pretrain"}, "mode: must be one of finetune, ttft"),
        ({"leave_out": 3}, "leave_out: must be one of 1, 2"),
        ({"model": {"trust_remote_code": "false"}}, "model.trust_remote_code: must be true or false"),
        ({"model": {"full_finetune": "no"}}, "model.full_finetune: must be true or false"),
        ({"per_task": "yes"}, "per_task: must be true or false"),
        ({"tasks": 5}, "tasks: must be a list"),
        ({"tasks": [".."]}, "tasks: task id '..' cannot be a folder name"),
        ({"augment": {"transforms": ["rot45"]}}, "augment.transforms: unknown transform(s) 'rot45'"),
        ({"encoding": {"max_seq_len": 0}}, "encoding.max_seq_len: must be a positive integer"),
        ({"seed": -1}, "seed: must be a non-negative integer, got -1"),
        ({"model": {"nope": 1}}, "unknown model option(s): model.nope"),
    ]
    for d, msg in cases:
        with pytest.raises(ConfigError) as e:
            TrainConfig.from_json(d)
        assert str(e.value).startswith(msg), (d, str(e.value))


def test_one_error_type_for_every_config_and_domain_error():
    from ttft.engine.models import ModelError
    from ttft.engine.predict_config import PredictError
    from ttft.runs.registry import JobError

    assert all(issubclass(e, ConfigError) for e in (ModelError, PredictError, JobError))
    with pytest.raises(ConfigError, match="views: must be a positive integer"):
        PredictConfig(base_model="default", dataset="x", views=0).validate()
    with pytest.raises(ConfigError, match="name: must be a plain folder name"):
        PredictConfig(base_model="default", dataset="x", name="..").validate()
    with pytest.raises(ConfigError, match="cpu_slots: must be a positive integer"):
        JobConfig.from_env(cpu_slots=0)


# --------------------------------------------------------------------------- the CLI shows real defaults


@pytest.mark.parametrize(
    "command", [["train"], ["predict"], ["jobs"], ["jobs", "launch"], ["experiment", "seed-ablation"]]
)
def test_help_shows_real_defaults_and_no_suppress(command):
    out = subprocess.run(
        [sys.executable, "-m", "ttft", *command, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "==SUPPRESS==" not in out.stdout and "(default: None)" not in out.stdout
    if command == ["train"]:
        assert "--lr X" in out.stdout and "[default: 0.0001]" in out.stdout and "[default: cosine]" in out.stdout
    if command == ["predict"]:
        assert "[default: 8]" in out.stdout  # --views


def test_every_flag_round_trips_a_config_that_differs_everywhere(tmp_path):
    (tmp_path / "adapter").mkdir()
    cfg = TrainConfig(
        mode="ttft",
        tasks=("00576224", "0c786b71"),
        max_task_tokens=900,
        per_task=True,
        leave_out=2,
        keep_original_colors=0.25,
        steps=17,
        lr=3e-5,
        batch_size=2,
        grad_accum=3,
        scheduler="linear",
        warmup_steps=2,
        weight_decay=0.01,
        too_long="drop",
        seed=5,
        device="cpu",
        val="none",
        eval_steps=4,
        logging_steps=2,
        save_steps=7,
        save_total_limit=4,
        threads=1,
        report_to="none",
        model=ModelConfig(
            base_model="default",
            adapter=str(tmp_path / "adapter"),
            lora_r=4,
            lora_alpha=8,
            lora_dropout=0.1,
            target_modules="q_proj",
            init="random",
        ),
        encoding=EncodingConfig(
            max_seq_len=1024,
            format="shape+rows",
            loss_on="outputs",
            chat_template=True,
            input_marker="IN",
            output_marker="OUT",
        ),
        augment=AugmentOptions(
            transforms=("identity", "rot90"),
            colors="all",
            p_bg=0.1,
            shuffle=False,
            compose=("pad", "upscale:2x2:input"),
            p_compose=0.5,
            compose_targets=("output",),
            seed=9,
        ),
    )
    argv = commands.train_argv(cfg)
    assert argv is not None
    assert commands.parse_train_argv(argv)[0].to_json() == cfg.to_json()
    from ttft.options import get_path

    d, dflt = cfg.to_json(), TrainConfig().to_json()
    differs = [o for o in flat_options(TrainConfig) if get_path(d, o.path) != get_path(dflt, o.path)]
    shown = {a.split("=")[0] for a in argv if a.startswith("--")}
    assert len(differs) >= 40
    for o in differs:  # every option that differs from its default is on the command line
        assert o.flag in shown or (o.kind == "bool" and "--no-" + o.flag[2:] in shown), o.path


def test_optional_values_can_be_set_back_to_none_on_the_command_line():
    @dataclass
    class Opt(Options):
        TITLE = "test"
        cap: int | None = option(5, "a cap", lo=1)

    p = argparse.ArgumentParser()
    add_arguments(p, Opt)
    assert apply_args(Opt, p.parse_args(["--cap", "none"])).cap is None
    assert argv_of(Opt(cap=None)) == ["--cap", "none"]
    with pytest.raises(SystemExit):
        p.parse_args(["--cap", "many"])


# --------------------------------------------------------------------------- validation before any work


def test_jobs_launch_validates_the_whole_command_before_queueing(tmp_path, monkeypatch):
    monkeypatch.setenv("TTFT_RUNS_DIR", str(tmp_path / "runs"))
    from ttft.runs.registry import JobError, list_jobs

    bad = [
        (["frobnicate"], "unknown ttft command 'frobnicate'"),
        (["train", "--dataset", str(tmp_path / "nope")], "dataset"),
        (["train", "--tasks", "zzzzzzzz"], "unknown task id(s) zzzzzzzz"),
        (["train", "--steps", "0"], "steps: must be a positive integer"),
        (["train", "--max-seq-len", "8", "--tasks", "00576224"], "encoding.max_seq_len: no training sample"),
        (["predict", "--base-model", "default", "--dataset", "arc-agi-1/evaluation", "--tasks", "nope"], "nope"),
        (["predict", "--run", str(tmp_path / "no-run")], "no-run"),
        (["experiment", "seed-ablation", "--rows", "bogus"], "unknown row(s) 'bogus'"),
        (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ]
    for argv, fragment in bad:
        with pytest.raises(JobError) as e:
            commands.launch_command(argv)
        assert fragment in str(e.value), (argv, str(e.value))
    assert list_jobs(tmp_path / "runs") == []
