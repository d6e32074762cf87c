"""A built wheel, installed outside the checkout, finds every shipped asset (issue 14).

``train/policy.py`` once located the shipped policies from the source tree's layout, so a wheel
install silently benched without them. This builds the wheel, installs it with no
dependencies into a fresh virtual environment that borrows this one's dependencies (but not
its editable occ-gym), and runs ``occ-gym bench`` from a folder outside the checkout.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_a_wheel_install_benches_with_the_shipped_policies(tmp_path):
    wheels = tmp_path / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        tmp_path,
    )
    (wheel,) = wheels.glob("occ_gym-*.whl")
    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    fresh_python = fresh / "bin" / "python"
    purelib = run(
        [str(fresh_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        tmp_path,
    ).strip()
    # the dependencies from this environment; its editable occ-gym .pth is not read from there
    (Path(purelib) / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(fresh_python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        tmp_path,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OCC_GYM_CACHE"] = str(tmp_path / "cache")
    where = run([str(fresh_python), "-c", "import occ_gym; print(occ_gym.__file__)"], outside, env)
    assert where.startswith(str(fresh)), where
    out = outside / "bench"
    run(
        [
            str(fresh / "bin" / "occ-gym"),
            "bench",
            "--env",
            "OCC-Code-v0",
            "--episodes",
            "2",
            "--seeds",
            "1",
            "--resamples",
            "50",
            *("--tune-episodes", "32", "--planner-episodes", "2000", "--router-episodes", "2000"),
            "--out",
            str(out),
        ],
        outside,
        env,
    )
    results = json.loads((out / "results.json").read_text())
    shipped = [
        e["label"] for e in results["entries"] if e["label"].startswith("MaskablePPO (shipped")
    ]
    assert shipped, [e["label"] for e in results["entries"]]
    assert all(key.startswith("shipped:") for key in results["policy_digests"])
    seeds = run(
        [
            str(fresh_python),
            "-c",
            "from occ_gym.policies.learned import shipped_seed_sets as s; "
            "print({a: len(p) for a, p in s('OCC-Code-v1').items()})",
        ],
        outside,
        env,
    ).strip()
    assert seeds == "{'grpo': 5, 'maskable_ppo': 5}", seeds
    demo = run(
        [
            str(fresh_python),
            "-W",
            "error",
            "-c",
            "import gymnasium as gym, occ_gym; e = gym.make('OCC-Traces-v0', split='test'); "
            "e.reset(seed=0); print(e.unwrapped.tier_names, len(e.unwrapped.task_source))",
        ],
        outside,
        env,
    ).strip()
    assert demo.startswith("('cheap', 'medium', 'expensive')"), demo
