"""Draw dSprites and write the sample sheet shown in the README (docs/dsprites_sample.png)."""

import sys
import time
from pathlib import Path

from dsae_pyro.betavae.figures import dsprites_sheet
from dsae_pyro.data.dsprites import make_dsprites

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dsprites_sample.png")
start = time.perf_counter()
data = make_dsprites()
print(f"drew {len(data)} images in {time.perf_counter() - start:.1f}s")
dsprites_sheet(data).savefig(out, bbox_inches="tight")
print(out)
