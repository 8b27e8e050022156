"""train.precision=auto: what tfllm.hardware reads of the CPU, measures and chooses."""

import json

import pytest

from tfllm import config as config_lib
from tfllm import hardware
from tfllm.configs import bench_small, bench_tiny, lstm
from tests import cli_helpers

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 {extra}

processor\t: 1
model name\t: another
flags\t\t: fpu
"""
NO_AMX = frozenset({"avx2", "fma", "avx512f", "avx512_bf16"})
AMX = NO_AMX | {"amx_tile", "amx_bf16"}


def test_cpu_info_reads_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra="amx_tile amx_bf16"))
    info = hardware.cpu_info(str(path))
    assert (info["name"], info["family"], info["model"]) == ("Intel(R) Xeon(R) Processor", "6", "207")
    assert info["flags"] == AMX | {"fpu", "sse"}
    assert hardware.cpu_line(info).endswith("flags: avx2 fma avx512f avx512_bf16 amx_tile amx_bf16")
    assert hardware.cpu_info(str(tmp_path / "missing"))["flags"] == frozenset()


def never(*args, **kwargs):
    pytest.fail("the matmul rates must not be measured for this choice")


@pytest.mark.parametrize("flags, model, width, speedup, expected", [
    (frozenset(), "gpt", 768, never, ("float32", True)),  # no bfloat16 units
    (NO_AMX, "gpt", 768, lambda: 0.6, ("float32", True)),  # the Intel VM: slower
    (NO_AMX, "gpt", 384, lambda: 1.85, ("mixed_bfloat16", False)),  # the AMD EPYC: 1.14x step
    (AMX, "gpt", 384, lambda: 3.5, ("mixed_bfloat16", False)),  # bench_small on AMX: 1.13x
    (AMX, "gpt", 128, never, ("float32", True)),  # bench_tiny's width: bfloat16 slower
    (AMX, "recurrent", 384, never, ("float32", True)),  # not measured: float32
])
def test_automatic_precision_by_the_cpu_the_model_and_the_measured_rates(flags, model, width,
                                                                        speedup, expected):
    precision, xla, why = hardware.automatic_precision(model, width, flags, speedup)
    assert (precision, xla) == expected and why


def test_speedup_from_the_cache_else_measured_once_in_a_child(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    proc = cli_helpers.run("tfllm.hardware", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {peaks[d]["dtype"] for d in peaks} == {"float32", "bfloat16"}
    assert all(p["flops_per_s"] > 1e8 and p["size"] in hardware.PEAK_SIZES for p in peaks.values())
    cache = json.loads((tmp_path / "tfllm" / "matmul_peak.json").read_text())
    assert sorted(cache.values(), key=lambda p: p["dtype"]) == [peaks["bfloat16"], peaks["float32"]]
    monkeypatch.setattr(hardware, "_measure_in_child", never)
    monkeypatch.setattr(hardware, "measure_matmul_peak", never)
    assert hardware.matmul_peak("float32") == peaks["float32"]  # cached: not measured again
    expected = 0.0 if peaks["bfloat16"]["xla"] else (peaks["bfloat16"]["flops_per_s"]
                                                     / peaks["float32"]["flops_per_s"])
    assert hardware.bfloat16_speedup() == expected


def test_speedup_measured_where_nothing_is_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(hardware, "_measured", {})
    peak = lambda dtype, gflops, xla=False: {"flops_per_s": gflops * 1e9, "dtype": dtype,
                                             "size": 2048, "xla": xla}
    monkeypatch.setattr(hardware, "_measure_in_child", lambda: {
        "float32": peak("float32", 470), "bfloat16": peak("bfloat16", 868)})
    assert hardware.bfloat16_speedup() == pytest.approx(868 / 470)
    assert "measuring this CPU's float32 and bfloat16 matmul rates" in capsys.readouterr().err
    monkeypatch.setattr(hardware, "_measure_in_child", never)
    assert hardware.bfloat16_speedup() == pytest.approx(868 / 470)  # once per process
    monkeypatch.setattr(hardware, "_measured", {"float32": peak("float32", 300),
                                                "bfloat16": peak("bfloat16", 310, xla=True)})
    assert hardware.bfloat16_speedup() == 0.0  # fastest under XLA, which training skips


def test_the_cached_peak_is_the_highest_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    peak = lambda gflops: {"flops_per_s": gflops * 1e9, "dtype": "float32", "size": 3072}
    hardware.remember_peak(peak(160))
    hardware.remember_peak(peak(130))  # a reading in a slow stretch
    assert hardware.matmul_peak("float32") == peak(160)
    hardware.remember_peak(peak(170))
    assert hardware.matmul_peak("float32") == peak(170)


@pytest.fixture
def amx(monkeypatch):
    """A CPU with AMX whose bfloat16 matmuls run at 3.5x float32's."""
    monkeypatch.setattr(hardware, "cpu_info", lambda path=None: {
        "name": "x", "family": "6", "model": "143", "flags": AMX})
    monkeypatch.setattr(hardware, "bfloat16_speedup", lambda: 3.5)


def test_auto_resolves_when_validated_and_records_a_concrete_precision(amx):
    config = bench_small.get_config()
    assert config.train.precision == "auto"  # the default
    frozen = config_lib.validate(config)
    assert (frozen.train.precision, frozen.train.xla) == ("mixed_bfloat16", False)
    assert config.train.precision == "auto"  # the caller's config is left as it was
    assert config_lib.validate(frozen) == frozen  # a validated config stays as it is
    tiny, recurrent = config_lib.validate(bench_tiny.get_config()), config_lib.validate(lstm.get_config())
    assert (tiny.train.precision, tiny.train.xla) == ("float32", True)
    assert recurrent.train.precision == "float32"


def test_auto_keeps_float32_and_the_xla_setting_where_the_run_needs_float32(amx):
    config = bench_small.get_config()
    config.train.update(qat_start_step=5, xla=False)
    frozen = config_lib.validate(config)
    assert (frozen.train.precision, frozen.train.xla) == ("float32", False)
    assert "quantization-aware" in config_lib.precision_choice(config)[2]
    config.train.update(qat_start_step=-1, prune_sparsity=0.5)
    assert config_lib.validate(config).train.precision == "float32"


def test_a_bad_key_is_reported_before_anything_is_measured(amx, monkeypatch):
    monkeypatch.setattr(hardware, "bfloat16_speedup", never)
    config = bench_small.get_config()
    config.train.steps = 0
    with pytest.raises(config_lib.UserError, match="train.steps"):
        config_lib.validate(config)


def test_a_mesh_settles_auto_to_float32(amx):
    config = bench_small.get_config()
    config_lib.settle_precision_for_strategy(config, "mirrored")
    assert config.train.precision == "auto"
    config_lib.settle_precision_for_strategy(config, "dtensor")
    assert config_lib.validate(config).train.precision == "float32"


def test_an_explicit_precision_is_kept(amx):
    config = bench_small.get_config()
    config.train.precision = "float32"
    frozen = config_lib.validate(config)
    assert (frozen.train.precision, frozen.train.xla) == ("float32", True)
