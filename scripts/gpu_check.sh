#!/usr/bin/env bash
# The device checks of issue 19, as one script for a machine with a CUDA GPU (the library's `device` entry):
# the exactness subset on the GPU, then benchmarks/simulation_speed.py on it. Needs a CUDA build of torch in
# .venv (this project's CPU wheel has no CUDA: `python -c "import torch; print(torch.cuda.is_available())"`).
# Results land in $OUT (or results/benchmarks/cuda).
set -euo pipefail
out="${OUT:-results/benchmarks/cuda}"
mkdir -p "$out"
py=.venv/bin/python
$py -c "import torch; assert torch.cuda.is_available(), 'no CUDA in this torch build'; print(torch.cuda.get_device_name(0))" \
  | tee "$out/device.txt"
$py -m pytest -q tests/snn/test_device.py tests/snn/test_runtimes.py -k "cuda or torch or agree" 2>&1 | tee "$out/exactness.txt"
$py benchmarks/simulation_speed.py --device cuda --batch-size 100 --timesteps 8 32 --max-spikes 1 4 graded \
  --precisions float32 float64 --reps 5 --out "$out" 2>&1 | tail -40 | tee "$out/simulation_speed.log"
