"""The system model, hand-worked: DRAM per batch, resident models, chip counts, static energy."""
from __future__ import annotations

import math

import pytest

from spikemfm.energy.system import BE_CAP, break_even, chip_system, dense_system
from spikemfm.energy.workload import LayerWork
from spikemfm.hardware.profiles import load_profile

DENSE = load_profile("eyeriss_int8")
CHIP = load_profile("loihi2")


def layer(name: str, fan_in: int, fan_out: int, sops: float = 0.0) -> LayerWork:
    return LayerWork(name, "synapse", "", dense_macs=fan_in * fan_out, weights=fan_in * fan_out,
                     act_elements=fan_in + fan_out, w_bits=8, a_bits=8, sops=sops, event_sops=sops)


WORKS = [layer("a", 1000, 1000), layer("b", 1000, 2000)]  # 1 MB and 2 MB of int8 weights


def v(name: str, p=DENSE) -> float:
    return p.terms[name].value


def test_streamed_weights_are_read_once_per_batch():
    one = dense_system(WORKS, DENSE, 0.0, batch=1, onchip_bytes=1.5e6)
    eight = dense_system(WORKS, DENSE, 0.0, batch=8, onchip_bytes=1.5e6)
    streamed_bits = 8 * 2e6  # "a" fits, "b" streams
    assert one.dram_nj == pytest.approx(streamed_bits * v("dram_pj_per_bit") / 1e3)
    assert eight.dram_nj == pytest.approx(one.dram_nj / 8)


def test_a_model_that_fits_charges_no_dram():
    row = dense_system(WORKS, DENSE, 0.0, batch=1, onchip_bytes=4e6)
    assert row.dram_nj == 0
    macs = 3e6
    assert row.latency_ms == pytest.approx(macs / (v("peak_gmacs") * 1e9) * 1e3)
    assert row.static_nj == pytest.approx(v("static_w") * row.latency_ms / 1e3 * 1e9)


def test_latency_is_memory_bound_when_weights_stream():
    row = dense_system(WORKS, DENSE, 0.0, batch=1, onchip_bytes=0)
    traffic = 3e6 + 2 * 3000  # every weight, and the largest layer's activations written and read back
    assert row.latency_ms == pytest.approx(traffic / (v("dram_gbps") * 1e9) * 1e3)


def test_chips_hold_the_synapses_and_static_is_chips_power_latency():
    per_chip = v("synapse_bits_per_chip", CHIP) / v("bits_per_synapse", CHIP)  # synapses per chip
    big = [layer("w", 1000, int(2.5 * per_chip / 1000))]
    neuron = LayerWork("n", "neuron", "", neurons=10, spikes=100.0, messages=40.0)
    row = chip_system(big + [neuron], CHIP, 0.0, steps=3, depth=2)
    assert row.chips == math.ceil(2.5) == 3
    t_step = v("step_floor_us", CHIP) * 1e-6  # no synops: the floor
    assert row.latency_ms == pytest.approx((3 + 2 - 1) * t_step * 1e3)
    assert row.static_nj == pytest.approx(3 * v("static_w_per_chip", CHIP) * (4 * t_step) * 1e9)
    assert row.interchip_nj == pytest.approx(40 * 2 / 3 * v("interchip_pj", CHIP) / 1e3)


def test_missing_terms_are_reported_not_zero():
    row = chip_system(WORKS, load_profile("horowitz45"), 1.0, steps=1, depth=1)
    assert row.energy_nj is None and "neurons_per_chip" in row.missing


def test_energy_cli_system_rows_for_an_encoder(tmp_path):
    import json

    from spikemfm.cli import main

    out = tmp_path / "e"
    assert main(["energy", "--profile", "loihi2", "--images", "2", "-T", "2", "--batch", "1", "8",
                 "--onchip-mib", "0", "--out", str(out)]) == 0
    rows = json.loads((out / "energy_system.json").read_text())["rows"]
    assert [r["path"] for r in rows] == ["snn", "dense", "dense", "dense", "dense"]
    nothing1, whole1, nothing8 = rows[1], rows[2], rows[3]
    assert nothing1["dram_nj"] > 0 and whole1["dram_nj"] == 0
    assert nothing8["dram_nj"] < nothing1["dram_nj"]
    assert rows[0]["chips"] == 1 and rows[0]["static_nj"] > 0
    assert main(["energy", "--batch", "0", "--out", str(tmp_path / "bad")]) == 2


def test_break_even_activity_by_hand():
    """No synaptic work: the step is the floor, so E(s) = fixed + s · rate + static and s* is linear algebra."""
    neuron = LayerWork("n", "neuron", "", neurons=10, spikes=100.0, messages=40.0)
    row = chip_system([layer("a", 10, 10), neuron], CHIP, ops_nj=50.0, steps=2, depth=3, rate_nj=20.0)
    static = 1 * v("static_w_per_chip", CHIP) * (2 + 3 - 1) * v("step_floor_us", CHIP) * 1e-6 * 1e9
    assert row.chips == 1 and row.interchip_nj == 0  # one chip: no inter-chip messages
    assert row.activity.energy_nj(1.0) == pytest.approx(row.energy_nj)
    assert row.activity.energy_nj(0.0) == pytest.approx(30.0 + static)
    dense = 30.0 + static + 20.0 * 0.25  # the SNN at a quarter of its activity
    assert break_even(row.activity, dense) == pytest.approx(0.25)
    assert break_even(row.activity, 30.0 + static) is None  # a silent network already costs that
    assert break_even(row.activity, 1e12) == BE_CAP


def test_a_stream_pays_static_power_for_the_frame_period():
    frame = 1 / 30
    snn = chip_system([layer("a", 10, 10)], CHIP, 0.0, steps=2, depth=1, frame_s=frame)
    assert snn.latency_ms < frame * 1e3 and snn.as_dict()["realtime"] is True
    assert snn.static_nj == pytest.approx(v("static_w_per_chip", CHIP) * frame * 1e9)
    dense = dense_system(WORKS, DENSE, 0.0, batch=4, onchip_bytes=4e6, frame_s=frame)
    assert dense.static_nj == pytest.approx(v("static_w") * frame / 4 * 1e9)  # 4 streams share the frame
    assert dense.as_dict()["frame_ms"] == pytest.approx(frame * 1e3, rel=1e-3)
