#!/usr/bin/env python3
"""Write one handoff form of a published dataset (disk, packed, megatron) or check one.

    make_handoff.py packed --input-dir /data/distillation_1/phase1_mix_8k_665m \
        --output-dir /data/distillation_1/handoff/phase1_mix_8k_665m/packed --max-seq-len 8192

The same as `python -m distill_data.handoff …`; see docs/training.md for what each form is for.
"""

import sys

import distill_data  # noqa: F401  (first: it picks Arrow's memory pool before pyarrow loads)
from distill_data.handoff.cli import main

if __name__ == "__main__":
    sys.exit(main())
