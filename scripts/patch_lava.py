"""Makes lava-nc 0.10.0 / lava-dl 0.6.0 importable on Python 3.11 + NumPy 2 (idempotent).

- lava-nc: ``magma/compiler/var_model.py`` uses ``ByteEncoder()`` instances as dataclass field defaults;
  Python 3.11 rejects unhashable defaults. Making ``ByteEncoder`` hashable (``unsafe_hash=True``) fixes it.
- lava-nc: ``message_infrastructure/multiprocessing.py`` calls ``mp.set_start_method('fork')`` at import,
  which raises when anything (tokenizers, torch DataLoader, ``mp.get_start_method()``) already fixed the
  start method; it now sets 'fork' only when another method is in effect.
- lava-dl: ``np.trapz`` was removed in NumPy 2; ``np.trapezoid`` is the same function.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PATCHES = (
    ("lava", "magma/compiler/var_model.py", "@dataclass\nclass ByteEncoder:", "@dataclass(unsafe_hash=True)\nclass ByteEncoder:"),
    ("lava", "magma/runtime/message_infrastructure/multiprocessing.py", "    mp.set_start_method('fork')\n",
     "    if mp.get_start_method(allow_none=True) != 'fork':\n        mp.set_start_method('fork', force=True)\n"),
    ("lava", "lib/dl/slayer/object_detection/boundingbox/metrics.py", "np.trapz(", "np.trapezoid("),
)


def lava_root() -> Path:
    spec = importlib.util.find_spec("lava")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("patch_lava: lava-nc is not installed in this interpreter")
    return Path(list(spec.submodule_search_locations)[0])


def main() -> None:
    root = lava_root()
    for _pkg, rel, old, new in PATCHES:
        path = root / rel
        if not path.is_file():
            if "lib/dl" in rel:
                continue  # lava-dl not installed: nothing to patch
            sys.exit(f"patch_lava: {path} not found; is lava-nc 0.10.0 installed?")
        text = path.read_text()
        if new in text:
            continue
        if old not in text:
            sys.exit(f"patch_lava: {path}: expected text {old!r} not found; unsupported lava version")
        path.write_text(text.replace(old, new))
        print(f"patch_lava: patched {path}")


if __name__ == "__main__":
    main()
