"""runtime.power on REAL tegrastats lines, each copied verbatim from the public source named beside it.

Expected numbers are read off the lines by eye; energy integration is checked against scipy's trapezoid rule.
"""

from __future__ import annotations

import sys
import textwrap
import time

import pytest
from scipy.integrate import trapezoid

from biomoe_edge.runtime import power

# Jetson Orin Nano 8GB, JetPack 6 (r36) format: VDD_IN / VDD_CPU_GPU_CV / VDD_SOC in mW, GR3D frequency in [].
# Source: github.com/henrygd/beszel, agent/gpu_test.go, TestParseJetsonData case "more valid data".
ORIN_NANO_R36 = (
    "11-15-2024 08:38:09 RAM 6185/7620MB (lfb 8x2MB) SWAP 851/3810MB (cached 1MB) "
    "CPU [15%@729,11%@729,14%@729,13%@729,11%@729,8%@729] EMC_FREQ 43%@2133 GR3D_FREQ 63%@[621] "
    "NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@53.968C soc2@52.437C soc0@50.75C "
    "gpu@53.343C tj@53.968C soc1@51.656C VDD_IN 12479mW/12479mW VDD_CPU_GPU_CV 4667mW/4667mW VDD_SOC 2817mW/2817mW"
)
# Jetson Orin Nano, two cores clocked differently, no frequency on GR3D_FREQ.
# Source: github.com/henrygd/beszel, agent/gpu_test.go, TestParseJetsonData case "orin nano".
ORIN_NANO_NO_GR3D_FREQ = (
    "06-18-2025 11:25:24 RAM 3452/7620MB (lfb 25x4MB) SWAP 1518/16384MB (cached 174MB) "
    "CPU [1%@1420,2%@1420,0%@1420,2%@1420,2%@729,1%@729] GR3D_FREQ 0% cpu@50.031C soc2@49.031C soc0@50C "
    "gpu@49.031C tj@50.25C soc1@50.25C VDD_IN 4824mW/4824mW VDD_CPU_GPU_CV 518mW/518mW VDD_SOC 1475mW/1475mW"
)
# Jetson AGX Orin 64GB, L4T R36.4.4: no VDD_IN; rails VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0. Three lines 1 s apart.
# Source: github.com/lesomnus/tegra-exporter, stats/parse_test.go, TestParse subtest "5.15.148".
AGX_ORIN_R36 = [
    "05-09-2026 18:42:06 RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [14%@2188,5%@2112,8%@2035,"
    "14%@2201,46%@1267,47%@1267,2%@1267,10%@1267,4%@1036,5%@1036,6%@1036,10%@1036] EMC_FREQ 3%@2133 GR3D_FREQ 0%@[0,0] "
    "NVENC 79%@166 NVDEC off NVJPG off NVJPG1 off VIC 36%@115 OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 "
    "cpu@52.562C soc2@48.437C soc0@49.093C tj@52.562C soc1@49.656C VDD_GPU_SOC 2412mW/2412mW VDD_CPU_CV 1607mW/1607mW "
    "VIN_SYS_5V0 4707mW/4707mW",
    "05-09-2026 18:42:07 RAM 18202/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [16%@1949,6%@1761,4%@1222,"
    "4%@2201,4%@1036,33%@1036,0%@1036,40%@1036,3%@1190,46%@1190,6%@1190,2%@1190] EMC_FREQ 3%@2133 GR3D_FREQ 0%@[0,0] "
    "NVENC 78%@166 NVDEC off NVJPG off NVJPG1 off VIC 32%@115 OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 "
    "cpu@52.343C soc2@48.343C soc0@49.062C tj@52.343C soc1@49.531C VDD_GPU_SOC 2412mW/2412mW VDD_CPU_CV 1607mW/1607mW "
    "VIN_SYS_5V0 4607mW/4657mW",
    "05-09-2026 18:42:08 RAM 18203/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [14%@729,5%@1648,4%@1645,"
    "3%@2050,3%@1113,0%@1113,0%@1113,70%@1113,4%@1651,32%@1651,3%@1651,15%@1651] EMC_FREQ 2%@2133 GR3D_FREQ 0%@[0,0] "
    "NVENC 78%@179 NVDEC off NVJPG off NVJPG1 off VIC 37%@115 OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 "
    "cpu@52.156C soc2@48.468C soc0@49.218C tj@52.156C soc1@49.625C VDD_GPU_SOC 2412mW/2412mW VDD_CPU_CV 1607mW/1607mW "
    "VIN_SYS_5V0 4707mW/4674mW",
]
# Jetson AGX Thor, L4T R38.4.0 (JetPack 7): GR3D_FREQ without a load figure, three GPCs; Thor's rail names.
# Source: github.com/lesomnus/tegra-exporter, stats/parse_test.go, TestParse subtest "6.8.12".
THOR_R38 = (
    "05-17-2026 10:00:33 RAM 4280/125773MB (lfb 29x4MB) SWAP 0/2048MB (cached 0MB) CPU [0%@972,0%@972,0%@972,0%@972,"
    "1%@972,0%@972,1%@972,0%@972,0%@2601,17%@2601,1%@972,9%@972,0%@972,1%@972] EMC_FREQ 0%@665 GR3D_FREQ @[0,0,0] "
    "NVENC0_FREQ @0 NVENC1_FREQ @0 NVDEC0_FREQ @0 NVDEC1_FREQ @0 NVJPG0_FREQ @0 VIC off OFA_FREQ @0 PVA0_FREQ off "
    "APE 300 cpu@35.25C tj@36.031C soc012@36.062C soc345@34.5C VDD_GPU 0mW/0mW VDD_CPU_SOC_MSS 4923mW/4544mW "
    "VIN_SYS_5V0 4327mW/4227mW"
)
# Jetson TX2, L4T r32: rails without units, VDD_IN present.
# Source: github.com/FindHao/tx-utils issue #3 ("The code does not accommodate with the latest tegrastats").
TX2_R32 = (
    "RAM 2020/7852MB (lfb 1164x4MB) CPU [9%@345,21%@345,25%@345,3%@345,1%@345,1%@345] EMC_FREQ 0% GR3D_FREQ 0% "
    "PLL@42.5C MCPU@42.5C PMIC@100C Tboard@40C GPU@41C BCPU@42.5C thermal@41.9C Tdiode@41.25C VDD_SYS_GPU 153/158 "
    "VDD_SYS_SOC 536/547 VDD_4V0_WIFI 633/527 VDD_IN 3140/3208 VDD_SYS_CPU 536/590 VDD_SYS_DDR 557/601"
)
# Jetson AGX Xavier, JetPack 4.2: rails named GPU, CPU, SOC, CV, VDDRQ, SYS5V and no input rail.
# Source: github.com/martinkersner/gtop pull request #7 ("Added AGX/Xavier support"), comment of 2019-06-17.
AGX_XAVIER_R32 = (
    "RAM 14700/15692MB (lfb 3x2MB) SWAP 898/8192MB (cached 23MB) CPU [0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,"
    "0%@1190,0%@1190,0%@1190] EMC_FREQ 0% GR3D_FREQ 0% AO@30C GPU@30.5C Tboard@31C Tdiode@32C AUX@30.5C CPU@31.5C "
    "thermal@30.8C PMIC@100C GPU 463/463 CPU 618/618 SOC 2936/2936 CV 0/0 VDDRQ 309/309 SYS5V 3306/3306"
)
# Jetson TX1, L4T r28: one frequency for all cores after the bracket.
# Source: github.com/hordiales/jetson-tx1-dev, SCRIPTS.md.
TX1_R28 = (
    "RAM 3468/3983MB (lfb 48x4MB) SWAP 873/8192MB (cached 295MB) cpu [17%,13%,29%,5%]@408 EMC 1%@408 APE 25 GR3D 3%@76"
)


def test_orin_nano_rails_memory_cpu_gpu_and_temperatures():
    s = power.parse_tegrastats_line(ORIN_NANO_R36)
    assert s.timestamp == "11-15-2024 08:38:09"
    assert (s.ram_used_mb, s.ram_total_mb, s.swap_used_mb, s.swap_total_mb) == (6185, 7620, 851, 3810)
    assert [c.load_pct for c in s.cpu] == [15, 11, 14, 13, 11, 8]
    assert {c.freq_mhz for c in s.cpu} == {729}
    assert (s.gr3d_pct, s.gr3d_freq_mhz) == (63, (621,))
    assert s.temperatures_c == {
        "cpu": 53.968, "soc2": 52.437, "soc0": 50.75, "gpu": 53.343, "tj": 53.968, "soc1": 51.656,
    }
    assert s.rails == {
        "VDD_IN": power.RailPower(12479, 12479),
        "VDD_CPU_GPU_CV": power.RailPower(4667, 4667),
        "VDD_SOC": power.RailPower(2817, 2817),
    }
    # VDD_IN is the module input: it is the total, never summed with its sub-rails.
    assert s.total_power_mw() == 12479


def test_orin_nano_without_gr3d_frequency():
    s = power.parse_tegrastats_line(ORIN_NANO_NO_GR3D_FREQ)
    assert (s.gr3d_pct, s.gr3d_freq_mhz) == (0, ())
    assert [c.freq_mhz for c in s.cpu] == [1420, 1420, 1420, 1420, 729, 729]
    assert s.total_power_mw() == 4824
    assert s.rails["VDD_CPU_GPU_CV"].current_mw == 518


def test_agx_orin_sums_rails_and_keeps_current_and_average_apart():
    s = power.parse_tegrastats_line(AGX_ORIN_R36[1])
    assert s.rails["VIN_SYS_5V0"] == power.RailPower(current_mw=4607, average_mw=4657)
    assert set(s.rails) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"}
    assert s.total_power_mw() == 2412 + 1607 + 4607
    assert s.gr3d_freq_mhz == (0, 0)  # two GPCs
    assert len(s.cpu) == 12 and s.cpu[7] == power.CpuCore(online=True, load_pct=40, freq_mhz=1036)
    assert s.temperatures_c["tj"] == 52.343
    assert (s.ram_used_mb, s.ram_total_mb) == (18202, 62841)


def test_agx_orin_dram_rail_is_not_counted_twice():
    # AGX Orin's second INA3221 reports VDDQ_VDD2_1V8AO (fed from VIN_SYS_5V0) and unconnected NC channels.
    rails = {
        "VDD_GPU_SOC": power.RailPower(2340, 2340), "VDD_CPU_CV": power.RailPower(390, 390),
        "VIN_SYS_5V0": power.RailPower(4025, 4025), "NC": power.RailPower(0, 0),
        "VDDQ_VDD2_1V8AO": power.RailPower(301, 301),
    }
    assert power.total_power_mw(rails) == 2340 + 390 + 4025
    # Thor's VIN (the carrier board's input) contains the module rails: never added to them.
    thor = power.parse_tegrastats_line(THOR_R38).rails | {"VIN": power.RailPower(15000, 15000)}
    assert power.total_power_mw(thor) == 0 + 4923 + 4327


def test_thor_r38_format():
    s = power.parse_tegrastats_line(THOR_R38)
    assert s.gr3d_pct is None and s.gr3d_freq_mhz == (0, 0, 0)
    assert s.rails["VDD_CPU_SOC_MSS"] == power.RailPower(4923, 4544)
    assert s.total_power_mw() == 0 + 4923 + 4327
    assert s.temperatures_c == {"cpu": 35.25, "tj": 36.031, "soc012": 36.062, "soc345": 34.5}
    assert len(s.cpu) == 14 and s.cpu[9].freq_mhz == 2601 and s.cpu[9].load_pct == 17


def test_tx2_r32_unitless_rails():
    s = power.parse_tegrastats_line(TX2_R32)
    assert s.rails["VDD_SYS_GPU"] == power.RailPower(153, 158)
    assert s.total_power_mw() == 3140
    assert s.timestamp is None and s.gr3d_freq_mhz == () and s.gr3d_pct == 0
    assert s.temperatures_c["PMIC"] == 100.0 and s.temperatures_c["Tdiode"] == 41.25


def test_agx_xavier_rails_without_vdd_prefix():
    s = power.parse_tegrastats_line(AGX_XAVIER_R32)
    assert set(s.rails) == {"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"}
    assert s.total_power_mw() == 463 + 618 + 2936 + 0 + 309 + 3306
    assert "RAM" not in s.rails and "SWAP" not in s.rails


def test_tx1_shared_core_frequency_and_no_power():
    s = power.parse_tegrastats_line(TX1_R28.replace("cpu [", "CPU ["))
    assert [(c.load_pct, c.freq_mhz) for c in s.cpu] == [(17, 408), (13, 408), (29, 408), (5, 408)]
    assert s.rails == {}
    with pytest.raises(ValueError, match="no power rails"):
        s.total_power_mw()


def test_offline_cores_and_garbage():
    s = power.parse_tegrastats_line(ORIN_NANO_R36.replace("CPU [15%@729,11%@729", "CPU [15%@729,off"))
    assert s.cpu[1] == power.CpuCore(online=False)
    with pytest.raises(ValueError, match="not a tegrastats line"):
        power.parse_tegrastats_line("tegrastats: permission denied")


def test_energy_matches_scipy_trapezoid():
    times = [10.0, 11.0, 12.0]
    watts = [power.parse_tegrastats_line(line).total_power_mw() / 1000 for line in AGX_ORIN_R36]
    samples = list(zip(times, watts))
    assert power.integrate_energy_j(samples, 10.0, 12.0) == pytest.approx(trapezoid(watts, times))
    # A span inside one interval: linear interpolation, 10.25..10.75 s lies on the 8.726 W -> 8.626 W segment.
    assert power.integrate_energy_j(samples, 10.25, 10.75) == pytest.approx(0.5 * (8.701 + 8.651) / 2)
    # Before the first sample the first value is held.
    assert power.integrate_energy_j(samples, 9.0, 10.0) == pytest.approx(8.726)
    assert power.energy_per_embedding_j(samples, 10.0, 12.0, 100) == pytest.approx(trapezoid(watts, times) / 100)
    assert power.energy_per_embedding_j(samples, 10.0, 12.0, 100, baseline_w=8.0) == pytest.approx(
        (trapezoid(watts, times) - 16.0) / 100
    )


def test_energy_rejects_bad_spans():
    with pytest.raises(ValueError, match="empty time span"):
        power.integrate_energy_j([(0.0, 1.0)], 1.0, 1.0)
    with pytest.raises(ValueError, match="no power samples"):
        power.integrate_energy_j([], 0.0, 1.0)
    with pytest.raises(ValueError, match="n_embeddings"):
        power.energy_per_embedding_j([(0.0, 1.0)], 0.0, 1.0, 0)


def test_sampler_reads_a_live_process_and_counts_unparsed_lines():
    # The background reader against a real child process that replays the recorded AGX Orin lines 50 ms apart
    # (no tegrastats off a Jetson): checks the threading, timestamps and accounting, not the board.
    script = textwrap.dedent(
        f"""
        import sys, time
        for line in {AGX_ORIN_R36!r} + ["tegrastats: some warning"]:
            print(line, flush=True)
            time.sleep(0.05)
        """
    )
    t_start = time.monotonic()
    with power.TegrastatsSampler(interval_ms=50, command=[sys.executable, "-c", script]) as sampler:
        deadline = time.monotonic() + 10
        while sampler.unparsed_lines == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    samples = sampler.samples
    assert len(samples) == 3 and sampler.unparsed_lines == 1
    times = [t for t, _ in samples]
    assert t_start < times[0] < times[1] < times[2]
    assert [w for _, w in sampler.power_samples()] == [8.726, 8.626, 8.726]
    assert sampler.energy_j(times[0], times[2]) == pytest.approx(trapezoid([8.726, 8.626, 8.726], times))


def test_sampler_reports_why_tegrastats_gave_nothing():
    script = "import sys; print('tegrastats: permission denied for INA3221', file=sys.stderr); sys.exit(1)"
    sampler = power.TegrastatsSampler(command=[sys.executable, "-c", script]).start()
    time.sleep(0.3)
    sampler.stop()
    assert sampler.returncode == 1
    with pytest.raises(ValueError, match=r"exited with status 1\): tegrastats: permission denied"):
        power.energy_per_embedding_j(sampler, 0.0, 1.0, 10)


def test_sampler_without_tegrastats_says_so():
    with pytest.raises(RuntimeError, match="not found"):
        power.TegrastatsSampler(command=["tegrastats-that-does-not-exist"]).start()


# /etc/nvpmodel.conf of an Orin Nano on JetPack 6.2 (mode lines and the default; parameter lines trimmed),
# as quoted in public Jetson tooling tests: 15W=0, 25W=1, MAXN_SUPER=2, 7W=3.
ORIN_NANO_SUPER_CONF = """\
< PARAM TYPE=FILE NAME=CPU_ONLINE >
CORE_0 /sys/devices/system/cpu/cpu0/online

< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
GPU MAX_FREQ 612000000

< POWER_MODEL ID=1 NAME=25W >
CPU_ONLINE CORE_0 1
GPU MAX_FREQ 918000000

< POWER_MODEL ID=2 NAME=MAXN_SUPER >
CPU_ONLINE CORE_0 1
GPU MAX_FREQ -1

< POWER_MODEL ID=3 NAME=7W >
CPU_ONLINE CORE_0 1

< PM_CONFIG DEFAULT=1 >
"""
# AGX Orin numbers the same names differently: MAXN is ID 0.
AGX_ORIN_CONF = "< POWER_MODEL ID=0 NAME=MAXN >\n< POWER_MODEL ID=1 NAME=MODE_15W >\n< POWER_MODEL ID=2 NAME=MODE_30W >\n"


def test_nvpmodel_modes_by_name_never_by_number():
    modes, default = power.parse_nvpmodel_conf(ORIN_NANO_SUPER_CONF)
    assert [(m.id, m.name) for m in modes] == [(0, "15W"), (1, "25W"), (2, "MAXN_SUPER"), (3, "7W")]
    assert default == 1
    assert power.nvpmodel_set_command("MAXN_SUPER", ORIN_NANO_SUPER_CONF) == ["nvpmodel", "-m", "2"]
    assert power.nvpmodel_set_command("7w", ORIN_NANO_SUPER_CONF) == ["nvpmodel", "-m", "3"]
    assert power.nvpmodel_set_command("MAXN", AGX_ORIN_CONF) == ["nvpmodel", "-m", "0"]
    with pytest.raises(ValueError, match=r"no nvpmodel mode named 'MAXN'.*MAXN_SUPER \(ID 2\)"):
        power.nvpmodel_mode_id("MAXN", ORIN_NANO_SUPER_CONF)


def test_nvpmodel_query_output():
    assert power.parse_nvpmodel_query("NV Power Mode: MAXN_SUPER\n2\n") == power.NvpModel(2, "MAXN_SUPER")
    with pytest.raises(ValueError, match="unexpected"):
        power.parse_nvpmodel_query("nvpmodel: command not found")


def test_jetson_clocks_rejects_unknown_action():
    with pytest.raises(ValueError, match="unknown jetson_clocks action"):
        power.jetson_clocks("turbo")


def test_power_imports_nothing_heavy():
    import subprocess

    code = "import sys, biomoe_edge.runtime.power; print(sorted(m for m in ('numpy','torch','cupy','tensorrt') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
