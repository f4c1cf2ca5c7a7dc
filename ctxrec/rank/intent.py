"""Reading the free-text intent: hard limits, exclusions and what is left for the encoder.

An encoder reads "anything but horror" as a text about horror, so the cosine pulls toward what
was excluded, and it has no notion of "under 20 minutes" or "free". The reader finds those parts
with rules over the catalog's own vocabulary (its categories, tags, moods and attributes) and a
negation scope (from a cue such as "not", "no", "without", "anything but" to the end of its
clause), and returns:

* **constraints**: limits an item can break — duration, price, diet, screen, device,
  indoors/outdoors and place, audience, time of day, kind of item — and **exclusions**: kinds,
  moods and tags that were negated ("not another cooking show" rules out cooking, not shows;
  "not too scary" is a degree, not a negation). The recommender ranks every item that breaks one
  below every item that keeps them all;
* **preferences**: the catalog's tags and moods the intent names outside a negation ("a comedy",
  "something with jazz", "uplifting", "documentaries"), and the kinds named only by what they
  sell ("coffee"), which raise the intent component of the items that carry them;
* **soft text**: the intent without the negated clauses and the limits, for the intent and mood
  components, so "nothing sad, something light" is encoded as "something light".

Why rules: the default install has to run offline, and no NLI or zero-shot classifier ships
in it (the packaged models are a sentence encoder and a 135M-parameter chat model, which cannot
be asked about 700 tags per request within the latency budget). The rules cost well under a
millisecond, use whatever vocabulary a catalog brings, and are measured against the encoder alone
on the judged intents (``python -m ctxrec evaluate-intents``; figures in the README). Words the
rules do not know stay in the soft text; nothing the person types is an error.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Protocol

import numpy as np
import pandas as pd

from ..data.catalog import Catalog

__all__ = ["ColumnValues", "Constraint", "IntentReader", "KindAnswerer", "ReadIntent"]

SCOPE_WORDS = 4  # a negation reaches at most this many words
MAX_READ_CHARS = 2_000  # the rules read the first 2,000 characters; the encoder clips its own
SPELL_WORDS = 60  # slips are looked for in the first 60 words (a pasted page would take seconds)
# the shorthand of chat, read as the words it stands for
SHORTHAND = {"tonite": "tonight", "2nite": "tonight", "2night": "tonight", "kidz": "kids",
             "pls": "please", "plz": "please", "smth": "something", "sth": "something",
             "somethin": "something", "nothin": "nothing", "wanna": "want to", "gonna": "going to",
             "cuz": "because", "2day": "today", "2moro": "tomorrow"}
_SHORTHAND = re.compile(r"\b(?:" + "|".join(SHORTHAND) + r")\b")

# How people name each kind of item; a catalog's own category names (and their plurals) count too.
KIND_WORDS = {
    "film": r"films?|movies?|cinema",
    "series": r"series|tv shows?|box ?sets?|episodes?|binge",
    "music": r"music|album|playlist|songs?|tunes",
    "podcast": r"podcasts?",
    "book": (r"books?|novels?|something to read|to read|can read|reading|"
             r"(?:a|short|quick|good|light|easy|fun) read"),
    "longread": (r"longreads?|long reads?|articles?|essays?|something to read|to read|"
                 r"can read|reading|(?:a|short|quick|good|light|easy|fun) read"),
    "recipe": (r"recipes?|cook|to cook|cooking|to bake|baking|make (?:dinner|lunch|breakfast)|"
               r"pack(?:ed)? lunch(?:es)?|lunch ?box(?:es)?|pack for (?:work|school|the office)"),
    # "game day" is a match on television, not a game to play
    "game": r"games?(?![- ]day)|(?:board|card|video|party|puzzle|word) ?games?|game night|to play",
    "restaurant": r"restaurants?|dinner out|eat(?:ing)? out|lunch out",
    "cafe": r"caf[eé]s?|coffee ?shops?|coffee houses?|tea ?rooms?",
    "event": r"events?|concerts?|gigs?|festivals?|exhibitions?|live music|workshops?",
    "fitness": r"workouts?|exercises?|yoga|fitness|training session",
    "daytrip": r"day ?trips?|day out|excursions?|outings?",
}
# when no kind is named: what the person wants to do points at a few kinds
KIND_HINTS = {("film", "series"): (r"(?:to|can|could|all|we'?ll) watch|watch something|"
                                   r"watch together|put on|(?:should|shall) we watch"),
              ("podcast", "longread", "book"): (r"learn\w*|teach me|educational|informative|"
                                                r"explainers?"),
              ("music", "podcast"): r"to listen to|listen to|something to listen",
              ("recipe", "restaurant", "cafe"): (r"dinner|lunch|breakfast|meal|food|snacks?|"
                                                 r"something to eat|hungry|to eat")}
# what a kind of place sells names it less surely than its name: "slow morning, coffee" is a
# cup at home, so these are preferences, not limits
SOFT_KIND_WORDS = {"cafe": r"coffee|pastr(?:y|ies)|croissants?|espresso|cappuccino|latte"}
MOOD_WORDS = {
    "melancholic": r"sad|depressing|melanchol\w*|tear ?jerkers?|gloomy|grief|bleak",
    "tense": r"tense|scary|creepy|frightening|thrill\w*|suspense\w*|dark|intense",
    "funny": r"funny|comed\w*|hilarious|laughs?",
    "calm": (r"calm\w*|relax\w*|chill|peaceful|quiet|mellow|laid[- ]back|low[- ]key|"
             r"soothing"),
    "cozy": r"cozy|cosy|snug",
    "romantic": r"romantic|romance",
    "energetic": (r"energetic|upbeat|high[- ]energy|intense|(?:blow|let|burn) off (?:some )?"
                  r"(?:steam|energy)"),
    "thoughtful": r"thoughtful|deep|thought-provoking",
    # "happy to wait" is willing, not cheerful
    "cheerful": r"cheerful|happy(?! to\b)|feel[- ]good|uplifting|cheer (?:me |us )?up|pick-me-up",
    "adventurous": r"adventurous|adventure",
    "social": r"social|sociable",
    "focused": r"focus(?:ed)?|concentrat\w*|productive",
}
# "not too scary" asks for a little of it, not for none: neither an exclusion nor a preference;
# only at the end of a clause, as "not that keen on horror" negates the horror
DEGREE = (r"(?:(?:not|isn'?t|aren'?t) (?:too|overly|very|that|so|super|all that)|"
          r"nothing (?:too|overly|very|super)) \w+(?=\s*(?:[,.;:!?)]|$| but | and | or | please))")
# the nouns that name a format; a word before one says what kind of it ("cooking show")
FORMAT_NOUNS = (r"shows?|programmes?|programs?|channels?|videos?|films?|movies?|series|"
                r"podcasts?|books?|novels?|documentar(?:y|ies)|songs?|music|games?")
NEGATION = (r"not in the mood for|not up for|not feeling|"
            r"anything but|anything except|everything but|other than|not|no|nothing|without|"
            r"never|avoid|skip|except|none|don'?t want|do not want|rather not|not into|hates?|hated|"
            r"can'?t stand|dislikes?|not a fan of|"
            r"no more|isn'?t|aren'?t|instead of")
# a negation's scope ends at a clause boundary or a word that turns to what is wanted
BOUNDARY = (r"[,.;:!?()\n]| but | just | rather | instead | only | though | please | this | "
            r"these | tonight| today| tomorrow| for (?:the|my|our|your|his|her|their) ")
SCREEN = (r"screen[- ]?free|no screens?|without (?:a |any )?screens?|off[- ](?:the )?screens?|"
          r"away from (?:the )?screens?|unplugged|no devices?|not on (?:a|my) (?:phone|screen)|"
          r"(?:anything but|not|isn'?t|is not|aren'?t) (?:on )?(?:a |any )?screens?|"
          r"no wi-?fi|offline|"
          r"(?:doesn'?t|does not|don'?t|do not|won'?t) (?:involve|need|use) (?:a |any )?screens?")
# not going out is staying at home, read before negation would take "go out" away
STAY_HOME = (r"too \w+ to go out|(?:don'?t|do not|can'?t|cannot|won'?t) (?:want to |feel like )?"
             r"go(?:ing)? out")
# kinds that are places to go to: not what one does on board a train or a plane
DESTINATION_KINDS = ("daytrip", "event", "restaurant", "fitness", "cafe")
# "my 5yo", "a 10 year old": under 13 is a child, 13 to 19 a teenager
AGE = r"(\d+)[- ]?(?:yo|y/o|years?[- ]olds?|years? old)"
# content that needs sound; with no sound these kinds are out
SILENT = (r"no sound|without (?:the )?sound|sound off|silent(?:ly)?|on mute|muted|"
          r"(?:no|without|forgot(?: my)?) (?:headphones|earphones|earbuds)")
SOUND_KINDS = ("music", "podcast", "film", "series")
# what the person does meanwhile is their situation, not what they ask for: "something to
# listen to while cooking" wants music or a podcast, not a recipe
WHILE_DOING = (r"(?:while|whilst|when|as) (?:i'?m |we'?re |i am |we are )?\w+ing|"
               r"(?:while|whilst) (?:i|we|they|he|she) \w+")  # "while we cook dinner"
# a time of day that sounds like food: not a hint that food is wanted
MEALTIME = r"(?:over|at|during|on my) lunch|lunch ?(?:break|hour|time)|lunchtime"
# not free time ("the whole day free", "I'm free tonight": time, not price)
FREE = (r"(?<![-\w])(?<!day )(?<!days )(?<!evening )(?<!afternoon )(?<!morning )(?<!weekend )"
        r"(?<!time )(?<!hour )(?<!hours )(?<!i'm )(?<!i am )(?<!we're )(?<!we are )(?<!are )"
        r"free(?![-\w])(?! (?:time|evening|afternoon|morning|day|weekend|hour))")
FREE_PHRASES = (r"no money|without spending|costs? nothing|for nothing|zero cost|no cost|"
                r"(?:doesn'?t|does not|won'?t|shouldn'?t|don'?t) cost (?:anything|a thing|a penny|"
                r"a cent|money)")
# meat-free food: recipes, restaurants and cafés must be tagged vegetarian or vegan
DIET = (r"vegetarian|veggie|vegan|meat[- ]?free|meatless|plant[- ]based|"
        r"(?:no|without|nothing with|not any) meat")
FOOD_KINDS = ("recipe", "restaurant", "cafe")
CHEAP = (r"cheap|budget|inexpensive|low[- ]cost|affordable|on a shoestring|"
         r"not (?:too |very |that |so )?(?:pricey|expensive|dear)")
# key → (words, chip label, the places an item must list one of); rain means indoors
PLACE_LIMITS = {
    "indoors": (r"indoors?|inside|rain\w*|pouring|downpour|drizzl\w*|wet weather|storm\w*|"
                r"stay(?:ing)? in", "indoors", ("home", "work", "city", "commute", "gym")),
    "outdoors": (r"outdoors?|outdoorsy|outside|fresh air|open air|in the park", "outdoors",
                 ("outdoors", "travel")),
    "at-home": (r"at home|on the (?:sofa|couch)|from home|stay(?:ing)? in|"
                r"(?:a )?night in(?! town| the)|coming over|come over|"
                r"(?:at|to) (?:mine|ours|my place)|before bed|in bed|bedtime",
                "at home", ("home",)),
    # on board: only what goes with the person (the kinds one travels to are out, below)
    "on-board": (r"(?:on|for) (?:a|the) (?:plane|flight)|(?:a|the|long) flight|on (?:a|the) train|"
                 r"train (?:ride|journey)", "on board", ("travel", "commute")),
    "commute": (r"commut\w*|on (?:my|the) way|(?:on|for) the (?:train|bus|tube|metro)",
                "on the way", ("commute",)),
    "out": (r"(?:night|evening|afternoon|day) out|go(?:ing)? out|out (?:in|on) the town|"
            r"(?:in|around|into) (?:the )?(?:city|town)(?: cent(?:re|er))?|downtown|"
            r"out and about|out of the house|"
            r"(?:breakfast|brunch|lunch|dinner|drinks|food|meal) out|"
            r"(?<!about )somewhere|nearby|near (?:me|here|by)|around here", "out",
            ("city", "outdoors")),
    "travel": (r"plane|flights?|airport|hotel", "travelling", ("travel", "commute")),
}
AUDIENCE = {
    "kids": r"kids?|children|child|toddlers?|little ones?|family|son|daughter",
    # a teenager is family company, or a friend's, but not a toddler's
    "teens": r"teen\w*|adolescents?",
    "partner": (r"date night|a date|my (?:partner|wife|husband|girlfriend|boyfriend)|"
                r"for two(?! \w+s\b| people| children)"),  # not "for two toddlers", "two hours"
    "friends": (r"friends|mates|a group|the gang|party|(?:\d+|three|four|five|six|seven|eight) "
                r"of us"),
    "alone": r"alone|by myself|on my own|solo|just me",
    "colleagues": r"colleagues|co-?workers|my team|the team",
}
# the tags that mark an item as made for young children
YOUNG_TAGS = ("kids", "toddlers", "preschool", "picture-book", "lullabies")
# "on my phone": the item must be usable on that device
DEVICES = {"phone": r"(?:on|for) (?:my|the|a) (?:phone|mobile)",
           "tablet": r"(?:on|for) (?:my|the|a) (?:tablet|ipad)",
           "tv": r"on (?:the|my|a) (?:tv|telly|big screen)",
           "laptop": r"(?:on|for) (?:my|the|a) (?:laptop|computer|pc)"}
DAYTIME = {
    "morning": r"breakfast|this morning|in the morning",
    "midday": r"lunch|midday|noon",
    "evening": r"tonight|this evening|dinner|after work|bedtime",  # a child's is early
    "night": r"tonight|late[- ]night|midnight|can'?t sleep|insomnia|bedtime",
}
SITUATION_COLUMNS = ("dayparts", "days", "places", "devices", "companions")
UNITS = {"min": 1, "mins": 1, "minute": 1, "minutes": 1, "m": 1, "h": 60, "hr": 60, "hrs": 60,
         "hour": 60, "hours": 60}
AT_MOST = (r"nothing longer than|no longer than|not longer than|not more than|not over|under|"
           r"less than|at most|no more than|within|max(?:imum)?|up to|shorter than|<|"
           r"(?:make|cook|do|done|ready|finish(?:ed)?) in")
AT_LEAST = r"over|more than|at least|longer than|>"
# a negation at most three words before a lower bound, in the same clause, turns it round
NEGATED_BEFORE = r"\b(?:nothing|not|no|never|don'?t want)\b(?:\s+[^\s,.;:!?]+){0,3}\s*$"
LONG_FILM = r"\b(?:long|epic) (?:film|movie)"  # a long film runs two hours or more
LONG_FILM_MINUTES = 120
# after the amount: "20 min tops", "30 minutes max"; before it: "got 10 minutes", "only an hour"
AT_MOST_AFTER = r"tops|max(?:imum)?|or less|at most|at the most|to kill|to spare"
AT_MOST_HAVE = r"(?:i'?ve |i )?(?:got|have|only|just)(?: got)?"
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30,
                "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90}
AMOUNT = (r"(\d+(?:\.\d+)?|an?|half an?|forty-five|"
          + "|".join(w for w in NUMBER_WORDS if w != "forty-five")
          + r")\s*-?\s*(minutes?|mins?|m|hours?|hrs?|h)\b")
# a ceiling in money ("under 15 euros", "£20 or less"): up to this much is cheap; a higher one
# rules out nothing that the catalog's price levels can tell apart
CURRENCY = r"euros?|eur|dollars?|bucks|pounds?|quid|gbp|usd"
MONEY_BELOW = (r"under|less than|below|no more than|not more than|max(?:imum)?|up to|at most|"
               r"within|(?:don'?t|do not|won'?t|can'?t|not) (?:want to )?(?:spend|pay) (?:more than|"
               r"over)")
MONEY_AFTER = r"or less|tops|max(?:imum)?|at most"
MONEY = (rf"(?:{MONEY_BELOW})\s*[€$£]\s?(\d+)|(?:{MONEY_BELOW})\s*(\d+)\s?(?:{CURRENCY}|€)|"
         rf"[€$£]\s?(\d+)\s*(?:{MONEY_AFTER})|(\d+)\s?(?:{CURRENCY}|€)\s*(?:{MONEY_AFTER})")
CHEAP_UP_TO = 30


@dataclass(frozen=True)
class Constraint:
    """One limit read from the intent.

    Attributes:
        key: stable id (e.g. ``duration<=20``), for removing it.
        label: what the person sees on its chip, e.g. "≤ 20 min", "no screen", "not: horror".
        kind: duration, price, diet, screen, place, audience, daytime, kind, exclusion, or
            preference (soft: see :attr:`ReadIntent.preferences`).
        column: the catalog column it tests.
        values: (list columns and category) the values an item must have one of, or, for
            exclusions, must have none of.
        limit: (duration) the bound in minutes; ``at_most`` says which side.
        within: the categories it applies to (all items when empty): a diet limits food only.
    """

    key: str
    label: str
    kind: str
    column: str
    values: tuple[str, ...] = ()
    limit: float | None = None
    at_most: bool = True
    within: tuple[str, ...] = ()

    def has(self, catalog: Catalog, index: ColumnValues | None = None) -> np.ndarray:
        """(N,) booleans: the items of ``catalog`` whose column holds one of ``values``
        (``index``: the catalog's :class:`ColumnValues`, so a new request loops over nothing)."""
        return (index or ColumnValues(catalog)).holding(self.column, self.values)

    def breaks(self, catalog: Catalog, index: ColumnValues | None = None) -> np.ndarray:
        """(N,) booleans: the items of ``catalog`` that break it; an item without the column's
        value is not counted as breaking it (nothing is known)."""
        items = catalog.items
        if self.column not in items:
            return np.zeros(len(items), dtype=bool)
        if self.kind == "duration":
            minutes = items[self.column].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                return (minutes > self.limit) if self.at_most else (minutes < self.limit)
        index = index or ColumnValues(catalog)
        if self.kind == "screen":  # screen-free: devices empty, or a speaker among them
            return index.stated(self.column) & ~index.holding(self.column, ("speaker",))
        if self.kind == "exclusion":
            return self.has(catalog, index)
        if self.kind == "device" and index.stated(self.column).any():
            # the catalog lists devices, so an item with none (a café, a walk) is used on none
            return ~self.has(catalog, index)
        if self.kind == "diet":  # an untagged dish is not known to be meat-free
            return index.holding("category", self.within) & ~self.has(catalog, index)
        return index.stated(self.column) & ~self.has(catalog, index)


class ColumnValues:
    """Which items of a catalog hold each value of a column (its lists split), built once per
    column on first use: ``index("tags")["jazz"]`` is the sorted positions of the items tagged
    "jazz". Positions, not an (N,) mask per value: a catalog's hundreds of tags would otherwise
    cost hundreds of bytes per item (6 GB at 10M items)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._columns: dict[str, dict[str, np.ndarray]] = {}
        self._stated: dict[str, np.ndarray] = {}

    def __call__(self, column: str) -> dict[str, np.ndarray]:
        if column not in self._columns:
            items = self.catalog.items
            cells = items[column].reset_index(drop=True) if column in items else \
                pd.Series([], dtype=object)
            # a million items at a time: splitting 10M items' lists at once took 3 GB more
            parts: dict[str, list[np.ndarray]] = {}
            for lo in range(0, len(cells), _CHUNK):
                for value, where in _positions(cells.iloc[lo:lo + _CHUNK], len(cells)).items():
                    parts.setdefault(value, []).append(where)
            held = {value: np.concatenate(where) for value, where in parts.items()}
            stated = np.zeros(len(items), dtype=bool)
            for where in held.values():
                stated[where] = True
            self._columns[column], self._stated[column] = held, stated
        return self._columns[column]

    def stated(self, column: str) -> np.ndarray:
        """(N,) booleans: the items with at least one value in ``column``."""
        self(column)
        return self._stated[column]

    def holding(self, column: str, values: Collection[str]) -> np.ndarray:
        """(N,) booleans: the items whose ``column`` holds one of ``values``."""
        held = self(column)
        out = np.zeros(len(self.catalog.items), dtype=bool)
        for value in values:
            if value in held:
                out[held[value]] = True
        return out


_CHUNK = 1_000_000


def _positions(cells: pd.Series, n: int) -> dict[str, np.ndarray]:
    """Value → sorted positions of the ``cells`` (a slice of a column, indexed by position)
    that hold it; ``n``: the whole column's length, which sets the positions' integer type."""
    flat = cells.explode().dropna()  # one row per (item, value); strings stay whole
    codes, uniques = pd.factorize(flat.to_numpy(dtype=object))
    blank = [i for i, value in enumerate(uniques) if str(value) == ""]
    if blank:  # an empty string states nothing
        codes[codes == blank[0]] = -1
    kept = codes >= 0
    codes = codes[kept]
    rows = flat.index.to_numpy(dtype=np.int32 if n < 2**31 else np.int64)[kept]
    order = np.argsort(codes, kind="stable")  # rows stay sorted within each value
    ends = np.cumsum(np.bincount(codes, minlength=len(uniques)))
    held: dict[str, np.ndarray] = {}
    for value, where in zip(uniques, np.split(rows[order], ends[:-1])):
        if where.size:  # 1 and "1" are one value, as the rules read text
            key = str(value)
            held[key] = np.union1d(held[key], where) if key in held else where
    return held


@dataclass(frozen=True)
class ReadIntent:
    """What the reader understood.

    Attributes:
        text: the intent as typed.
        constraints: hard limits and exclusions, in the order they were found.
        soft_text: the intent without negated clauses and limits, for the encoder ("" when
            nothing is left).
        notes: what the person should know about how the text was read.
        preferences: the catalog's tags and moods named outside a negation (kind
            ``preference``): soft, an item that lacks them breaks nothing.
    """

    text: str
    constraints: tuple[Constraint, ...] = ()
    soft_text: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    preferences: tuple[Constraint, ...] = ()

    @property
    def understood(self) -> tuple[Constraint, ...]:
        """Limits, exclusions and preferences: everything shown as a chip."""
        return self.constraints + self.preferences

    def without(self, keys: Collection[str]) -> ReadIntent:
        """The same reading with the constraints and preferences whose key is in ``keys``
        removed."""
        return replace(self, constraints=tuple(c for c in self.constraints if c.key not in keys),
                       preferences=tuple(c for c in self.preferences if c.key not in keys))


class KindAnswerer(Protocol):
    """Something that says which kind of item a request asks for (a language model, see
    ``ctxrec.llm.kinds.KindReader``), for requests the rules cannot place."""

    name: str

    def answer(self, request: str) -> tuple[str, float] | None:
        """The kind and its probability, or ``None`` when unsure."""


class IntentReader:
    """Reads intents with the vocabulary of one catalog.

    Args:
        catalog: whose categories, tags and moods the rules match.
        known_words: words that are spelled right (e.g. an encoder's vocabulary); other words
            within one or two letters of a word the rules look for, or of the catalog's own
            tags, moods and kinds, are read as that word ("lisen" → "listen", "horor" →
            "horror"). Without it, no spelling is corrected.
    """

    def __init__(self, catalog: Catalog, known_words: Collection[str] = ()):
        self.catalog = catalog
        self.known_words = set(known_words)
        items = catalog.items
        self.kinds = {str(c) for c in items["category"].dropna().unique()} \
            if "category" in items else set()
        # one index of the list columns serves the vocabulary here and every limit's test
        self.values = ColumnValues(catalog)
        self.tags = set(self.values("tags"))
        self.moods = {str(m) for m in items["mood"].dropna().unique()} if "mood" in items \
            else set()
        words = {k: v for k, v in KIND_WORDS.items() if k in self.kinds}
        for kind in self.kinds - set(words):  # an uploaded catalog's own categories
            words[kind] = re.escape(kind.lower()) + "s?"
        self._kind_words = {k: re.compile(rf"\b(?:{v})\b") for k, v in words.items()}
        # a diet limit needs a catalog that tags meat-free food
        self._diet_kinds = tuple(k for k in FOOD_KINDS if k in self.kinds) \
            if self.tags & {"vegetarian", "vegan"} else ()
        # tags that name a situation ("morning", "home", "kids") are the context component's,
        # and tags that name a kind ("podcast") are read as the kind
        self._not_preferences = self.kinds | {v for column in SITUATION_COLUMNS
                                              for v in self.values(column)}
        spoken = {t.replace("-", " "): t for t in self.tags if len(t) > 2}
        for said, tag in list(spoken.items()):  # "documentaries" asks for "documentary"
            plural = _plural(said)
            if plural:
                spoken.setdefault(plural, tag)
        self._tag_words = spoken
        # slips are read as the rules' words or the catalog's own ("horor" → "horror")
        own = {w for said in spoken for w in said.split()} | self.kinds | self.moods
        spelling = set(_rule_words()) | {w.lower() for w in own if len(w) >= 5 and w.isalpha()}
        # what each word becomes with up to two letters taken out: a slip shares one of these
        # with its word, so only those few are compared (comparing with every word took 12 ms)
        self._near: dict[str, set[str]] = {}
        for word in spelling:
            for shorter in _deletions(word):
                self._near.setdefault(shorter, set()).add(word)
        self._spelled = lru_cache(maxsize=4096)(self._spell)
        self._tag_pattern = re.compile(r"\b(?:" + "|".join(
            re.escape(s) for s in sorted(spoken, key=len, reverse=True)) + r")\b") \
            if spoken else None

    def read(self, text: str) -> ReadIntent:
        """Read one intent; any text gives a result."""
        notes = []
        if len(text) > MAX_READ_CHARS:
            notes.append(f"Only the first {MAX_READ_CHARS:,} characters were read for limits.")
        lowered = re.sub(r"\bw/o\b", "without", re.sub(r"\bw/(?!o\b)", "with ",
                                                        text[:MAX_READ_CHARS].lower()))
        words = _SHORTHAND.sub(lambda m: SHORTHAND[m.group(0)], lowered).split()
        lowered = " " + " ".join([*map(self._spelled, words[:SPELL_WORDS]),
                                  *words[SPELL_WORDS:]]) + " "
        found: list[Constraint] = []
        lowered = self._limits(lowered, found)
        lowered = re.sub(rf"\b{DEGREE}\b", " ", lowered)
        kept, negated = _split_negation(lowered)
        excluded, still_wanted = self._exclusions(negated)
        kept += still_wanted
        found += excluded
        asked = re.sub(rf"\b(?:{WHILE_DOING})\b", " ", kept)
        found += self._positive(asked)
        unique = list({c.key: c for c in found}.values())
        # "a playlist but no songs with lyrics" wants music, not none of it
        wanted = {v for c in unique if c.kind == "kind" for v in c.values}
        unique = [c for c in unique if not (c.key.startswith("not-kind-") and
                                            set(c.values) <= wanted)]
        soft = " ".join(re.sub(rf"\b(?:{NEGATION})\b", " ", kept).split()).strip(" ,.;:-")
        limited = {v for c in unique for v in c.values}  # "vegetarian" is a limit already
        liked = tuple(c for c in self._preferences(kept) if not set(c.values) & limited)
        return ReadIntent(text, tuple(unique), soft, tuple(notes), liked)

    def _preferences(self, text: str) -> tuple[Constraint, ...]:
        moods = [mood for mood, pattern in MOOD_WORDS.items()
                 if mood in self.moods and re.search(rf"\b(?:{pattern})\b", text)]
        found = [Constraint(f"like-mood-{mood}", f"likes: {mood}", "preference", "mood", (mood,))
                 for mood in moods]
        found += [Constraint(f"like-kind-{kind}", f"likes: {kind}", "preference", "category",
                             (kind,))
                  for kind, pattern in SOFT_KIND_WORDS.items()
                  if kind in self.kinds and re.search(rf"\b(?:{pattern})\b", text)]
        if self._tag_pattern is not None:
            tags = dict.fromkeys(self._tag_words[m.group(0)]
                                 for m in self._tag_pattern.finditer(text.replace("-", " ")))
            found += [Constraint(f"like-tag-{tag}", f"likes: {tag}", "preference", "tags", (tag,))
                      for tag in tags if tag not in self._not_preferences and tag not in moods]
        return tuple(found)

    def _spell(self, word: str) -> str:
        """``word``, or the rule word it is a slip of (only for words the vocabulary lacks)."""
        if not self.known_words or len(word) < 5 or word in self.known_words or \
                not word.isalpha():
            return word
        near = {w for shorter in _deletions(word) for w in self._near.get(shorter, ())}
        # two letters swapped is a slip however short the word ("moive" scores only 0.8)
        scored = [(1.0 if _swapped(word, w) else difflib.SequenceMatcher(None, word, w).ratio(), w)
                  for w in near]
        best = max(scored, default=(0.0, word))
        return best[1] if best[0] >= 0.85 else word

    def _limits(self, text: str, found: list[Constraint]) -> str:
        """Duration, price and screen limits, taken out of the text (negation would misread
        them: "no screens" is a limit, not an exclusion)."""
        for side, pattern in ((True, AT_MOST), (False, AT_LEAST)):
            for match in re.finditer(rf"\b(?:{pattern})\s*{AMOUNT}", text):
                minutes = _minutes(match.group(1), match.group(2))
                # "nothing that takes over an hour" asks for at most an hour
                most = side or bool(re.search(NEGATED_BEFORE, text[:match.start()]))
                if minutes:
                    sign = "≤" if most else "≥"
                    found.append(Constraint(f"duration{'<=' if most else '>='}{minutes:g}",
                                            f"{sign} {_duration_label(minutes)}", "duration",
                                            "duration_min", limit=minutes, at_most=most))
            text = re.sub(rf"\b(?:{pattern})\s*{AMOUNT}", " ", text)
        for pattern in (rf"\b{AMOUNT}\s*(?:{AT_MOST_AFTER})\b",
                        rf"\b(?:{AT_MOST_HAVE})\s+{AMOUNT}"):
            for match in re.finditer(pattern, text):
                minutes = _minutes(match.group(1), match.group(2))
                if minutes:
                    found.append(Constraint(f"duration<={minutes:g}",
                                            f"≤ {_duration_label(minutes)}", "duration",
                                            "duration_min", limit=minutes, at_most=True))
            text = re.sub(pattern, " ", text)
        if re.search(LONG_FILM, text):
            found.append(Constraint(f"duration>={LONG_FILM_MINUTES}",
                                    f"≥ {_duration_label(LONG_FILM_MINUTES)}", "duration",
                                    "duration_min", limit=LONG_FILM_MINUTES, at_most=False))
        for match in re.finditer(r"\b(\d+)\s*\+\s*(hours?|hrs?|h|minutes?|mins?)\b", text):
            minutes = _minutes(match.group(1), match.group(2))
            found.append(Constraint(f"duration>={minutes:g}", f"≥ {_duration_label(minutes)}",
                                    "duration", "duration_min", limit=minutes, at_most=False))
        text = re.sub(r"\b(\d+)\s*\+\s*(hours?|hrs?|h|minutes?|mins?)\b", " ", text)
        if self._diet_kinds and re.search(rf"\b(?:{DIET})\b", text):
            found.append(Constraint("diet-vegetarian", "vegetarian", "diet", "tags",
                                    ("vegetarian", "vegan"), within=self._diet_kinds))
            text = re.sub(rf"\b(?:{DIET})\b", " vegetarian ", text)
        text = re.sub(rf"\b(?:{STAY_HOME})\b", " at home ", text)
        for match in re.finditer(rf"(?<![\w€$£])(?:{MONEY})(?!\w)", text):
            amount = int(next(g for g in match.groups() if g))
            if amount <= CHEAP_UP_TO:
                text = text.replace(match.group(0), " cheap ")
        for pattern, constraint in (
                (SCREEN, Constraint("screen", "no screen", "screen", "devices")),
                (FREE_PHRASES, Constraint("price-free", "free", "price", "price", ("free",))),
                (FREE, Constraint("price-free", "free", "price", "price", ("free",))),
                (CHEAP, Constraint("price-low", "cheap", "price", "price", ("free", "low")))):
            if re.search(pattern, text):
                found.append(constraint)
                text = re.sub(pattern, " ", text)
        audible = tuple(k for k in SOUND_KINDS if k in self.kinds)
        if audible and re.search(rf"\b(?:{SILENT})\b", text):
            found.append(Constraint("no-sound", "no sound", "exclusion", "category", audible))
            text = re.sub(rf"\b(?:{SILENT})\b", " ", text)
        return text

    def _exclusions(self, negated: list[str]) -> tuple[list[Constraint], str]:
        """The exclusions in the negated clauses, and the kind nouns of negated sorts of things,
        which are still wanted: "anything but a horror film" asks for a film."""
        out, wanted = [], []
        for clause in negated:
            kinds, heads = [], []  # heads: "podcast" in "a true crime podcast" is still wanted
            for kind, pattern in self._kind_words.items():
                for m in pattern.finditer(clause):
                    if not self._modified(clause, m):
                        kinds.append(kind)
                    elif re.fullmatch(FORMAT_NOUNS, m.group(0)):
                        heads.append(m.span())
                        wanted.append(m.group(0))
            out += [Constraint(f"not-kind-{kind}", f"not: {kind}", "exclusion", "category",
                               (kind,)) for kind in dict.fromkeys(kinds)]
            for mood, pattern in MOOD_WORDS.items():
                if mood in self.moods and re.search(rf"\b(?:{pattern})\b", clause):
                    out.append(Constraint(f"not-mood-{mood}", f"not: {mood}", "exclusion",
                                          "mood", (mood,)))
            if kinds or self._tag_pattern is None:
                continue  # "not a restaurant dinner" excludes restaurants, not dinner recipes
            for match in self._tag_pattern.finditer(clause.replace("-", " ")):
                if any(start < match.end() and match.start() < end for start, end in heads):
                    continue
                tag = self._tag_words[match.group(0)]
                # "not: horror" rules out a horror-comedy and folk horror too
                kin = sorted(t for t in self.tags if t != tag and tag in t.split("-"))
                out.append(Constraint(f"not-tag-{tag}", f"not: {tag}", "exclusion", "tags",
                                      (tag, *kin)))
        return out, (" " + " ".join(wanted) if wanted else "")

    def _modified(self, clause: str, match: re.Match) -> bool:
        """Whether a kind word in a negated clause is half of a "cooking show" or a "horror
        film": then what is ruled out is that sort of thing, not every item of the kind."""
        if re.match(rf"\s+(?:{FORMAT_NOUNS})\b", clause[match.end():]):
            return True  # the kind word says what sort of show
        before = re.search(r"([\w-]+)\s+$", clause[:match.start()])
        return bool(before and re.fullmatch(FORMAT_NOUNS, match.group(0)) and
                    (before.group(1) in self.tags or
                     any(re.fullmatch(p, before.group(1)) for p in MOOD_WORDS.values())))

    def _kinds(self, text: str) -> list[str]:
        """The kinds named in ``text``, longest phrase first, so "live music" names an event
        and not also music."""
        matches = sorted(((m.start(), m.end(), kind) for kind, pattern in self._kind_words.items()
                          for m in pattern.finditer(text)), key=lambda s: s[0] - s[1])
        taken: list[tuple[int, int]] = []
        kinds = []
        for start, end, kind in matches:
            # a phrase may name several kinds ("something to read": books and longreads)
            if all(end <= a or start >= b or (start, end) == (a, b) for a, b in taken):
                taken.append((start, end))
                kinds.append(kind)
        return list(dict.fromkeys(kinds))

    def _positive(self, text: str) -> list[Constraint]:
        out = []
        kinds = self._kinds(text)
        # a hint names an activity, not a topic or a time: "about food", "over lunch", "lunch break"
        hinted = re.sub(rf"\babout \w+|\b(?:{MEALTIME})\b", " ", text)
        if not kinds:
            for group, pattern in KIND_HINTS.items():
                if re.search(rf"\b(?:{pattern})\b", hinted):
                    kinds = [k for k in group if k in self.kinds]
                    break
        if kinds:
            out.append(Constraint("kind-" + "+".join(sorted(kinds)),
                                  "kind: " + " or ".join(sorted(kinds)), "kind", "category",
                                  tuple(sorted(kinds))))
        for key, (pattern, label, values) in PLACE_LIMITS.items():
            if re.search(rf"\b(?:{pattern})\b", text):
                if key == "outdoors" and any(c.key == "indoors" for c in out):
                    continue  # "pouring outside" is weather, not a wish to be outdoors
                if key == "travel" and any(c.key == "on-board" for c in out):
                    continue  # "on the plane" says it already
                if key == "out" and any(c.key == "at-home" for c in out):
                    continue  # "somewhere quiet at home"
                out.append(Constraint(key, label, "place", "places", values))
                away = tuple(k for k in DESTINATION_KINDS if k in self.kinds)
                if key == "on-board" and away:
                    out.append(Constraint("on-board-kinds", "not: places to go", "exclusion",
                                          "category", away))
        audiences = [who for who, pattern in AUDIENCE.items()
                     if re.search(rf"\b(?:{pattern})\b", text)]
        for age in re.findall(rf"\b{AGE}", text):
            audiences.append("kids" if int(age) < 13 else "teens" if int(age) < 20 else "")
        audiences = [who for who in dict.fromkeys(audiences) if who]
        if "teens" in audiences and "kids" in audiences:
            audiences.remove("kids")  # "my teenage son"
        for who in audiences:
            values = {"kids": ("kids", "family"), "teens": ("family", "friends")}.get(who, (who,))
            out.append(Constraint(f"with-{who}", f"with {who}" if who != "alone" else "alone",
                                  "audience", "companions", values))
        young = tuple(t for t in YOUNG_TAGS if t in self.tags)
        if "teens" in audiences and young:  # family company, but not a toddler's songs
            out.append(Constraint("not-young", "not: for young kids", "exclusion", "tags", young))
        for device, pattern in DEVICES.items():
            if re.search(rf"\b(?:{pattern})\b", text):
                out.append(Constraint(f"device-{device}", f"on {device}", "device", "devices",
                                      (device,)))
        times = tuple(t for t, pattern in DAYTIME.items() if re.search(rf"\b(?:{pattern})\b",
                                                                          text))
        if times:
            out.append(Constraint("daytime-" + "+".join(times), " or ".join(times), "daytime",
                                  "dayparts", times))
        return out


def _swapped(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with two neighbouring letters swapped."""
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and \
        a[diff[1]] == b[diff[0]]


def _deletions(word: str, depth: int = 2) -> set[str]:
    """``word`` and every string made from it by taking out up to ``depth`` letters."""
    found, frontier = {word}, {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


# the common forms of the rules' stems ("commut\w*"), which the spelling has no word for
STEM_FORMS = ("commute", "commuting", "relax", "relaxing", "relaxed", "thriller", "suspense",
              "learn", "learning", "comedy", "comedies", "melancholic", "rainy", "raining")


@lru_cache(maxsize=1)
def _rule_words() -> list[str]:
    """The plain words the rules look for, for spelling correction."""
    patterns = [*KIND_WORDS.values(), *MOOD_WORDS.values(), *AUDIENCE.values(), *DEVICES.values(),
                *DAYTIME.values(), *KIND_HINTS.values(), *(p for p, _, _ in PLACE_LIMITS.values()),
                NEGATION, SCREEN, CHEAP, DIET, "something anything"]
    # whole words only: "commut" in "commut\\w*" is a stem, not a spelling to correct toward
    whole = r"(?<![\\\w])[a-z]{5,}(?![\w\\(?*])"
    plural = r"(?<![\\\w])([a-z]{4,})s\?"  # "movies?": movie and movies
    words = {w for p in patterns for w in re.findall(whole, p)}
    words |= {f for p in patterns for w in re.findall(plural, p) for f in (w, w + "s")}
    return sorted(w for w in words | set(STEM_FORMS) if len(w) >= 5)


def _plural(words: str) -> str | None:
    """The plural of a phrase's last word by the plain English endings ("documentary" →
    "documentaries"); ``None`` for a word that already ends in s. Only this direction: a
    singular word such as "train" more often names a situation than the topic "trains"."""
    head, _, last = words.rpartition(" ")
    if len(last) < 3 or not last.isalpha() or last.endswith("s"):
        return None
    if last.endswith("y") and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "es" if last.endswith(("ch", "sh", "x")) else "s"
    return f"{head} {last}".strip()


def _split_negation(text: str) -> tuple[str, list[str]]:
    """The text with every negated stretch removed, and those stretches."""
    negated, kept, position = [], [], 0
    for cue in re.finditer(rf"\b(?:{NEGATION})\b", text):
        if cue.start() < position:
            continue
        end = re.search(BOUNDARY, text[cue.end():])
        stop = cue.end() + end.start() if end else len(text)
        words = list(re.finditer(r"\S+", text[cue.end():stop]))
        if len(words) > SCOPE_WORDS:  # "no kids this weekend" negates the kids, not the weekend
            stop = cue.end() + words[SCOPE_WORDS - 1].end()
        kept.append(text[position:cue.start()])
        negated.append(text[cue.end():stop])
        position = stop
    kept.append(text[position:])
    return " ".join(kept), negated


def _minutes(amount: str, unit: str) -> float | None:
    unit = unit.lower()
    scale = UNITS.get(unit, UNITS.get(unit.rstrip("s"), 1))
    if amount in ("a", "an"):
        value = 1.0
    elif amount.startswith("half"):
        value = 0.5
    elif amount.lower() in NUMBER_WORDS:
        value = float(NUMBER_WORDS[amount.lower()])
    else:
        value = float(amount)
    return value * scale if value > 0 else None


def _duration_label(minutes: float) -> str:
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes / 60:g} h"
    return f"{minutes:g} min"
