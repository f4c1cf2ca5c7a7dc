"""MovieLens folders (ml-latest-small, ml-25m and ml-1m layouts) as a catalog and an interaction log."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .catalog import Catalog
from .home import data_home

__all__ = ["find_movielens_folders", "load_movielens"]

_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def find_movielens_folders() -> list[Path]:
    """MovieLens folders on this machine: downloaded ones (``python -m ctxrec data download``) and
    a development copy next to the project (``../shared/data``)."""
    roots = [data_home() / "data", Path(__file__).resolve().parents[3] / "shared/data"]
    found = []
    for root in roots:
        if root.is_dir():
            found += sorted(p for p in root.iterdir() if p.is_dir() and (
                (p / "ratings.csv").is_file() or (p / "ratings.dat").is_file()))
    return found


def load_movielens(folder: str | Path, max_tags: int = 8) -> tuple[Catalog, pd.DataFrame]:
    """Read a MovieLens folder.

    Returns:
        the catalog (id = movieId; text = title, year, genres and the most used user tags) and the
        interactions with columns user, item, rating, timestamp, in file order.
    """
    folder = Path(folder)
    if (folder / "movies.csv").is_file() and (folder / "ratings.csv").is_file():
        movies = pd.read_csv(folder / "movies.csv", dtype={"movieId": str})
        ratings = pd.read_csv(folder / "ratings.csv", dtype={"userId": str, "movieId": str})
        tags = pd.read_csv(folder / "tags.csv", dtype={"movieId": str}) \
            if (folder / "tags.csv").is_file() else None
    elif (folder / "movies.dat").is_file() and (folder / "ratings.dat").is_file():
        movies = pd.read_csv(folder / "movies.dat", sep="::", engine="python", encoding="latin-1",
                             names=["movieId", "title", "genres"], dtype=str)
        ratings = pd.read_csv(folder / "ratings.dat", sep="::", engine="python",
                              names=["userId", "movieId", "rating", "timestamp"],
                              dtype={"userId": str, "movieId": str})
        tags = None
    else:
        raise FileNotFoundError(f"{folder} is not a MovieLens folder: expected movies.csv and "
                                "ratings.csv (ml-latest-small, ml-25m) or movies.dat and "
                                "ratings.dat (ml-1m)")
    top_tags: dict[str, tuple[str, ...]] = {}
    if tags is not None and len(tags):
        counted = (tags.assign(tag=tags["tag"].astype(str).str.lower().str.strip())
                   .groupby(["movieId", "tag"]).size().rename("n").reset_index()
                   .sort_values(["movieId", "n"], ascending=[True, False]))
        top_tags = {m: tuple(group["tag"].head(max_tags)) for m, group in counted.groupby("movieId")}
    years = movies["title"].str.extract(_YEAR)[0]
    titles = movies["title"].str.replace(_YEAR, "", regex=True).str.strip()
    genres = movies["genres"].fillna("").str.replace("(no genres listed)", "", regex=False)
    items = pd.DataFrame({
        "id": movies["movieId"], "title": titles,
        "category": genres.str.split("|").str[0].str.lower().replace("", "film"),
        "description": [(f"Genres: {g.replace('|', ', ').lower()}." if g else "")
                        + (f" Released in {y}." if isinstance(y, str) else "")
                        for g, y in zip(genres, years)],
        "tags": [top_tags.get(m, ()) for m in movies["movieId"]],
    })
    interactions = pd.DataFrame({"user": ratings["userId"], "item": ratings["movieId"],
                                 "rating": ratings["rating"].astype(float),
                                 "timestamp": ratings["timestamp"].astype("int64")})
    return Catalog(items=items, name=folder.name), interactions
