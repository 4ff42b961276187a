"""The thread rule of every verb and example (nequip_pol.threads): its choice for given cores,
load, size, OMP_NUM_THREADS and --threads, and the verbs applying it once, printed first."""

import argparse
import os

import ase.io
import pytest
import torch

from nequip_pol import threads as rule
from nequip_pol.cli import RUNS_A_MODEL, build_parser, main
from nequip_pol.reference import ideal_structure


@pytest.fixture()
def machine(monkeypatch):
    """A machine of ``cores`` cores at one-minute load ``load`` (set the attributes), no
    OMP_NUM_THREADS."""

    class Machine:
        cores = 2
        load = 0.0

    m = Machine()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(rule.os, "sched_getaffinity", lambda pid: set(range(m.cores)))
    monkeypatch.setattr(rule.os, "getloadavg", lambda: (m.load, 0.0, 0.0))
    return m


@pytest.mark.parametrize(
    "cores, load, n_atoms, expected, reason",
    [
        (2, 0.0, None, 2, "2 cores, load 0.0 -> 2 free"),
        (2, 0.4, 1000, 2, "2 cores, load 0.4 -> 2 free; 1000 atoms"),
        (2, 0.6, 1000, 1, "2 cores, load 0.6 -> 1 free; 1000 atoms"),
        (2, 1.8, 9, 1, "2 cores, load 1.8 -> 0 free; 9 atoms"),
        (2, 5.0, 5000, 1, "2 cores, load 5.0 -> 0 free; 5000 atoms"),
        (2, 0.0, 9, 1, "2 cores, load 0.0 -> 2 free; 9 atoms (under 200: one thread)"),
        (16, 3.2, None, 13, "16 cores, load 3.2 -> 13 free"),
        (
            16,
            3.2,
            199,
            1,
            "16 cores, load 3.2 -> 13 free; 199 atoms (under 200: one thread)",
        ),
        (16, 3.2, 200, 13, "16 cores, load 3.2 -> 13 free; 200 atoms"),
        (4, 0.0, None, 4, "4 cores, load 0.0 -> 4 free"),
    ],
)
def test_free_cores_and_size(machine, cores, load, n_atoms, expected, reason):
    machine.cores, machine.load = cores, load
    assert rule.choose_threads(n_atoms) == (expected, reason)


def test_threads_option_wins_over_omp_num_threads_which_wins_over_the_rest(
    machine, monkeypatch
):
    machine.load = 0.0
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert rule.choose_threads(9) == (3, "OMP_NUM_THREADS=3")  # not the size's 1
    assert rule.choose_threads(9, requested=2) == (2, "--threads 2")
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested levels: the first
    assert rule.choose_threads()[0] == 4
    for unusable in ("", "0", "many"):  # not a count: the rule decides
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert rule.choose_threads() == (2, "2 cores, load 0.0 -> 2 free")
    with pytest.raises(ValueError, match="at least 1"):
        rule.choose_threads(requested=0)


def test_cores_without_affinity_or_load_average(machine, monkeypatch):
    def missing(*args):
        raise OSError

    monkeypatch.setattr(rule.os, "getloadavg", missing)
    assert rule.choose_threads() == (1, "2 cores, no load average")
    monkeypatch.delattr(rule.os, "sched_getaffinity")
    monkeypatch.setattr(rule.os, "cpu_count", lambda: 8)
    assert rule.available_cores() == 8
    monkeypatch.setattr(rule.os, "cpu_count", lambda: None)
    assert rule.available_cores() == 1


def test_threads_for_run_sets_and_restores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    before = torch.get_num_threads()
    rule.apply_threads(before)  # inter-op: once per process, a second call is no error
    with rule.threads_for_run(1):
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert torch.get_num_threads() == before and os.environ["OMP_NUM_THREADS"] == "7"
    monkeypatch.delenv("OMP_NUM_THREADS")
    with rule.threads_for_run(2, torch_threads=False):
        assert os.environ["OMP_NUM_THREADS"] == "2"
    assert "OMP_NUM_THREADS" not in os.environ


def test_threads_option_on_the_verbs_that_run_a_model():
    parser = build_parser()
    (verbs,) = [a for a in parser._actions if isinstance(a.choices, dict)]
    for name, sub in verbs.choices.items():
        has = any("--threads" in a.option_strings for a in sub._actions)
        assert has == (name in RUNS_A_MODEL), name
    assert {"phonons", "dielectric", "hysteresis", "coercive", "demo"} <= RUNS_A_MODEL


def test_system_sizes_of_the_verbs(tmp_path):
    from nequip_pol.cli import SYSTEM_SIZES

    path = tmp_path / "bto.extxyz"
    ase.io.write(path, ideal_structure((2, 1, 1)))
    args = argparse.Namespace(structure=str(path), index=0, repeat="2x2x1")
    assert SYSTEM_SIZES["phonons"](args) == SYSTEM_SIZES["dielectric"](args) == 10
    assert SYSTEM_SIZES["coercive"](args) == 10
    assert SYSTEM_SIZES["hysteresis"](args) == 40  # times --repeat
    args.structure = "reference:poled"
    assert SYSTEM_SIZES["hysteresis"](args) == 20
    assert SYSTEM_SIZES["train-long"](args) is None  # a training: no size


@pytest.fixture()
def structure(tmp_path):
    atoms = ideal_structure((1, 1, 1))
    atoms.rattle(0.02, seed=1)
    path = tmp_path / "bto.extxyz"
    ase.io.write(path, atoms)
    return path


@pytest.fixture()
def spy_phonons(monkeypatch):
    """Replace the work of ``phonons`` by a record of the threads it runs on."""
    import nequip_pol.cli.phonons as phonons

    seen = []

    def record(args):
        seen.append((torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")))
        return 0

    monkeypatch.setattr(phonons, "_run_phonons", record)
    return seen


def test_verb_applies_the_rule_once_before_its_work(
    structure, tmp_path, machine, spy_phonons, capsys, monkeypatch
):
    before = torch.get_num_threads()
    argv = [
        "phonons",
        "reference:paraelectric",
        str(structure),
        "-o",
        str(tmp_path / "o"),
    ]
    machine.load = 0.0
    assert main(argv + ["--threads", "2"]) == 0
    assert spy_phonons[-1] == (2, "2")
    assert capsys.readouterr().out.splitlines() == ["threads: 2 (--threads 2)"]
    assert main(argv) == 0  # 5 atoms: one thread on an idle machine
    assert spy_phonons[-1] == (1, "1")
    assert capsys.readouterr().out.splitlines() == [
        "threads: 1 (2 cores, load 0.0 -> 2 free; 5 atoms (under 200: one thread))"
    ]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert main(argv) == 0
    assert spy_phonons[-1] == (2, "2")
    assert capsys.readouterr().out.splitlines() == ["threads: 2 (OMP_NUM_THREADS=2)"]
    assert main(argv + ["--threads", "1"]) == 0
    assert spy_phonons[-1] == (1, "1")
    # restored for the caller
    assert torch.get_num_threads() == before and os.environ["OMP_NUM_THREADS"] == "2"


def test_bad_threads_and_unreadable_structure(
    tmp_path, machine, capsys, one_torch_thread
):
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["phonons", "reference:paraelectric", str(empty), "--threads", "0"])
    assert exc.value.code == 2 and "must be at least 1" in capsys.readouterr().err
    # the size is unknown: the verb, not the rule, names the problem
    assert main(["phonons", "reference:paraelectric", str(empty)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == ["threads: 2 (2 cores, load 0.0 -> 2 free)"]
    assert "nequip-pol phonons: error: cannot read the structure" in err


def test_header_is_the_first_line_of_a_real_run(
    structure, tmp_path, machine, capsys, one_torch_thread
):
    machine.load = 1.8
    prefix = str(tmp_path / "out")
    argv = ["phonons", "reference:paraelectric", str(structure), "-o", prefix]
    assert main(argv + ["--displacement", "1e-3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "threads: 1 (2 cores, load 1.8 -> 0 free; 5 atoms)"
    assert lines[1].startswith("[phonons ") and "5 atoms" in lines[1]
