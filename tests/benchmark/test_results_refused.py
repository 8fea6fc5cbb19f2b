"""A benchmark script never silently replaces a results file: it checks every file its
run will write before any fit (``refuse_existing``) and replaces them only with
``--force``. Scripts that only append to their results file need no such check."""
import importlib.util
import re
from pathlib import Path

import pytest

from causalnn.benchmark import refuse_existing

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


class _Fitted(Exception):
    """Raised by a stand-in for a script's first piece of work: the run got past the
    check."""


def _fits(*args, **kwargs):
    raise _Fitted


def _script(name, monkeypatch):
    # as `python benchmarks/x.py` has it: the scripts import their neighbours
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"bench_refused_{name}",
                                                  BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _held(folder, *names):
    for name in names:
        (folder / name).write_text(f"the committed {name}\n")
    return {name: (folder / name).read_text() for name in names}


def _unchanged(folder, held):
    return {name: (folder / name).read_text() for name in held} == held


# ---- the helper -------------------------------------------------------------------------
def test_refuse_existing_names_every_existing_file_and_the_flag(tmp_path):
    _held(tmp_path, "a.md", "b.csv")
    paths = [tmp_path / "a.md", tmp_path / "b.csv", tmp_path / "c.json"]
    with pytest.raises(FileExistsError) as info:
        refuse_existing(paths, force=False)
    message = str(info.value)
    assert str(tmp_path / "a.md") in message and str(tmp_path / "b.csv") in message
    assert "c.json" not in message
    assert "pass --force to replace them" in message
    with pytest.raises(FileExistsError, match=r"b\.csv already exists; pass --replace "
                                              r"to replace it, or pick another name"):
        refuse_existing([tmp_path / "b.csv"], False, "--replace",
                        instead="or pick another name")
    with pytest.raises(FileExistsError, match=rf"^{re.escape(str(tmp_path))} already "
                                              r"holds a\.md, b\.csv; pass --force"):
        refuse_existing(paths, False, folder=tmp_path)


def test_refuse_existing_passes_with_force_or_when_nothing_exists(tmp_path):
    _held(tmp_path, "a.md")
    paths = [tmp_path / "a.md", str(tmp_path / "b.csv")]
    assert refuse_existing(paths, force=True) == [tmp_path / "a.md"]
    assert refuse_existing([tmp_path / "b.csv", tmp_path / "new" / "c.md"], False) == []
    assert refuse_existing([], False) == []
    assert (tmp_path / "a.md").read_text() == "the committed a.md\n"


# ---- the scripts ------------------------------------------------------------------------
_WRITES = re.compile(r"save_markdown\(|open\([^)]*[\"']w[\"']|write_text\(|\.to_csv\(")


def test_every_script_that_replaces_a_file_checks_first_and_has_force():
    replacing = [p for p in sorted(BENCHMARKS.glob("*.py")) if _WRITES.search(p.read_text())]
    assert len(replacing) >= 15
    for path in replacing:
        text = path.read_text()
        assert "refuse_existing(" in text and '"--force"' in text, path.name


def test_cevae_refuses_an_existing_csv_before_fitting(tmp_path, monkeypatch):
    cevae = _script("cevae", monkeypatch)
    monkeypatch.setattr(cevae, "run_ihdp", _fits)
    monkeypatch.setattr(cevae, "run_proxy", _fits)
    held = _held(tmp_path, "cevae_cpu.csv")
    with pytest.raises(FileExistsError, match=r"cevae_cpu\.csv already exists; pass "
                                              r"--force"):
        cevae.main(["--device", "cpu", "--out", str(tmp_path)])
    assert _unchanged(tmp_path, held) and not (tmp_path / "cevae_cpu.md").exists()
    with pytest.raises(_Fitted):  # --force: past the check, to the first fit
        cevae.main(["--device", "cpu", "--out", str(tmp_path), "--force"])


def test_deconfounder_checks_the_files_of_its_mode(tmp_path, monkeypatch):
    deconfounder = _script("deconfounder", monkeypatch)
    monkeypatch.setattr(deconfounder, "run_one", _fits)
    monkeypatch.setattr(deconfounder, "run_variants", _fits)
    held = _held(tmp_path, "deconfounder_variants_cpu.md", "deconfounder_cpu.md")
    for mode in (["--variants"], []):
        with pytest.raises(FileExistsError) as info:
            deconfounder.main([*mode, "--out", str(tmp_path)])
        name = "deconfounder_variants_cpu.md" if mode else "deconfounder_cpu.md"
        assert str(tmp_path / name) in str(info.value), mode
    assert _unchanged(tmp_path, held)
    (tmp_path / "deconfounder_cpu.md").unlink()
    with pytest.raises(_Fitted):  # the variants' table does not block the main run
        deconfounder.main(["--out", str(tmp_path)])


def test_throughput_refuses_its_tagged_file_before_making_the_table(tmp_path,
                                                                     monkeypatch):
    throughput = _script("throughput", monkeypatch)
    monkeypatch.setattr(throughput, "make_table", _fits)
    held = _held(tmp_path, "throughput_cpu_compile.md")
    args = ["--device", "cpu", "--rows", "100", "--models", "plain", "--out",
            str(tmp_path), "--tag", "_compile"]
    with pytest.raises(FileExistsError, match="throughput_cpu_compile.md"):
        throughput.main(args)
    assert _unchanged(tmp_path, held)
    with pytest.raises(_Fitted):  # another tag, another file
        throughput.main(args[:-1] + ["_1e7"])


def test_ihdp_checks_the_table_csv_and_json_of_its_device(tmp_path, monkeypatch):
    ihdp = _script("ihdp", monkeypatch)
    monkeypatch.setattr(ihdp, "load_ihdp", _fits)
    held = _held(tmp_path, "ihdp_cpu_members3.json", "ihdp_cpu.md")
    args = ["--device", "cpu", "--models", "TARNet", "--n-members", "3", "--out",
            str(tmp_path)]
    with pytest.raises(FileExistsError, match=r"ihdp_cpu_members3\.json already exists.*"
                                              r"nothing was fitted"):
        ihdp.main(args)
    assert _unchanged(tmp_path, held)
    with pytest.raises(_Fitted):
        ihdp.main(args + ["--force"])


def test_cevae_inference_refuses_before_fitting(tmp_path, monkeypatch):
    cevae_inference = _script("cevae_inference", monkeypatch)
    monkeypatch.setattr(cevae_inference, "make_proxy_confounded", _fits)
    held = _held(tmp_path, "table.md")
    with pytest.raises(FileExistsError, match="table.md"):
        cevae_inference.main(seeds=1, n=100, out=tmp_path / "table.md")
    assert _unchanged(tmp_path, held)
    with pytest.raises(_Fitted):
        cevae_inference.main(seeds=1, n=100, out=tmp_path / "table.md", force=True)


# ---- every script, each of its files alone ---------------------------------------------
# (script, its arguments ({out}: the folder), the name its first piece of work has in the
# script's namespace, the files it writes there). Each file is held alone, so a file the
# check forgets is caught; the first piece of work raises, so a check made after it is.
_ALL = [
    ("cevae", ["--device", "cpu", "--out", "{out}"], "run_ihdp",
     ["cevae_cpu.md", "cevae_cpu.csv"]),
    ("cevae_draws", ["--out", "{out}/cevae_draws_cpu.md"], "load_ihdp",
     ["cevae_draws_cpu.md"]),
    ("deconfounder", ["--out", "{out}"], "run_one",
     ["deconfounder_cpu.md", "deconfounder_cpu.csv"]),
    ("deconfounder", ["--variants", "--out", "{out}"], "run_variants",
     ["deconfounder_variants_cpu.md"]),
    ("deepiv_demand", ["--out", "{out}/d.md"], "run", ["d.md"]),
    ("ihdp", ["--device", "cpu", "--out", "{out}"], "load_ihdp",
     ["ihdp_cpu.md", "ihdp_cpu.csv", "ihdp_cpu.json"]),
    ("ihdp_seeds", ["--output", "{out}/s.md"], "load_ihdp", ["s.md"]),
    ("ihdp_worst_unit", ["--out", "{out}"], "load_ihdp", ["ihdp_worst_unit_cpu.md"]),
    ("members", ["--device", "cpu", "--part", "impl", "--out", "{out}"], "part_impl",
     ["members_cpu.md"]),
    ("memory", ["--out", "{out}"], "_run_case", ["memory_cpu.md"]),
    ("profile_steps", ["--device", "cpu", "--out", "{out}"], "make_table",
     ["profile_cpu.md"]),
    ("scaling", ["--out", "{out}"], "best_seconds", ["scaling_cpu.md"]),
    ("throughput", ["--device", "cpu", "--out", "{out}"], "make_table",
     ["throughput_cpu.md"]),
    ("tune_defaults", ["--output", "{out}/t.md"], "evaluate", ["t.md"]),
]


@pytest.mark.parametrize("script, argv, work, files", _ALL,
                         ids=[f"{s}{'-' + a[0] if a[0].startswith('--v') else ''}"
                              for s, a, _, _ in _ALL])
def test_each_file_alone_is_refused_before_the_first_piece_of_work(
        tmp_path, monkeypatch, script, argv, work, files):
    module = _script(script, monkeypatch)
    monkeypatch.setattr(module, work, _fits)
    argv = [a.format(out=tmp_path) for a in argv]
    for name in files:
        held = _held(tmp_path, name)
        with pytest.raises(FileExistsError, match=re.escape(name)):
            module.main(argv)
        assert _unchanged(tmp_path, held)
        (tmp_path / name).unlink()
    with pytest.raises(_Fitted):  # nothing held: past the check, to the first work
        module.main(argv)
    _held(tmp_path, *files)
    with pytest.raises(_Fitted):
        module.main(argv + ["--force"])


@pytest.mark.parametrize("script, work", [("hardening_checks", "bias_rows"),
                                          ("deepiv_tune", "make_demand"),
                                          ("cevae_inference", "make_proxy_confounded")])
def test_fixed_name_scripts_refuse_before_the_first_piece_of_work(tmp_path, monkeypatch,
                                                                  script, work):
    module = _script(script, monkeypatch)
    monkeypatch.setattr(module, work, _fits)
    held = _held(tmp_path, "r.md")
    with pytest.raises(FileExistsError, match=r"r\.md"):
        module.main(out=tmp_path / "r.md")
    assert _unchanged(tmp_path, held)
    with pytest.raises(_Fitted):
        module.main(out=tmp_path / "r.md", force=True)


def test_a_path_that_cannot_be_written_is_refused_even_with_force(tmp_path):
    """A folder given for a results file, or a file given for a folder, would fail at
    the write, after the whole run: it fails at the check instead."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.md").write_text("x")
    for force in (False, True):
        with pytest.raises(IsADirectoryError, match="is a folder"):
            refuse_existing([tmp_path / "folder"], force)
        with pytest.raises(NotADirectoryError, match="file.md is a file, not a folder"):
            refuse_existing([tmp_path / "file.md" / "results.md"], force)
