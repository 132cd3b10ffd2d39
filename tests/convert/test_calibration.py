"""The compiled MSE clip search picks the very step of the plain torch scan it replaced."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikemfm.convert.quantizers import calibrate_step


def _scan(x: torch.Tensor, lo: int, hi: int) -> float:
    """The reference: 60 candidates in [0.05, 1]·max|x|, one torch pass each, the first least MSE kept."""
    amax, top = float(x.abs().max()), max(hi, -lo)
    best, best_err = amax / top, float("inf")
    for frac in torch.linspace(0.05, 1.0, 60, dtype=torch.float64):
        step = float(frac) * amax / top
        err = float(((torch.clamp(torch.floor(x / step + 0.5), lo, hi) * step - x) ** 2).mean())
        if err < best_err:
            best, best_err = step, err
    return best


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20000), kind=st.sampled_from(["normal", "cubed", "abs", "laplace", "ties"]),
       bits=st.integers(2, 9), seed=st.integers(0, 10 ** 6))
def test_mse_search_equals_the_torch_scan(n, kind, bits, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    x = {"normal": x, "cubed": x ** 3, "abs": x.abs(), "laplace": x.sign() * torch.log1p(x.abs() * 5),
         "ties": torch.randint(-9, 10, (n,), generator=g).double() * 0.25}[kind]
    hi = 2 ** (bits - 1) - 1
    if float(x.abs().max()) == 0.0:
        assert calibrate_step(x, -hi, hi, "mse", 99.9) == 1.0
        return
    assert calibrate_step(x, -hi, hi, "mse", 99.9) == _scan(x, -hi, hi)


def test_mse_search_hand_case():
    # values {0, ±1}: at 1 bit above zero (levels −1 … 1) the step 1.0 quantizes them with no error
    x = torch.tensor([0.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    assert calibrate_step(x, -1, 1, "mse", 99.9) == 1.0
