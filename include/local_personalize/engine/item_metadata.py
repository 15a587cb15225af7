"""Categorical item metadata as extra interaction rows, for the -v2 recipes (defaults.py).

Each categorical (field, value) of the items dataset becomes one row over the catalogue with 1
for every item holding that value: a pseudo-user who "interacted" with all of them. Added to what
a model learns from, these rows pull items that share values together, which is how metadata
changes v2's recommendations, most for items with few interactions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from include.local_personalize.engine.interactions import Events, IdIndex

# A string column with more distinct values than this share of items is an id or free text, not a category.
MAX_CATEGORY_SHARE = 0.5


def item_metadata_rows(events: Events, items: IdIndex) -> sp.csr_matrix | None:
    """One row per categorical (field, value) of the items dataset, 1 for each item holding it.

    Categorical: a non-numeric column other than ITEM_ID with at most MAX_CATEGORY_SHARE distinct
    values per item; "|" separates several values, as in Personalize's CSVs. None without any.
    """
    frame = events.item_metadata
    if frame is None or "ITEM_ID" not in frame.columns or not len(items):
        return None
    positions = items.lookup(frame["ITEM_ID"].astype(str).to_numpy())
    known = frame[positions >= 0]
    positions = positions[positions >= 0]
    rows, cols = [], []
    value_index: dict[tuple[str, str], int] = {}
    for column in known.columns:
        if column == "ITEM_ID" or pd.api.types.is_numeric_dtype(known[column]):
            continue
        values = known[column].fillna("").astype(str)
        if values.nunique() > MAX_CATEGORY_SHARE * max(1, len(values)):
            continue
        for position, cell in zip(positions, values.tolist(), strict=True):
            for value in {v.strip() for v in cell.split("|")} - {""}:
                rows.append(value_index.setdefault((column, value), len(value_index)))
                cols.append(position)
    if not value_index:
        return None
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(value_index), len(items))
    )
