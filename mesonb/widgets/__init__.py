"""Notebook views of the cluster: progress, dashboard, offers, "why pending", HTML reprs.

Each view is split in two: a model (plain data fed by events, testable anywhere) and its
views (ipywidgets in a Jupyter kernel, text elsewhere). ipywidgets, pandas and tqdm are
imported only when a view is built.
"""
