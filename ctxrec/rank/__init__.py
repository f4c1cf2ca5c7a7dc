"""Ranking: the :class:`~ctxrec.rank.query.Ranker` protocol every ranker answers, the component
scores, their weights and fusion in the recommender, explanations and comparisons."""
