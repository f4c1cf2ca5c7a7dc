"""Write catalog CSVs for the three CARSKit context logs, so `evaluate-context` can rank them.

    python scripts/carskit_catalogs.py ../shared/data/carskit ../shared/data/ml-latest-small OUT

DePaulMovie's films get their titles and genres from ml-latest-small (through links.csv; the 13
films it lacks keep their IMDb id as title); TripAdvisor's hotels are named by city and state;
South Tyrol Suggests' places by their category number, the only text the log has.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def main(carskit: Path, movielens: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    links = pd.read_csv(movielens / "links.csv").merge(pd.read_csv(movielens / "movies.csv"))
    imdb = "tt" + links["imdbId"].astype(str).str.zfill(7)
    titles, genres = dict(zip(imdb, links["title"])), dict(zip(imdb, links["genres"]))
    films = sorted(pd.read_csv(carskit / "depaulmovie_ratings.csv")["itemid"].unique())
    pd.DataFrame({"id": films, "title": [titles.get(f, f"Film {f}") for f in films],
                  "category": "film",
                  "tags": [genres.get(f, "").replace("|", ";") for f in films]}
                 ).to_csv(out / "depaulmovie_items.csv", index=False)
    hotels = pd.read_csv(carskit / "tripadvisor_v2.csv").drop_duplicates("ItemID")
    pd.DataFrame({"id": hotels["ItemID"],
                  "title": [f"Hotel {i} in {c.title()}, {s}" for i, c, s in
                            zip(hotels["ItemID"], hotels["ItemCity"], hotels["ItemState"])],
                  "category": "hotel"}).to_csv(out / "tripadvisor_items.csv", index=False)
    places = pd.read_csv(carskit / "sts.tsv", sep="\t").drop_duplicates("itemID")
    pd.DataFrame({"id": places["itemID"],
                  "title": [f"Place of interest {i}, category {c}" for i, c in
                            zip(places["itemID"], places["category1"])],
                  "category": "place"}).to_csv(out / "sts_items.csv", index=False)


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:4]))
