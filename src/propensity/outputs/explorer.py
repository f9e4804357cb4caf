"""The account explorer for sales: one self-contained HTML file (no server, works offline, the
data embedded) with every scored prospect, searchable by name or id, filterable by priority,
tier, country and industry, sortable by any score; a click opens the account's card.

* :func:`explorer_data` (frames in, a plain payload out) scores the prospects at ``as_of`` with
  the one scorer and adds, per account, point in time (data strictly before ``as_of``):
  the reasons of both heads with their share; the trend of both scores over the score history
  (:mod:`propensity.history`) plus now; the buying group (contacts known per role, how many
  engaged in the last 90 days and when last; roles with nobody engaged); intent topics of the
  last four delivered weeks; and what changed since the previous snapshot (score and tier
  changes, the business fields whose contribution moved most).
* :func:`write_explorer` renders ``templates/explorer.html.j2``. The payload is JSON inside a
  ``<script type="application/json">`` with ``<``, ``>``, ``&`` and the line separators
  escaped, read with ``JSON.parse``; the page builds every element with ``textContent``, never
  ``innerHTML``, so an account named ``<script>`` or ``<img onerror>`` stays text.

Texts repeated across accounts (reasons, field labels, topics, dates) are stored once in a string
table and referenced by index, which keeps 100,000 accounts to tens of megabytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup

from propensity.data.specs import Tables
from propensity.features.matrix import build_features
from propensity.history import History
from propensity.io import write_text
from propensity.outputs.export import ScoringConfig, ranked_list
from propensity.outputs.report import environment
from propensity.scoring import AccountModel, previous_snapshot, snapshot_features
from propensity.spine import build_spine, data_end

TEMPLATE = "explorer.html.j2"
ROLES = ("decision_maker", "influencer", "user", "it")
ENGAGED_DAYS = 90
INTENT_WEEKS = 4
MOVED_FIELDS = 3


class _Strings:
    """A string table: each distinct text once, referenced by its index."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, text) -> int:
        text = "" if text is None else str(text)
        if text not in self._index:
            self._index[text] = len(self.texts)
            self.texts.append(text)
        return self._index[text]


def _reasons(payload: str, strings: _Strings) -> list[list]:
    return [[strings(r["text"]), round(float(r["share"]), 3)] for r in json.loads(payload or "[]")]


def buying_groups(tables: Tables, accounts: pd.Index, as_of: pd.Timestamp) -> dict[str, list]:
    """Per account: ``[role, contacts known, contacts engaged in the last 90 days, days since the
    last engagement (None: never)]`` for each role, from contacts created and events dated
    before ``as_of``."""
    contacts = tables.rows_of("contacts", accounts)
    if contacts is None or "role" not in contacts:
        return {}
    events = tables.rows_of("events", accounts)
    known = contacts
    if "created_at" in known:
        known = known[known["created_at"].isna() | (known["created_at"] < as_of)]
    known = known[["contact_id", "account_id", "role"]].astype({"role": "string"})
    per_role = known.groupby(["account_id", "role"]).size().rename("contacts")
    last = pd.Series(dtype="datetime64[us]")
    engaged = pd.Series(dtype=float)
    if events is not None and "contact_id" in events:
        window = events[
            (events["ts"] < as_of)
            & (events["ts"] >= as_of - pd.Timedelta(days=ENGAGED_DAYS))
            & events["contact_id"].notna()
            & events["account_id"].isin(accounts)
        ]
        latest = window.groupby("contact_id")["ts"].max().rename("last")
        with_roles = known.merge(latest, left_on="contact_id", right_index=True)
        grouped = with_roles.groupby(["account_id", "role"])
        engaged, last = grouped.size(), grouped["last"].max()
    table = per_role.to_frame().join(engaged.rename("engaged")).join(last.rename("last"))
    out: dict[str, list] = {}
    for (account, role), row in table.iterrows():
        days = None if pd.isna(row["last"]) else int((as_of - row["last"]).days)
        engaged_n = 0 if pd.isna(row["engaged"]) else int(row["engaged"])
        out.setdefault(account, []).append([role, int(row["contacts"]), engaged_n, days])
    return out


def intent_topics(tables: Tables, accounts: pd.Index, as_of: pd.Timestamp) -> dict[str, list]:
    """Per account: ``[topic, highest score]`` over the last four weeks delivered before
    ``as_of`` (a week is known from its start + 7 days), highest first."""
    intent = tables.rows_of("intent", accounts)
    if intent is None:
        return {}
    delivered = intent["week"] + pd.Timedelta(days=7)
    recent = intent[
        (delivered <= as_of)
        & (delivered > as_of - pd.Timedelta(weeks=INTENT_WEEKS))
        & intent["account_id"].isin(accounts)
    ]
    top = (
        recent.astype({"topic": "string"})
        .groupby(["account_id", "topic"])["score"]
        .max()
        .reset_index()
        .sort_values(["account_id", "score"], ascending=[True, False])
    )
    out: dict[str, list] = {}
    for row in top.itertuples():
        out.setdefault(row.account_id, []).append([row.topic, int(row.score)])
    return out


def _trends(history: History | None, accounts: set[str]) -> pd.DataFrame:
    """Each account's scores per earlier scoring (the latest model at each as_of)."""
    if history is None or history.scores.empty:
        return pd.DataFrame(columns=["account_id", "as_of", "fit_score", "conversion_score"])
    latest = history.batches.sort_values("scored_at").drop_duplicates("as_of", keep="last")
    rows = history.scores[history.scores["batch_id"].isin(latest["batch_id"])]
    rows = rows[rows["account_id"].isin(accounts)]
    return rows[["account_id", "as_of", "fit_score", "conversion_score"]].sort_values("as_of")


def _moved(
    model: AccountModel, matrix: pd.DataFrame, previous: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Per head, the change of each business field's contribution since the previous snapshot."""
    out = {}
    for head, scorer in model.scorers.items():
        now = scorer.field_contributions(matrix)
        before = scorer.field_contributions(previous)
        out[head] = (now - before.to_numpy(), list(now.columns))
    return out


def explorer_data(
    tables: Tables,
    model: AccountModel,
    as_of: pd.Timestamp | str | None = None,
    history: History | None = None,
    config: ScoringConfig | None = None,
) -> dict:
    """The explorer's payload for the prospects at ``as_of`` (module docstring)."""
    config = config or ScoringConfig.from_yaml()
    as_of = pd.Timestamp(as_of).normalize() if as_of is not None else data_end(tables)
    matrix = snapshot_features(tables, model, as_of).reset_index(drop=True)
    scored = model.score_features(matrix)
    listing = ranked_list(scored, tables.accounts, config).set_index("account_id")
    accounts = pd.Index(scored["account_id"].astype(str))
    listing = listing.loc[accounts]

    previous_as_of = previous_snapshot(as_of, model.spine)
    was_prospect = set(build_spine(tables, model.spine, as_of=previous_as_of)["account_id"])
    previous_matrix = build_features(
        tables,
        pd.DataFrame({"account_id": accounts, "as_of": previous_as_of}),
        model.features,
    ).matrix.reset_index(drop=True)
    previous = model.score_features(previous_matrix, reasons=False)
    moved = _moved(model, matrix, previous_matrix)
    label_of = {}
    for scorer in model.scorers.values():
        for spec in scorer.specs:
            label_of.setdefault(spec.field, spec.label)

    groups = buying_groups(tables, accounts, as_of)
    topics = intent_topics(tables, accounts, as_of)
    strings = _Strings()
    trend_of: dict[str, list] = {}
    trends = _trends(history, set(accounts))
    trends = trends[pd.to_datetime(trends["as_of"]) < as_of]
    for account, day, fit, conversion in zip(
        trends["account_id"].to_numpy(),
        pd.to_datetime(trends["as_of"]).dt.date.astype(str).to_numpy(),
        trends["fit_score"].to_numpy(),
        trends["conversion_score"].to_numpy(),
        strict=True,
    ):
        trend_of.setdefault(account, []).append([strings(day), int(fit), int(conversion)])

    def text_codes(column: str) -> list[int]:
        return [strings("" if pd.isna(v) else v) for v in listing[column].to_numpy()]

    columns = {
        "id": list(accounts),
        "name": ["" if pd.isna(v) else str(v) for v in listing["account_name"].to_numpy()],
        "country": text_codes("country"),
        "industry": text_codes("industry"),
        "priority": text_codes("priority"),
        "rank": listing["rank"].astype(int).tolist(),
        "fit": listing["fit_score"].astype(int).tolist(),
        "fit_tier": text_codes("fit_tier"),
        "conv": listing["conversion_score"].astype(int).tolist(),
        "conv_tier": text_codes("conversion_tier"),
        "prob": listing["conversion_probability"].astype(float).round(4).tolist(),
    }
    today = strings(str(as_of.date()))
    since = strings(str(previous_as_of.date()))
    reasons = {
        head: [_reasons(payload, strings) for payload in scored[f"{head}_reasons_json"].to_numpy()]
        if f"{head}_reasons_json" in scored
        else [[] for _ in range(len(accounts))]
        for head in ("fit", "conversion")
    }
    changes = {}
    for head in model.scorers:
        delta, fields = moved[head]
        values = delta.to_numpy()
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :MOVED_FIELDS]
        score_delta = scored[f"{head}_score"].to_numpy() - previous[f"{head}_score"].to_numpy()
        tier_before = [strings(t) for t in previous[f"{head}_tier"].to_numpy()]
        changes[head] = [
            [
                int(score_delta[i]),
                tier_before[i],
                [
                    [strings(label_of.get(fields[j], fields[j])), round(float(values[i, j]), 3)]
                    for j in order[i]
                    if abs(values[i, j]) > 1e-6
                ],
            ]
            for i in range(len(accounts))
        ]
    details = []
    for i, account in enumerate(accounts):
        change = None
        if account in was_prospect:
            change = {"since": since, **{head: changes[head][i] for head in changes}}
        details.append(
            [
                reasons["fit"][i],
                reasons["conversion"][i],
                [*trend_of.get(account, []), [today, columns["fit"][i], columns["conv"][i]]],
                [[strings(r), n, engaged, days] for r, n, engaged, days in groups.get(account, [])],
                [[strings(topic), score] for topic, score in topics.get(account, [])],
                change,
            ]
        )
    return {
        "as_of": str(as_of.date()),
        "model_version": model.version,
        "roles": list(ROLES),
        "engaged_days": ENGAGED_DAYS,
        "intent_weeks": INTENT_WEEKS,
        "strings": strings.texts,
        "columns": columns,
        "details": details,
    }


def _script_json(payload: dict) -> Markup:
    """JSON that cannot end its ``<script>`` element or start markup inside it."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(raw, escaped)
    return Markup(text)  # noqa: S704 - escaped above for a script element, not HTML text


def write_explorer(payload: dict, out: Path | str) -> Path:
    """The explorer page at ``out`` (written atomically)."""
    html = (
        environment()
        .get_template(TEMPLATE)
        .render(
            data=_script_json(payload),
            as_of=payload["as_of"],
            model_version=payload["model_version"],
            accounts=len(payload["columns"]["id"]),
        )
    )
    return write_text(html, out)
