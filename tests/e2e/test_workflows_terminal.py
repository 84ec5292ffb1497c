"""``datathread run`` / ``datathread runs`` end to end: a real process and real local kernels.

Each step runs in a workspace of its own; the datasets it declares reach later steps through the
dataset store only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # starts subprocesses and kernels

SALES = "region,product,amount\nEMEA,apple,10\nEMEA,pear,5\nAPAC,apple,7\nEMEA,apple,3\n"

THREE_STEPS = """\
name: weekly-sales
params: {region: EMEA}
steps:
  - id: extract
    run: |
      import pandas as pd
      open("extract-scratch.txt", "w").write("private to extract")
      sales = pd.read_csv("sales.csv")
      sales = sales[sales.region == params["region"]]
      sales
    files: [sales.csv]
    outputs: [sales]
  - id: summarise
    inputs: [extract.sales]
    run: |
      import os
      print("SEES", sorted(f for f in os.listdir(".") if not f.startswith(".")), sorted(os.listdir("inputs")))
      summary = sales.groupby("product", as_index=False)["amount"].sum()
      summary
    outputs: [summary]
  - id: report
    inputs: [summarise.summary]
    ask: "best = summary.sort_values('amount').tail(1).assign(region='{region}'); best"
    outputs: [best]
"""


def datathread(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
        env={**os.environ, "DATATHREAD_HOME": str(tmp_path / "home")},
    )


def workflow(tmp_path: Path, text: str, name: str = "wf.yml") -> str:
    (tmp_path / "sales.csv").write_text(SALES)
    (tmp_path / name).write_text(text)
    return name


def test_later_steps_read_earlier_datasets_and_see_only_their_declared_inputs(tmp_path: Path) -> None:
    result = datathread(tmp_path, "run", workflow(tmp_path, THREE_STEPS))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "── step 1/3: extract ──" in out and "── step 3/3: report ──" in out
    # isolation: summarise sees its input and nothing of extract's workspace (no sales.csv, no scratch file)
    assert "SEES ['inputs'] ['sales.parquet']" in out
    assert "│ apple   │     13 │" in out  # EMEA apples: 10 + 3, computed from extract's dataset
    assert re.search(r"── result report\.best ──.*│ apple +│ +13 │ EMEA +│", out, re.S)
    assert re.search(r"run \S+ succeeded: 3/3 steps", out)
    runs = datathread(tmp_path, "runs")
    assert re.search(r"weekly-sales +succeeded ✓extract ✓summarise ✓report", runs.stdout), runs.stdout


def test_a_parameter_given_on_the_command_line_reaches_code_and_prompts(tmp_path: Path) -> None:
    result = datathread(tmp_path, "run", workflow(tmp_path, THREE_STEPS), "--param", "region=APAC")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"── result report\.best ──.*│ apple +│ +7 │ APAC +│", result.stdout, re.S)
    unknown = datathread(tmp_path, "run", "wf.yml", "--param", "country=FR")
    assert unknown.returncode == 2 and "unknown parameter 'country'" in unknown.stdout + unknown.stderr


def test_a_failing_middle_step_stops_the_run_by_name_and_from_resumes_with_stored_outputs(tmp_path: Path) -> None:
    broken = THREE_STEPS.replace('summary = sales.groupby', 'summary = sails.groupby')
    failed = datathread(tmp_path, "run", workflow(tmp_path, broken))
    assert failed.returncode == 1
    assert "✗ summarise failed: NameError: name 'sails' is not defined" in failed.stdout
    assert "step 3/3" not in failed.stdout  # the run stopped there
    assert re.search(r"run \S+ failed: 1/3 steps .* step summarise failed", failed.stdout)
    workflow(tmp_path, THREE_STEPS)  # fixed
    resumed = datathread(tmp_path, "run", "wf.yml", "--from", "summarise")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "step 1/3" not in resumed.stdout and "reusing extract from run" in resumed.stdout
    assert "│ apple   │     13 │" in resumed.stdout
    listing = datathread(tmp_path, "runs").stdout.splitlines()
    assert "↺extract ✓summarise ✓report" in listing[0] and "✓extract ✗summarise ·report" in listing[1]


def test_a_step_that_does_not_publish_a_declared_output_fails_naming_it(tmp_path: Path) -> None:
    text = THREE_STEPS.replace("    outputs: [summary]", "    outputs: [summary, totals]")
    result = datathread(tmp_path, "run", workflow(tmp_path, text.replace("inputs: [summarise.summary]",
                                                                        "inputs: [summarise.totals]")))
    assert result.returncode == 1
    assert "✗ summarise failed: it finished without publishing the dataset 'totals'" in result.stdout


def test_a_file_with_mistakes_is_refused_naming_each_line(tmp_path: Path) -> None:
    text = THREE_STEPS.replace("inputs: [extract.sales]", "inputs: [extract.sale]").replace("  - id: report",
                                                                                          "  - idd: report")
    result = datathread(tmp_path, "run", workflow(tmp_path, text))
    assert result.returncode == 2
    assert "line 14, steps.summarise.inputs: 'extract.sale': step 'extract' does not list 'sale'" in result.stderr
    assert "line 21, steps[2].idd: is not a step field" in result.stderr
    assert "line 21, steps[2].id: is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_in_the_sandbox_a_step_cannot_reach_another_steps_workspace(tmp_path: Path) -> None:
    text = """\
name: iso
params: {home: ""}
steps:
  - id: extract
    run: |
      import pandas as pd
      open("secret.txt", "w").write("extract only")
      sales = pd.read_csv("sales.csv")
      sales
    files: [sales.csv]
    outputs: [sales]
  - id: peek
    inputs: [extract.sales]
    run: |
      import os
      print("HOST", os.path.exists(params["home"]), os.path.exists(params["home"] + "/workspaces"))
      print("HERE", sorted(f for f in os.listdir(".") if not f.startswith(".")), len(sales))
"""
    home = str(tmp_path / "home")
    result = datathread(tmp_path, "run", workflow(tmp_path, text), "--sandbox", "--param", f"home={home}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HOST False False" in result.stdout  # the bot's home, other workspaces included, is not there
    assert "HERE ['inputs'] 4" in result.stdout


def test_a_run_step_cut_short_by_the_time_limit_fails(tmp_path: Path) -> None:
    text = "name: slow\nsteps:\n  - id: nap\n    run: |\n      import time\n      time.sleep(30)\n"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", workflow(tmp_path, text)], capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
        env={**os.environ, "DATATHREAD_HOME": str(tmp_path / "home"), "DATATHREAD_RUN_TIMEOUT_SECONDS": "2"},
    )
    assert result.returncode == 1
    assert "✗ nap failed: Stopped: the code ran longer than the time limit (2 s)" in result.stdout
