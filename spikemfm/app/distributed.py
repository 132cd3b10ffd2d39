"""Data-parallel work under ``torchrun``: which process this is, and gathering results on every rank.

``torchrun`` sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` and the rendezvous address; :func:`start` joins the
process group (gloo on the CPU, nccl on CUDA) when the world has more than one process, and is a no-op in a plain
single process. Results are gathered as Python objects (:func:`gather`) and summed by the caller in a fixed order,
so the totals are the same numbers whatever the number of processes (a float all-reduce would add in an order
that depends on the world size).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from spikemfm.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes; ``joined``: a process group was initialised here."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    joined: bool = False

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the results."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment {name}={text!r}: not an integer (torchrun sets it)") from None


def start(device: str | None = None) -> World:
    """Joins the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (gloo for CPU runs, nccl when ``device`` is
    CUDA); returns this process's :class:`World`."""
    size, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK={rank}, WORLD_SIZE={size}: need 0 <= RANK < WORLD_SIZE")
    if size == 1:
        return World()
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = device is not None and device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(local)  # nccl's object collectives run on the current device
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return World(rank, size, local, True)


def gather(world: World, obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` in a single process)."""
    if not world.joined:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    """Waits for every rank (no-op in a single process)."""
    if world.joined:
        import torch.distributed as dist

        dist.barrier()


def finish(world: World) -> None:
    """Leaves the process group this module joined."""
    if world.joined:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def device_for(world: World, device: str | None) -> str | None:
    """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (one GPU per process)."""
    if device == "cuda" and world.size > 1 and torch.cuda.is_available():
        return f"cuda:{world.local_rank}"
    return device
