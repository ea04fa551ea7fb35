"""`catalog serve`: the catalog in Datasette, with its own pages, charts and search.

`server` decides which file is served and how (live and read-only, or an immutable snapshot)
and runs Datasette; `site` is the metadata (descriptions from the schema, facets, canned
queries, charts); `pages` computes what the catalog's own pages show; `plugin` is the Datasette
plugin that serves them. Only `server` and `plugin` import Datasette, and only `catalog serve`
imports them: the rest of the package never needs the `web` extra.
"""
