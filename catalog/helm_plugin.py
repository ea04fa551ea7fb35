"""`helm-run --plugins catalog.helm_plugin`: HELM runs on the catalog named by $CATALOG_DB.

helm-run imports this module after registering HELM's own configs; importing it replaces them
with the catalog (catalog.helm.plugin explains how). It is a separate module from the `helm`
entry point (catalog.helm.entry_point) because helm-run imports an entry point before
`--plugins`, and a module already imported is not run again.
"""

from catalog.helm.plugin import load_into_helm

load_into_helm()
