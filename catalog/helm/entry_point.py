"""The `helm` entry point of model-catalog: inert unless CATALOG_HELM_PLUGIN=1.

helm-run imports every installed `helm` entry point on every run. Installing model-catalog
beside HELM must never change what an unsuspecting `helm-run` does, so this module does
nothing (it does not even open a catalog) unless the user opts in with CATALOG_HELM_PLUGIN=1;
then it loads the catalog named by $CATALOG_DB as `--plugins catalog.helm_plugin` would.
"""

import os

OPT_IN = "CATALOG_HELM_PLUGIN"

if os.environ.get(OPT_IN) == "1":
    from catalog.helm.plugin import load_into_helm

    load_into_helm()
