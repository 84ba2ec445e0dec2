"""`--log FILE`, which every workflow rule passes as its `log:`: the job's stdout and stderr,
tracebacks included, are appended to the file, so a killed or failed attempt's output survives
the re-run."""
import subprocess
import sys
import textwrap
import time

from tests.cli.conftest import REPO

SCRIPT = textwrap.dedent("""
    import sys
    import time
    from hcmoco.cli_common import base_parser, run_cli

    def body(args, params):
        print("step 1 of 2", flush=True)
        if args.crash:
            raise RuntimeError("something unexpected")
        time.sleep(args.sleep)

    parser = base_parser("test command")
    parser.add_argument("--crash", action="store_true")
    parser.add_argument("--sleep", type=float, default=0)
    sys.exit(run_cli(parser, body, sys.argv[1:]))
""")


def command(*args):
    return [sys.executable, "-c", SCRIPT, "--params", str(REPO / "params/params.yaml"), "--profile", "smoke", *args]


def run(tmp_path, *args):
    return subprocess.run(command(*args), cwd=tmp_path, capture_output=True, text=True)


def test_output_and_traceback_go_to_the_log_and_a_rerun_appends(tmp_path):
    log = tmp_path / "logs/job.log"
    crashed = run(tmp_path, "--log", str(log), "--crash")
    assert crashed.returncode == 1 and crashed.stdout == crashed.stderr == ""
    first = log.read_text()
    assert "step 1 of 2" in first and "Traceback" in first and "RuntimeError: something unexpected" in first
    assert run(tmp_path, "--log", str(log)).returncode == 0
    text = log.read_text()
    assert text.startswith(first) and text.count("=== ") == 2 and text.count("step 1 of 2") == 2


def test_without_log_the_output_stays_on_the_terminal(tmp_path):
    done = run(tmp_path)
    assert done.returncode == 0 and "step 1 of 2" in done.stdout


def test_a_second_process_of_the_same_job_stops_with_one_line(tmp_path):
    log = tmp_path / "logs/job.log"
    first = subprocess.Popen(command("--log", str(log), "--sleep", "30"), cwd=tmp_path)
    try:
        for _ in range(200):  # until the first one holds the log
            if "step 1 of 2" in (log.read_text() if log.exists() else ""):
                break
            time.sleep(0.05)
        second = run(tmp_path, "--log", str(log))
        assert second.returncode == 2
        assert second.stderr.strip() == (f"error: {log}: another process is running this job (it holds its log); "
                                         "wait for it or stop it, then run again")
    finally:
        first.kill()
        first.wait()
    assert run(tmp_path, "--log", str(log)).returncode == 0  # a killed holder leaves no lock behind
