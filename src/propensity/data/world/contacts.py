"""Contacts: people known at an account, each in a buying-group role with a seniority."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from propensity.data.world.columns import dictionary, timestamps
from propensity.data.world.config import DAY, WEEK, Clock

ROLES = ("user", "influencer", "decision_maker", "it")
ROLE_SHARES = (0.40, 0.28, 0.16, 0.16)
SENIORITY_BY_ROLE = {
    "user": (("individual_contributor", "manager"), (0.75, 0.25)),
    "influencer": (("manager", "director"), (0.6, 0.4)),
    "decision_maker": (("director", "vp", "c_level"), (0.35, 0.4, 0.25)),
    "it": (("individual_contributor", "manager", "director"), (0.5, 0.35, 0.15)),
}


@dataclass
class Contacts:
    """Contacts of a chunk (one row per contact) and the hidden traits behind their engagement."""

    per_account: np.ndarray  # number of contacts of each account
    account: np.ndarray  # account index of each contact
    role: np.ndarray  # codes into ROLES
    seniority: np.ndarray
    created: np.ndarray  # seconds; most contacts were known before the data starts
    created_week: np.ndarray  # first full week the contact is known
    propensity: np.ndarray  # how much this person engages
    subscribed: np.ndarray  # receives the newsletter
    open_probability: np.ndarray  # of a newsletter e-mail


def draw_contacts(rng: np.random.Generator, clock: Clock, log_employees: np.ndarray) -> Contacts:
    """Contacts for 62 % of the accounts, more for bigger companies (at most 40)."""
    n = len(log_employees)
    has_contacts = rng.random(n) < 0.62
    n_contacts = np.where(
        has_contacts, 1 + rng.poisson(np.clip(0.8 + 0.9 * log_employees, 0.5, 6)), 0
    )
    n_contacts = np.minimum(n_contacts, 40)
    account = np.repeat(np.arange(n), n_contacts)
    m = len(account)
    role = rng.choice(4, size=m, p=ROLE_SHARES).astype(np.int8)
    seniority = np.empty(m, dtype=object)
    for r, role_name in enumerate(ROLES):
        levels, shares = SENIORITY_BY_ROLE[role_name]
        sel = role == r
        seniority[sel] = rng.choice(levels, size=sel.sum(), p=shares)
    known_before = rng.random(m) < 0.7
    created = np.where(
        known_before,
        clock.start - rng.integers(1, 3 * 365, size=m) * DAY,
        clock.start + rng.integers(0, clock.weeks * WEEK, size=m),
    ) - rng.integers(0, DAY, size=m)
    created_week = np.maximum((created - clock.start) // WEEK + 1, 0)
    propensity = rng.gamma(1.0, 1.0, size=m)
    subscribed = rng.random(m) < 0.45
    open_probability = rng.beta(1.2, 6.0, size=m)
    return Contacts(
        per_account=n_contacts,
        account=account,
        role=role,
        seniority=seniority,
        created=created,
        created_week=created_week,
        propensity=propensity,
        subscribed=subscribed,
        open_probability=open_probability,
    )


def contact_ids(first_contact: int, m: int) -> np.ndarray:
    """Contact ids ``C00000000``... of a chunk starting at contact number ``first_contact``."""
    return np.array([f"C{first_contact + i:08d}" for i in range(m)], dtype=object)


def contacts_table(contacts: Contacts, ids: np.ndarray, contact_id: np.ndarray) -> pa.Table:
    """The ``contacts`` contract table."""
    return pa.table(
        {
            "contact_id": pa.array(contact_id, pa.string()),
            "account_id": dictionary(contacts.account, ids),
            "role": dictionary(contacts.role, ROLES),
            "seniority": pa.array(contacts.seniority.astype(str), pa.string()),
            "created_at": timestamps(contacts.created),
        }
    )
