"""Reading the catalog: lookups and listings, read-only SQL, checks and export."""
