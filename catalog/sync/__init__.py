"""`catalog sync`: HELM-format YAML layers read, checked, merged and written in one transaction."""
