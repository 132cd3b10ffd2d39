"""Energy model: spiking path vs dense accelerator path with cited hardware profiles."""
from spikemfm.energy.model import EnergyReport, baseline_bits, dense_energy, estimate_energy
from spikemfm.hardware.profiles import Profile, Term, available_profiles, counts_updates, load_profile

__all__ = ["EnergyReport", "Profile", "Term", "available_profiles", "baseline_bits", "counts_updates", "dense_energy",
           "estimate_energy", "load_profile"]
