"""HELM response caches: the store interface, routing rules, plan and migration."""
