"""Churn on a real purchase log: CDNOW through the engine, scored at calibration cutoffs.

Data: CDNOW (the ``CDNOW_master.txt`` file shipped in the ``lifetimes`` package, a ``dev`` extra):
23,570 customers of a US online CD retailer who made their first purchase in Q1 1997, with every
purchase they made until the end of June 1998 (69,659 purchases; customer id, date, CDs, USD). One
acquisition cohort, dates only (no time of day).

Path: each purchase becomes a ``pos.v1`` record (``user_id`` = the customer id, ``occurred_at`` = the
date at 12:00Z, ``total`` = the amount in USD, one event per purchase line, deterministic event ids)
and goes through ``Engine.process_batch`` in event-time order, exactly as the worker would apply it.
The engine scores a customer at each of their events and, when they are quiet, every
``churn_snapshot_every_days`` of event time; the churn model learns each snapshot's label once the
watermark passes its horizon.

Cutoffs: every 4 weeks from week 39 to week 65 of the 78 weeks (7 cutoffs at midnight UTC, each with
a full 90-day label window inside the data). At a cutoff the input is idle: the engine has applied
every purchase up to the cutoff, and the watermark reaches the cutoff (as the wall clock would move it
on a quiet night), so quiet customers have been re-scored. Every customer's ``churn_probability``, as
the profile shows it, is then compared with the label *no purchase in (cutoff, cutoff + 90 days]*.

Baselines on the same customers and cutoffs: recency alone (days since the last purchase), and
BG/NBD fitted at each cutoff on every customer's purchases up to it (our ``bgnbd`` and, when it is
installed, ``lifetimes``' BetaGeoFitter; score = minus the expected purchases in the next 90 days;
purchases on one day count once, as in ``lifetimes``). Calibration: log-loss and Brier score of the
model, of BG/NBD's own P(no purchase in 90 days), and of the best constant (the cutoff's base rate).
"""
from __future__ import annotations

import bisect
import hashlib
import sys
import time
from datetime import date, datetime, timedelta, timezone
from importlib import resources

import numpy as np
import orjson

from pipeline.core.engine import Engine
from pipeline.core.pii import Hasher
from pipeline.core.profile import DAY_MS
from pipeline.core.records import RawRecord
from pipeline.core.rules import Rules
from pipeline.drivers.bgnbd import BGNBD

FIXED = datetime(2026, 1, 1, tzinfo=timezone.utc)
EPOCH = date(1970, 1, 1)
START = date(1997, 1, 1)
HORIZON_DAYS = 90
#: Weeks (since 1997-01-01) of the cutoffs: the second half of the 78 weeks, each with 90 days ahead.
CUTOFF_WEEKS = (39, 43, 47, 51, 55, 59, 63)

Row = tuple[str, str, str, str, str]


def load_cdnow() -> list[tuple[str, date, int, float]]:
    """(customer id, date, CDs, USD) per purchase line, in file order."""
    try:
        text = resources.files("lifetimes.datasets").joinpath("CDNOW_master.txt").read_text()
    except ModuleNotFoundError as e:  # pragma: no cover - the dev extra installs it
        raise SystemExit("the churn eval reads CDNOW from the 'lifetimes' package: pip install -e '.[dev]'") from e
    out = []
    for line in text.splitlines()[1:]:
        if line.strip():
            cid, d, qty, usd = line.split()
            out.append((cid, date(int(d[:4]), int(d[4:6]), int(d[6:])), int(qty), float(usd)))
    return out


def day_ms(d: date) -> int:
    return (d - EPOCH).days * DAY_MS


def to_records(rows: list[tuple[str, date, int, float]]) -> list[RawRecord]:
    """``pos.v1`` purchase records in event-time order (ties: customer id, then file order)."""
    order = sorted(range(len(rows)), key=lambda i: (rows[i][1], rows[i][0], i))
    out = []
    for offset, i in enumerate(order):
        cid, d, qty, usd = rows[i]
        eid = "cdnow-" + hashlib.sha256(f"{cid}|{d.isoformat()}|{i}".encode()).hexdigest()[:24]
        value = {
            "event_id": eid, "occurred_at": f"{d.isoformat()}T12:00:00Z", "identifiers": {"user_id": cid},
            "type": "purchase", "transaction_id": eid, "store_id": "CDNOW",
            "items": [{"sku": "CD", "quantity": max(1, qty), "unit_price": round(usd / max(1, qty), 4)}],
            "total": usd, "currency": "USD",
        }
        out.append(RawRecord("pos.v1", 0, offset, cid.encode(), orjson.dumps(value)))
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by ranks (ties get the mean rank)."""
    from scipy.stats import rankdata

    pos = int(labels.sum())
    neg = len(labels) - pos
    if not pos or not neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(y, np.log(p), np.log(1 - p))))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def bgnbd_stats(days: list[list[int]], cutoff_day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD's x (repeat purchase days), t_x and T (days since the first purchase) at a cutoff."""
    x, t_x, T = [], [], []
    for d in days:
        seen = sorted({v for v in d if v <= cutoff_day})
        x.append(len(seen) - 1)
        t_x.append(seen[-1] - seen[0])
        T.append(cutoff_day + 1 - seen[0])  # the cutoff is the end of its day
    return np.array(x, float), np.array(t_x, float), np.array(T, float)


def lifetimes_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray | None:
    """lifetimes' BetaGeoFitter fitted at the cutoff: expected purchases in the next 90 days (None: unavailable)."""
    try:
        from lifetimes import BetaGeoFitter
    except ImportError:  # pragma: no cover
        return None
    try:
        f = BetaGeoFitter(penalizer_coef=0.0).fit(x, t_x, T)
        expected = f.conditional_expected_number_of_purchases_up_to_time(HORIZON_DAYS, x, t_x, T)
        return np.asarray(expected, float)
    except Exception as e:  # pragma: no cover - a failed fit is reported, not fatal
        print(f"  lifetimes BG/NBD failed: {e}", file=sys.stderr)
        return None


def run(cutoff_weeks: tuple[int, ...] = CUTOFF_WEEKS, rules: Rules | None = None,
        progress: bool = True) -> list[dict[str, object]]:
    """Run CDNOW through the engine; per cutoff, the arrays every learner is scored on."""
    t0 = time.perf_counter()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    rules = rules or Rules()
    hasher = Hasher(b"eval-churn")
    engine = Engine(rules, hasher, lambda: FIXED)
    rows = load_cdnow()
    records = to_records(rows)
    times = sorted(day_ms(d) + DAY_MS // 2 for _, d, _, _ in rows)  # the records' event times, in their order
    days: dict[str, list[int]] = {}
    for cid, d, _, _ in rows:
        days.setdefault(cid, []).append((d - EPOCH).days)
    ids = sorted(days)
    keys = [hasher.identifier("user_id", cid).key for cid in ids]  # type: ignore[union-attr]
    say(f"churn eval: CDNOW, {len(ids)} customers, {len(records)} purchases; engine running")
    cutoffs = [START + timedelta(weeks=w) for w in cutoff_weeks]  # midnight UTC: the end of the day before
    lateness = int(rules.allowed_lateness_s * 1000)
    source = [("pos.v1", 0)]
    results = []
    i = 0
    for cutoff in cutoffs:
        cut_ms = day_ms(cutoff)
        j = bisect.bisect_left(times, cut_ms, lo=i)
        for k in range(i, j, 2000):
            engine.process_batch(records[k:min(k + 2000, j)])
        i = j
        engine.idle(source)
        engine.advance_to(cut_ms + lateness)  # idle input: the watermark reaches the cutoff
        cut_day = (cutoff - EPOCH).days - 1  # the last day whose purchases are known
        # File order is by date per customer. A customer id the identity graph refuses as a placeholder
        # (CDNOW has "11111" and "22222") has no customer: it is left out, as the engine leaves it out.
        present = [n for n, cid in enumerate(ids) if days[cid][0] <= cut_day and keys[n] in engine.identity.owner]
        customers = engine.customers
        states = [customers[engine.identity.canonical(engine.identity.owner[keys[n]])] for n in present]
        p = np.array([st.churn_probability for st in states])  # as the profile shows it (scored <= 7 days ago)
        fresh = np.array([engine.churn.predict(st.features(cut_ms)) for st in states])  # diagnostic: scored now
        y = np.array([not any(cut_day < d <= cut_day + HORIZON_DAYS for d in days[ids[n]]) for n in present])
        x, t_x, T = bgnbd_stats([days[ids[n]] for n in present], cut_day)
        bg = BGNBD().fit(x, t_x, T)
        res = {"cutoff": cutoff, "n": len(present), "y": y, "model": p, "fresh": fresh, "recency": T - t_x,  # days since the last purchase
               "bgnbd": -bg.expected_purchases(HORIZON_DAYS, x, t_x, T),
               "bgnbd_p": bg.p_no_purchase(HORIZON_DAYS, x, t_x, T), "labels_learned": engine.churn.learned}
        lt = lifetimes_bgnbd(x, t_x, T)
        if lt is not None:
            res["lifetimes"] = -lt
        results.append(res)
        say(f"  cutoff {cutoff} (week {(cutoff - START).days // 7}): {len(present)} customers, "
            f"{y.mean():.3f} churned, {engine.churn.learned} labels learned, {time.perf_counter() - t0:.0f}s")
    return results


def rows(cutoff_weeks: tuple[int, ...] = CUTOFF_WEEKS) -> list[Row]:
    """``rapport eval``'s churn rows: per cutoff and over all cutoffs, the model next to its baselines."""
    t0 = time.perf_counter()
    results = run(cutoff_weeks)
    out: list[Row] = []
    names = [("model", "model (engine's churn_probability)"), ("bgnbd", "BG/NBD (ours, fitted at the cutoff)"),
             ("lifetimes", "BG/NBD (lifetimes BetaGeoFitter)"), ("recency", "recency only (days since last purchase)")]
    aucs: dict[str, list[float]] = {}
    for r in results:
        y, n, tag = r["y"], str(r["n"]), f"cutoff {r['cutoff']}"
        for key, label in names:
            if key in r:
                a = auc(r[key], y)  # type: ignore[arg-type]
                aucs.setdefault(key, []).append(a)
                out.append(("churn", label, f"ROC AUC, {tag}", f"{a:.3f}", n))
    total = str(sum(r["n"] for r in results))  # type: ignore[misc]
    for key, label in names:
        if key in aucs:
            out.append(("churn", label, f"ROC AUC, mean of {len(results)} cutoffs", f"{np.mean(aucs[key]):.3f}", total))
    y_all = np.concatenate([r["y"] for r in results])  # type: ignore[misc]
    base = np.concatenate([np.full(r["n"], r["y"].mean()) for r in results])  # type: ignore[misc,union-attr]
    for key, label in (("model", "model (engine's churn_probability)"), ("bgnbd_p", "BG/NBD P(no purchase in 90 d)"),
                       ("const", "constant: each cutoff's base rate")):
        p = base if key == "const" else np.concatenate([r[key] for r in results])  # type: ignore[misc]
        out.append(("churn", label, "log-loss, all cutoffs", f"{log_loss(p, y_all):.4f}", total))
        out.append(("churn", label, "Brier score, all cutoffs", f"{brier(p, y_all):.4f}", total))
    out.append(("churn", "share churned", "all cutoffs", f"{y_all.mean():.3f}", total))
    p_all = np.concatenate([r["model"] for r in results])  # type: ignore[misc]
    threshold = Rules().churn_threshold
    flagged = p_all >= threshold
    out.append(("churn", f"model >= churn_threshold ({threshold})", "share of customers; share of them churned",
                f"{flagged.mean():.3f}; {y_all[flagged].mean():.3f}", total))
    print(f"churn eval: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return out


if __name__ == "__main__":  # pragma: no cover
    for r in rows():
        print("  ".join(r))
