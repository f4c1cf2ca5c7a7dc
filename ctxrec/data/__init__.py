"""Data in: catalogs, MovieLens, downloads, interaction and context logs, the scenario store,
and the :class:`~ctxrec.data.context.Context` a person edits. Imports nothing else from ctxrec."""
