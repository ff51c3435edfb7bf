"""Speed of the cold-start expert scorecard and of AHP weights.

    .venv/bin/python bench/bench_rating.py --rows 1000000

Scores ``--rows`` rows of random indicator values (10 % missing) with the shipped default
expert scorecard, and derives weights + CI/CR + conflicts for an 8 × 8 pairwise matrix
``--repeat`` times. Prints rows/s and milliseconds per matrix.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from riskdesk.assess.ahp import weights
from riskdesk.assess.expert_scorecard import default_scorecard


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1000)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(42)
    card = default_scorecard()
    values = pd.DataFrame({i.name: rng.uniform(-10, 200, args.rows) for i in card.indicators}).mask(
        rng.random((args.rows, len(card.indicators))) < 0.10
    )
    card.score(values.head(1000))  # warm-up
    t = time.perf_counter()
    scored = card.score(values)
    score_s = time.perf_counter() - t
    assert len(scored) == args.rows

    # a consistent 8 × 8 matrix from known weights, with Saaty-scale rounding
    w = np.array([8, 6, 5, 4, 3, 2, 1.5, 1])
    ratio = np.clip(np.rint(w[:, None] / w[None, :]), 1, 9)
    m = np.where(w[:, None] >= w[None, :], ratio, 1 / ratio.T)
    t = time.perf_counter()
    for _ in range(args.repeat):
        res = weights(m.tolist())
    ahp_ms = (time.perf_counter() - t) / args.repeat * 1000

    print(
        f"expert scorecard: {args.rows:,} rows in {score_s:.2f} s = {args.rows / score_s:,.0f} rows/s"
    )
    print(f"AHP 8x8 weights + CI/CR + conflicts: {ahp_ms:.2f} ms per matrix (CR {res.cr:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
