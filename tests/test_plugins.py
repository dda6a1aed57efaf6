"""Tasks from outside the package: an installed plugin (entry point) and a task module given by path
both register tasks that `evals tasks` lists and `evals run` can run; a broken one is named."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TASK_MODULE = textwrap.dedent('''
    """A user's own benchmark: demo VQA questions under another name."""
    from dataclasses import replace

    from evals.registry import TASKS

    TASKS.add("{name}", replace(TASKS.get("demo_vqa"), name="{name}", suites=()))
''')


def evals(*args: str, env_extra: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "evals", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_task_module_by_path_is_listed_and_runs(tmp_path):
    module = tmp_path / "my_tasks.py"
    module.write_text(TASK_MODULE.format(name="my_vqa"))
    listed = evals("tasks", "--task-module", str(module))
    assert listed.returncode == 0, listed.stderr
    assert "my_vqa" in listed.stdout
    ran = evals("run", "--task-module", str(module), "--task", "my_vqa", "--model", "scripted", "--shots", "0",
                "--limit", "3", "--output-dir", str(tmp_path / "out"))
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out" / "scripted" / "my_vqa" / "random-0shot-seed0.json").is_file()


def test_task_modules_from_the_environment(tmp_path):
    module = tmp_path / "env_tasks.py"
    module.write_text(TASK_MODULE.format(name="env_vqa"))
    listed = evals("tasks", env_extra={"EVALS_TASK_MODULES": str(module)})
    assert listed.returncode == 0 and "env_vqa" in listed.stdout


def test_installed_plugin_registers_through_its_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "evals_demo_plugin").mkdir(parents=True)
    (site / "evals_demo_plugin" / "__init__.py").write_text(TASK_MODULE.format(name="plugin_vqa"))
    dist = site / "evals_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: evals-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[evals.tasks]\ndemo = evals_demo_plugin\n")
    pythonpath = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    listed = evals("tasks", env_extra={"PYTHONPATH": pythonpath})
    assert listed.returncode == 0, listed.stderr
    assert "plugin_vqa" in listed.stdout


def test_broken_task_module_is_one_clear_line(tmp_path):
    module = tmp_path / "broken.py"
    module.write_text("raise RuntimeError('no such benchmark files')\n")
    result = evals("tasks", "--task-module", str(module))
    assert result.returncode == 2
    assert "broken.py: task module failed to load: RuntimeError: no such benchmark files" in result.stderr
    assert "Traceback" not in result.stderr
    missing = evals("tasks", "--task-module", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "nope.py: task module not found" in missing.stderr
