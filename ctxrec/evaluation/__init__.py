"""Measuring rankers: metrics, splits, the ranking protocols, baselines and statistics.

It sits below the models (training validates with it) and knows them only through the
:class:`~ctxrec.rank.query.Ranker` protocol; experiments that run models live in
:mod:`ctxrec.experiments`."""
