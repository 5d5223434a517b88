import os
from pathlib import Path

import pytest

from segq.cpu_runtime import cpu_vendor, set_cpu_defaults


@pytest.mark.parametrize("vendor, expected", [("AuthenticAMD", "5"), ("GenuineIntel", None), ("", None)])
def test_mkl_dispatch_is_set_on_amd_only(vendor, expected):
    env = {"OMP_NUM_THREADS": "2"}
    set_cpu_defaults(env, vendor=vendor)
    assert env.get("MKL_DEBUG_CPU_TYPE") == expected
    assert env["OMP_NUM_THREADS"] == "2"


def test_user_values_are_kept():
    env = {"OMP_NUM_THREADS": "1", "MKL_DEBUG_CPU_TYPE": "4"}
    set_cpu_defaults(env, vendor="AuthenticAMD")
    assert env == {"OMP_NUM_THREADS": "1", "MKL_DEBUG_CPU_TYPE": "4"}


@pytest.mark.parametrize("cores, expected", [(7, "7"), (1, "1"), (None, "1")])
def test_threads_default_to_the_core_count(monkeypatch, cores, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)  # None: the count is unknown
    env = {}
    set_cpu_defaults(env, vendor="GenuineIntel")
    assert env == {"OMP_NUM_THREADS": expected}


def test_cpu_vendor_reads_cpuinfo(tmp_path: Path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert cpu_vendor(str(info)) == "AuthenticAMD"
    assert cpu_vendor(str(tmp_path / "missing")) == ""
