"""HELM itself on the catalog: the `helm-run` plugin, exports HELM's own rule follows, and the
questions only HELM's code can answer (what it generates at run time, a run spec's groups).

Nothing here imports HELM at module level: each function that needs it imports it when called,
so the package stays importable (and `import catalog` stays light) without crfm-helm.
"""
