"""The demo shop's data, generated in memory: users, items and click/view/cart/purchase events.

The model behind include/demo_data.py (which writes it to SQLite or PostgreSQL and is the CLI); see
its docstring for the structure the data has. Pure functions of their arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

CATEGORIES = (
    "electronics",
    "books",
    "home",
    "kitchen",
    "toys",
    "sports",
    "beauty",
    "fashion",
    "garden",
    "grocery",
    "music",
    "pets",
)
# Median price per category (lognormal around it), in the shop's currency.
CATEGORY_MEDIAN_PRICE = {
    "electronics": 120.0,
    "books": 14.0,
    "home": 45.0,
    "kitchen": 30.0,
    "toys": 25.0,
    "sports": 40.0,
    "beauty": 18.0,
    "fashion": 35.0,
    "garden": 28.0,
    "grocery": 6.0,
    "music": 12.0,
    "pets": 16.0,
}
TIERS = ("free", "plus", "premium")
TIER_SHARE = (0.70, 0.22, 0.08)
# Paying tiers come back more often and buy more readily.
TIER_ACTIVITY = {"free": 1.0, "plus": 1.6, "premium": 2.4}
TIER_PURCHASE_RATE = {"free": 0.35, "plus": 0.5, "premium": 0.65}
REGIONS = ("na", "eu", "apac", "latam")
REGION_SHARE = (0.40, 0.30, 0.20, 0.10)
# Offset of local time from UTC (hours), so each region's evening peak lands at a different UTC hour.
REGION_UTC_OFFSET = {"na": -6, "eu": 1, "apac": 8, "latam": -4}
EVENT_TYPES = ("click", "view", "cart", "purchase")

N_CLUSTERS = 8
N_STYLES = 4
SESSIONS_PER_USER_DAY = 0.12
EXPLORATION = 0.15  # share of sessions in a category drawn from the whole shop, not the user's taste
DRIFT_PER_30_DAYS = 0.1  # share of each cluster's taste that moves to its "later" preference per month
DRIFT_MAX = 0.8
NEW_ITEM_SHARE = 0.15
NEW_USER_SHARE = 0.25
ZIPF_EXPONENT = 0.8
STYLE_BOOST = 6.0
VIEW_RATE, CART_RATE = 0.6, 0.15


@dataclass(frozen=True)
class DemoData:
    """The generated tables (timestamps as UTC pandas datetimes) and the hidden truth behind them."""

    users: pd.DataFrame
    items: pd.DataFrame
    events: pd.DataFrame
    user_cluster: pd.Series  # user_id -> taste cluster; never written to the app DB
    cluster_categories: dict[int, tuple[str, ...]]  # each cluster's favourite categories at the start
    start: datetime
    end: datetime

    def interactions(self) -> pd.DataFrame:
        """The events as a Personalize interactions dataset: upper-case columns, epoch-second TIMESTAMP."""
        epoch = pd.Timestamp("1970-01-01", tz="UTC")
        return pd.DataFrame(
            {
                "USER_ID": self.events["user_id"],
                "ITEM_ID": self.events["item_id"],
                "TIMESTAMP": (self.events["occurred_at"] - epoch) // pd.Timedelta(seconds=1),
                "EVENT_TYPE": self.events["event_type"],
                "EVENT_VALUE": self.events["event_value"],
            }
        )


def default_end() -> datetime:
    """Midnight UTC today: the demo's data ends where the scheduler's intervals begin."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def build(*, users: int, items: int, days: int, seed: int, end: datetime | None = None) -> DemoData:
    """Generate the three tables in memory. Pure function of its arguments."""
    _check_positive("users", users)
    _check_positive("items", items, minimum=len(CATEGORIES))
    _check_positive("days", days)
    _check_positive("seed", seed, minimum=0)
    end = end or default_end()
    if end.tzinfo is None:
        raise ValueError(f"end must be timezone-aware (UTC), got naive {end.isoformat()}")
    end = end.astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    rng = np.random.default_rng(seed)
    n_cat = len(CATEGORIES)

    # --- taste clusters: a start and an end preference over categories, plus a favourite style.
    cluster_pref = np.empty((2, N_CLUSTERS, n_cat))
    cluster_favourites: dict[int, tuple[str, ...]] = {}
    for phase in range(2):
        for k in range(N_CLUSTERS):
            favourites = rng.choice(n_cat, size=rng.integers(2, 4), replace=False)
            weights = np.full(n_cat, 0.02)
            weights[favourites] = rng.dirichlet(np.full(len(favourites), 4.0)) * 0.9
            cluster_pref[phase, k] = weights / weights.sum()
            if phase == 0:
                cluster_favourites[k] = tuple(CATEGORIES[c] for c in sorted(favourites))
    cluster_style = rng.permutation(N_CLUSTERS) % N_STYLES

    # --- items: category, power-law popularity, style, price, created_at (most existed before start).
    item_ids = np.array([f"I{i:05d}" for i in range(1, items + 1)])
    # Every category gets at least one item; the rest follow a skewed category size.
    item_cat = np.concatenate(
        [np.arange(n_cat), rng.choice(n_cat, size=items - n_cat, p=rng.dirichlet(np.full(n_cat, 3.0)))]
    )
    item_cat = rng.permutation(item_cat)
    item_style = rng.integers(0, N_STYLES, size=items)
    item_popularity = np.empty(items)
    for c in range(n_cat):
        members = np.flatnonzero(item_cat == c)
        ranks = rng.permutation(len(members)) + 1
        item_popularity[members] = ranks.astype(float) ** -ZIPF_EXPONENT
    median_price = np.array([CATEGORY_MEDIAN_PRICE[c] for c in CATEGORIES])[item_cat]
    item_price = np.round(median_price * rng.lognormal(0.0, 0.5, size=items), 2).clip(0.5)
    is_new_item = rng.random(items) < NEW_ITEM_SHARE
    # The most popular item of each category always predates the window, so every category can be shopped.
    for c in range(n_cat):
        members = np.flatnonzero(item_cat == c)
        is_new_item[members[np.argmax(item_popularity[members])]] = False
    item_created_s = np.where(
        is_new_item,
        rng.uniform(0, days * 86400, size=items),
        -rng.uniform(1, 730, size=items) * 86400,
    ).astype(np.int64)
    # New arrivals get a novelty boost: the catalogue drifts, which UPDATE training has to pick up.
    item_popularity = np.where(is_new_item, item_popularity * 2.0, item_popularity)

    # --- users: tier, region, cluster, activity, signup (a quarter sign up during the window).
    user_ids = np.array([f"U{u:05d}" for u in range(1, users + 1)])
    user_tier = rng.choice(len(TIERS), size=users, p=TIER_SHARE)
    user_region = rng.choice(len(REGIONS), size=users, p=REGION_SHARE)
    user_cluster = rng.integers(0, N_CLUSTERS, size=users)
    is_new_user = rng.random(users) < NEW_USER_SHARE
    user_signup_s = np.where(
        is_new_user,
        rng.uniform(0, days * 86400 * 0.9, size=users),
        -rng.uniform(1, 1000, size=users) * 86400,
    ).astype(np.int64)
    tier_activity = np.array([TIER_ACTIVITY[t] for t in TIERS])[user_tier]
    activity = rng.lognormal(0.0, 0.8, size=users) * tier_activity
    first_day = np.maximum(0, np.ceil(user_signup_s / 86400)).astype(np.int64)
    active_days = days - first_day
    expected_sessions = SESSIONS_PER_USER_DAY * active_days * activity / np.exp(0.32) / tier_activity.mean()
    # Everyone has at least two sessions: Personalize counts users with >= 2 interactions.
    n_sessions = np.maximum(2, rng.poisson(expected_sessions))

    # --- sessions: day by calendar weight, hour by the region's evening, category by (drifting) taste.
    day_dates = [start + timedelta(days=d) for d in range(days)]
    day_weight = np.array([_calendar_weight(d) for d in day_dates]) * np.linspace(1.0, 1.3, days)
    day_cdf = np.cumsum(day_weight) / day_weight.sum()
    session_user = np.repeat(np.arange(users), n_sessions)
    n_sess = len(session_user)
    lo = np.where(first_day[session_user] > 0, day_cdf[np.maximum(first_day[session_user] - 1, 0)], 0.0)
    session_day = np.searchsorted(day_cdf, lo + rng.random(n_sess) * (1.0 - lo), side="right")
    session_day = np.minimum(np.maximum(session_day, first_day[session_user]), days - 1)
    local_hour = rng.choice(24, size=n_sess, p=_hour_of_day_share())
    utc_offset = np.array([REGION_UTC_OFFSET[r] for r in REGIONS])[user_region[session_user]]
    utc_hour = (local_hour - utc_offset) % 24
    session_start_s = session_day * 86400 + utc_hour * 3600 + rng.integers(0, 3600, size=n_sess)
    # Sessions cannot begin before the user signed up (signup happens earlier that day at the latest).
    session_start_s = np.maximum(session_start_s, user_signup_s[session_user] + 60)

    phase_late = rng.random(n_sess) < np.minimum(DRIFT_MAX, DRIFT_PER_30_DAYS * (session_day + 0.5) / 30)
    explore = rng.random(n_sess) < EXPLORATION
    pref = cluster_pref[phase_late.astype(int), user_cluster[session_user]]
    category_share = np.bincount(item_cat, weights=item_popularity, minlength=n_cat)
    pref[explore] = category_share / category_share.sum()
    session_cat = _sample_rows(pref, rng)

    # --- items browsed per session: popularity x style match, only items that exist at that time.
    items_per_session = 1 + rng.poisson(2.0, size=n_sess)
    row_session = np.repeat(np.arange(n_sess), items_per_session)
    n_rows = len(row_session)
    row_cluster = user_cluster[session_user[row_session]]
    row_cat = session_cat[row_session]
    gaps = rng.integers(20, 300, size=n_rows)
    # Time of each browsed item: session start plus the gaps before it within the session.
    within = np.cumsum(gaps) - gaps
    session_first_row = np.cumsum(items_per_session) - items_per_session
    row_offset = within - within[session_first_row[row_session]]
    row_time_s = session_start_s[row_session] + row_offset
    row_item = np.empty(n_rows, dtype=np.int64)
    for k in range(N_CLUSTERS):
        style_weight = np.where(item_style == cluster_style[k], STYLE_BOOST, 1.0)
        for c in range(n_cat):
            rows = np.flatnonzero((row_cluster == k) & (row_cat == c))
            if rows.size:
                members = np.flatnonzero(item_cat == c)
                row_item[rows] = _sample_existing(
                    members,
                    item_popularity[members] * style_weight[members],
                    item_created_s[members],
                    row_time_s[rows],
                    rng,
                )

    # --- funnel: every browsed item is clicked; some are viewed, carted and bought.
    row_user = session_user[row_session]
    viewed = rng.random(n_rows) < VIEW_RATE
    carted = viewed & (rng.random(n_rows) < CART_RATE)
    purchase_rate = np.array([TIER_PURCHASE_RATE[t] for t in TIERS])[user_tier[row_user]]
    bought = carted & (rng.random(n_rows) < purchase_rate)
    view_t = row_time_s + rng.integers(3, 60, size=n_rows)
    cart_t = view_t + rng.integers(20, 600, size=n_rows)
    buy_t = cart_t + rng.integers(60, 1800, size=n_rows)
    parts = [
        (np.ones(n_rows, bool), 0, row_time_s),
        (viewed, 1, view_t),
        (carted, 2, cart_t),
        (bought, 3, buy_t),
    ]
    ev_user = np.concatenate([row_user[m] for m, _, _ in parts])
    ev_item = np.concatenate([row_item[m] for m, _, _ in parts])
    ev_type = np.concatenate([np.full(m.sum(), t) for m, t, _ in parts])
    ev_time = np.concatenate([ts[m] for m, _, ts in parts])
    ev_value = np.where(ev_type == 3, item_price[ev_item], np.nan)
    # Late-evening sessions on the last day can spill past `end`; those events have not happened yet.
    keep = ev_time < days * 86400
    order = np.lexsort((ev_type[keep], ev_item[keep], ev_user[keep], ev_time[keep]))
    ev_user, ev_item, ev_type, ev_time, ev_value = (
        a[keep][order] for a in (ev_user, ev_item, ev_type, ev_time, ev_value)
    )

    start_ts = pd.Timestamp(start)
    users_df = pd.DataFrame(
        {
            "user_id": user_ids,
            "tier": np.array(TIERS)[user_tier],
            "region": np.array(REGIONS)[user_region],
            "signup_at": start_ts + pd.to_timedelta(user_signup_s, unit="s"),
        }
    )
    items_df = pd.DataFrame(
        {
            "item_id": item_ids,
            "category": np.array(CATEGORIES)[item_cat],
            "price": item_price,
            "created_at": start_ts + pd.to_timedelta(item_created_s, unit="s"),
        }
    )
    events_df = pd.DataFrame(
        {
            "event_id": np.arange(1, len(ev_user) + 1, dtype=np.int64),
            "user_id": user_ids[ev_user],
            "item_id": item_ids[ev_item],
            "event_type": np.array(EVENT_TYPES)[ev_type],
            "event_value": ev_value,
            "occurred_at": start_ts + pd.to_timedelta(ev_time, unit="s"),
        }
    )
    return DemoData(
        users=users_df,
        items=items_df,
        events=events_df,
        user_cluster=pd.Series(user_cluster, index=user_ids, name="cluster"),
        cluster_categories=cluster_favourites,
        start=start,
        end=end,
    )


def _calendar_weight(day: datetime) -> float:
    """Relative traffic of a calendar day: weekends, paydays and the December holiday run-up are busier."""
    weight = 1.3 if day.weekday() >= 5 else 1.0
    if day.day in (1, 2, 15, 16):
        weight *= 1.2
    day_of_year = day.timetuple().tm_yday
    return weight * (1.0 + 0.8 * np.exp(-(((day_of_year - 345) / 15.0) ** 2)))


def _hour_of_day_share() -> np.ndarray:
    """Local-time share of sessions per hour: quiet nights, a lunch bump and an evening peak."""
    hours = np.arange(24)
    share = 0.15 + np.exp(-(((hours - 20.5) / 2.5) ** 2)) + 0.5 * np.exp(-(((hours - 12.5) / 1.5) ** 2))
    return share / share.sum()


def _sample_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of a (rows x categories) probability matrix."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative <= draws).sum(axis=1), probabilities.shape[1] - 1)


def _sample_existing(
    members: np.ndarray,
    weights: np.ndarray,
    created_s: np.ndarray,
    at_s: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw one member per time in `at_s` by weight, among members created before that time."""
    chosen = np.empty(len(at_s), dtype=np.int64)
    # Sort by time so each draw only sees the prefix of members that exist by then.
    order_members = np.argsort(created_s, kind="stable")
    created_sorted = created_s[order_members]
    cumulative = np.cumsum(weights[order_members])
    available = np.searchsorted(created_sorted, at_s, side="right")
    # The category's most popular item predates the window, so `available` >= 1 for every draw.
    totals = cumulative[np.maximum(available - 1, 0)]
    picks = np.searchsorted(cumulative, rng.random(len(at_s)) * totals, side="right")
    picks = np.minimum(picks, available - 1)
    chosen[:] = members[order_members[picks]]
    return chosen
