"""Write a folder shaped like MovieLens-25M for scale checks where the real archive cannot be
downloaded: 59,047 movies, USERS users with at least 20 ratings each (log-normal history
lengths, mean about 134), Zipf item popularity and increasing timestamps per user. The ratings
carry no sequential signal, so a sequence model can only learn popularity from them: use it for
time and memory, never for quality.

    .venv/bin/python scripts/movielens_shaped.py --users 16254 --out /tmp/ml25-tenth
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

ITEMS = 59_047  # movies with at least one rating in ml-25m
GENRES = np.array(["Drama", "Comedy", "Thriller", "Action", "Romance", "Horror", "Documentary",
                   "Sci-Fi"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=162_541)  # ml-25m's user count
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    lengths = np.clip(rng.lognormal(4.4, 1.0, args.users).astype(int), 20, 3000)
    popularity = 1 / np.arange(1, ITEMS + 1) ** 0.9
    items = rng.permutation(ITEMS)[rng.choice(ITEMS, size=lengths.sum(),
                                              p=popularity / popularity.sum())] + 1
    starts = rng.integers(1_000_000_000, 1_500_000_000, args.users)
    times = np.concatenate([start + np.cumsum(rng.integers(1, 3600, n))
                            for start, n in zip(starts, lengths)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"userId": np.repeat(np.arange(1, args.users + 1), lengths), "movieId": items,
                  "rating": rng.choice(np.arange(1, 11) / 2, size=len(items)),
                  "timestamp": times}).to_csv(out / "ratings.csv", index=False)
    pd.DataFrame({"movieId": np.arange(1, ITEMS + 1),
                  "title": [f"Synthetic film {i} ({1950 + i % 70})" for i in range(1, ITEMS + 1)],
                  "genres": ["|".join(rng.choice(GENRES, 2, replace=False))
                             for _ in range(ITEMS)]}).to_csv(out / "movies.csv", index=False)
    print(f"{len(items)} ratings by {args.users} users of {ITEMS} movies in {out}")


if __name__ == "__main__":
    main()
