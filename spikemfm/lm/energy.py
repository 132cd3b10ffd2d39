"""Energy per generated token of a spiking decoder, against dense baselines of the same graph, on any profile.

Each decoded token is one SNN pass over its own position (attending to the integer KV cache), stepped until it
settles. Its recorded work (unit spikes, synaptic and spike×spike operations, float-unit evaluations) is priced by
:func:`spikemfm.energy.estimate_energy` on a netlist traced at the sequence's length after that token: every
per-token quantity of that trace scaled to one token is the work of the last position — the Linear layers once,
Q·Kᵀ and A·V over all cached positions — which is what a dense decoder with a KV cache does for that token. The
dense baselines are priced the way the encoders' are: each weight read once from on-chip memory (no DRAM — the
system-energy model prices that), so these are operation energies per token, not the system's.
"""
from __future__ import annotations

import statistics
from typing import Any

import torch

from spikemfm.energy import estimate_energy
from spikemfm.energy.system import system_rows
from spikemfm.ir.decoder import KVCache
from spikemfm.ir.netlist import build_netlist
from spikemfm.snn.decode import DecodePass, chunked_pass, snn_pass
from spikemfm.snn.simulate import SimResult


def token_reports(snn: Any, prompt: torch.Tensor, new_tokens: int, profiles: list[Any],
                  systems: tuple[tuple[int, float | None], ...] = (), model: str = "") -> list[dict[str, Any]]:
    """Greedy-decodes ``new_tokens`` after ``prompt`` (1, L) and prices each decoded token on every profile:
    one row per (token, profile) with the report's summary (nJ) and the pass's steps and tokens. With
    ``systems`` ((batch, on-chip bytes or None = the whole model) pairs), the rows are instead the system
    estimates of :mod:`spikemfm.energy.system` per token: the SNN on the profile's chips, and the dense int8
    model on the profile's dense reference for every (batch, on-chip) pair, its KV cache included."""
    cache = KVCache()
    logits, _, _, settled = chunked_pass(snn, prompt, cache)
    rows = []
    for i in range(new_tokens):
        tok = logits[:, -1].argmax(-1)
        p = snn_pass(snn, tok[:, None], cache)
        sim = pass_sim(snn, p, cache.length)
        head = {"token": i, "position": cache.length - 1, "token_id": int(tok[0]), "settled": p.settled}
        for prof in profiles:
            rep = estimate_energy(sim, prof)
            if not systems:
                rows.append({**head, **rep.summary()})
                continue
            rows += [{**head, **r} for r in system_rows(sim, rep, systems, model, "token", cache.nbytes())]
        logits = p.logits
    return rows


def pass_sim(snn: Any, p: DecodePass, length: int) -> SimResult:
    """A decode pass of the last position of a ``length``-token sequence as a :class:`SimResult` to price."""
    return SimResult(p.logits[None], *p.stats, p.steps, p.logits.shape[0], snn.config.max_spikes_per_step,
                     snn.graph, snn.qparams, netlist=build_netlist(snn.graph, length), context=length)


def per_token(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per profile: the median over decoded tokens of each energy (nJ per token), steps and ratios."""
    out = []
    for prof in dict.fromkeys(r["profile"] for r in rows):
        mine = [r for r in rows if r["profile"] == prof]
        row: dict[str, Any] = {"profile": prof, "dense_profile": mine[0]["dense_profile"], "tokens": len(mine),
                               "all_settled": all(r["settled"] for r in mine)}
        for k in mine[0]:
            if k.endswith("_nJ") or k.startswith("snn/") or k in ("steps", "spike_rate"):
                vals = [r[k] for r in mine]
                row[k] = round(statistics.median(vals), 4) if all(isinstance(v, (int, float)) for v in vals) \
                    else next(v for v in vals if not isinstance(v, (int, float)))
        row["complete"] = mine[0]["complete"]
        out.append(row)
    return out


class PricedRunner:
    """An SNN's cached passes (a :class:`~spikemfm.lm.generate.Runner`), each priced after the prefill: per
    profile the SNN's operation energy (nJ), and on ``chip`` the system estimate of
    :func:`~spikemfm.energy.system.chip_system` (operations + static power × latency; nJ and ms). ``totals``
    accumulate over the priced passes; ``steps`` counts their algorithmic steps plus the pipeline depth − 1 each
    (the time a pass occupies a chip that moves spikes one layer per step). Give it to
    :func:`spikemfm.lm.generate` through :class:`Priced` (a model that brings its own runner)."""

    path = "snn"

    def __init__(self, snn: Any, profiles: list[Any], chip: Any, price_prefill: bool = False) -> None:
        from spikemfm.energy.system import neuron_depth

        self.snn, self.profiles, self.chip, self.cache = snn, profiles, chip, KVCache()
        self.depth = neuron_depth(snn.netlist)
        self.prefilled, self.price_prefill = False, price_prefill
        self.totals: dict[str, float] = {"passes": 0, "steps": 0.0, "system_nj": 0.0, "latency_ms": 0.0,
                                         **{f"{p.name}_nj": 0.0 for p in profiles}}

    def run(self, ids: torch.Tensor, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, int, float, bool]:
        first, self.prefilled = not self.prefilled, True
        priced = not first or self.price_prefill  # the prompt is not part of the per-token cost unless asked
        return chunked_pass(self.snn, ids, self.cache, x0=x0, on_pass=self.price if priced else None)

    def price(self, p: DecodePass) -> None:
        sim = pass_sim(self.snn, p, self.cache.length)
        t = self.totals
        t["passes"] += 1
        t["steps"] += p.steps + self.depth - 1
        reports = {prof.name: estimate_energy(sim, prof) for prof in self.profiles}
        for name, rep in reports.items():
            t[f"{name}_nj"] += rep.snn_total / 1e3
        chip = reports.get(self.chip.name) or estimate_energy(sim, self.chip)  # priced once when also a profile
        snn_row = system_rows(sim, chip, (), kv_bytes=self.cache.nbytes())[0]
        t["system_nj"] += snn_row["energy_nj"] or 0.0
        t["latency_ms"] += snn_row["latency_ms"] or 0.0

    def cache_bytes(self) -> int:
        return self.cache.nbytes()

    def rollback(self, length: int) -> None:
        self.cache.truncate(length)


class Priced:
    """An SNN whose generation is priced pass by pass (``runner()`` → a fresh :class:`PricedRunner`, kept in
    ``last`` to read its totals)."""

    def __init__(self, snn: Any, profiles: list[Any], chip: Any, price_prefill: bool = False) -> None:
        self.snn, self.profiles, self.chip, self.last, self.price_prefill = snn, profiles, chip, None, price_prefill
        self.vocab_size = int(snn.graph.readout.proj.weight.shape[0])

    def runner(self) -> PricedRunner:
        self.last = PricedRunner(self.snn, self.profiles, self.chip, self.price_prefill)
        return self.last
