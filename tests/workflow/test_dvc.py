import subprocess

import pytest


def dvc(args, cwd, env):
    out = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out.stdout + out.stderr


@pytest.mark.slow
def test_dvc_repro_of_the_data_stages(smoke_repo, venv_env):
    dvc(["repro", "generate", "split"], smoke_repo, venv_env)
    for task in ["parsing", "depth_parsing", "pose3d", "densepose"]:
        assert (smoke_repo / f"data/smoke/splits/{task}/val.json").is_file()
    assert (smoke_repo / "dvc.lock").is_file()
    # nothing changed: nothing runs
    again = dvc(["repro", "generate", "split"], smoke_repo, venv_env)
    assert "Running stage" not in again
    # a split parameter in the profile overlay re-runs the splits, not the rendering
    overlay = smoke_repo / "params/profiles/smoke.yaml"
    overlay.write_text(overlay.read_text().replace("seeds: [0]", "seeds: [0, 1]"))
    status = dvc(["status", "generate", "split"], smoke_repo, venv_env)
    assert "split@parsing" in status and "generate@" not in status
    rerun = dvc(["repro", "generate", "split"], smoke_repo, venv_env)
    assert "Running stage 'split@pose3d'" in rerun and "Running stage 'generate" not in rerun
    assert (smoke_repo / "data/smoke/splits/pose3d/fraction~0.1/seed~1.json").is_file()
