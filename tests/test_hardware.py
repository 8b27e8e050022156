"""train.precision=auto: what tfllm.hardware reads of the CPU and what it chooses."""

import pytest

from tfllm import config as config_lib
from tfllm import hardware
from tfllm.configs import bench_small, bench_tiny, lstm

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


@pytest.mark.parametrize("flags, model, width, expected", [
    (frozenset(), "gpt", 768, ("float32", True)),
    (NO_AMX, "gpt", 768, ("float32", True)),  # AVX512_BF16 alone: slower than float32
    (AMX, "gpt", 384, ("mixed_bfloat16", False)),  # bench_small on AMX: 1.13x
    (AMX, "gpt", 128, ("float32", True)),  # bench_tiny's width: bfloat16 slower
    (AMX, "recurrent", 384, ("float32", True)),  # not measured: float32
])
def test_automatic_precision_by_the_cpu_and_the_model(flags, model, width, expected):
    precision, xla, why = hardware.automatic_precision(model, width, flags)
    assert (precision, xla) == expected and why


@pytest.fixture
def amx(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_info", lambda path=None: {
        "name": "x", "family": "6", "model": "143", "flags": AMX})


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


def test_an_explicit_precision_is_kept(amx):
    config = bench_small.get_config()
    config.train.precision = "float32"
    frozen = config_lib.validate(config)
    assert (frozen.train.precision, frozen.train.xla) == ("float32", True)
