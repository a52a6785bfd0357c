"""The ground every stage stands on: typed records, the workspace and its stores, settings, errors, the registry and the worker pool."""
