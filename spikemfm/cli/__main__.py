"""``python -m spikemfm.cli``: the command line (``torchrun … -m spikemfm.cli evaluate``)."""
import sys

from spikemfm.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
