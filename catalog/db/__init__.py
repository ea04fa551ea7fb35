"""The catalog database: where it is, connections and transactions, schema, revisions."""
