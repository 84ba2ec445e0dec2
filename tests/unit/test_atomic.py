"""What a SIGKILL leaves behind (no cleanup runs) is removed by the next writer of the target,
while a live writer's temporary is left alone."""
import os
import subprocess
import sys

from hcmoco.atomic import atomic_directory, atomic_write_text


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_the_next_writer_removes_a_killed_writers_staging_folder(tmp_path):
    out = tmp_path / "grid"
    stale = tmp_path / f"grid.tmp-{dead_pid()}"
    (stale / "init~scratch").mkdir(parents=True)
    live = tmp_path / f"grid.tmp-{os.getppid()}"  # a concurrent writer that is still running
    live.mkdir()
    other = tmp_path / "grid2.tmp-1"  # another target's temporary
    other.mkdir()
    with atomic_directory(out) as tmp:
        (tmp / "metrics.json").write_text("{}")
    assert (out / "metrics.json").is_file()
    assert not stale.exists() and live.is_dir() and other.is_dir()


def test_the_next_writer_removes_a_killed_writers_temporary_file(tmp_path):
    stale = tmp_path / f".metrics.json.tmp-{dead_pid()}"
    stale.write_text('{"half": ')
    atomic_write_text(tmp_path / "metrics.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
