"""Orchestration shared by the CLI commands and experiments: what a tower takes as input, and real data for it."""
from spikemfm.app.data import DataSource, real_batches
from spikemfm.app.inputs import InputSpec, input_spec

__all__ = ["DataSource", "InputSpec", "input_spec", "real_batches"]
