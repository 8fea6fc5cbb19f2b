"""Every script in benchmarks/ answers ``--help`` with its usage and exits, without
starting its run or writing a results file (three of them used to ignore it and start
the full benchmark, one rewriting its results file)."""
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# one interpreter for all scripts (torch is imported once): each runs as __main__ with
# --help and must leave through argparse's SystemExit(0) having printed its usage
_RUNNER = """
import contextlib, io, os, runpy, sys
failures = []
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    sys.path.insert(0, os.path.dirname(path))  # as `python benchmarks/x.py` has it
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
        failures.append(f"{path}: ran without exiting")
    except SystemExit as exit:
        if exit.code not in (0, None) or "usage:" not in out.getvalue():
            failures.append(f"{path}: exit {exit.code!r}, printed {out.getvalue()[:80]!r}")
print("\\n".join(failures))
"""


def test_every_benchmark_script_answers_help_without_running():
    scripts = sorted(str(p) for p in BENCHMARKS.glob("*.py"))
    assert len(scripts) >= 15
    results = BENCHMARKS / "results"
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    done = subprocess.run([sys.executable, "-c", _RUNNER, *scripts], capture_output=True,
                          text=True, timeout=300, cwd=BENCHMARKS.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", done.stdout
    after = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    assert after == before


def test_ihdp_script_refuses_to_replace_results_before_fitting(tmp_path):
    """The file names hold the device and tag, not --models or --replications: a trial
    run would replace a full run's table (by default the committed one)."""
    held = tmp_path / "ihdp_cpu.md"
    held.write_text("a full run\n")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "ihdp.py"), "--device", "cpu",
         "--replications", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode != 0 and "pass --force" in result.stderr
    assert "nothing was fitted" in result.stderr
    assert held.read_text() == "a full run\n"
