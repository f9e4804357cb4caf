"""The library calls behind the commands that follow a shipped model: ``monitor`` (the score
history against what happened since), ``explorer`` (the account explorer page for sales) and
``experiment design`` / ``readout`` (test and control on a target list). Like
:mod:`propensity.runs.workflows`, each reads its inputs, calls the pure stages and writes its
outputs, returning what it did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from propensity.data.contract import Tables, load_tables
from propensity.io import neutralise_formulas, write_frame
from propensity.scoring import AccountModel
from propensity.spine import build_labels, check_as_of, data_end


@dataclass
class MonitorReport:
    result: object  # propensity.monitor.Monitoring
    page: Path | None
    written: list[Path]


def monitor_scores(
    data_dir: Path | str,
    *,
    history: Path | str | None = None,
    out: Path | str | None = None,
    config_path: Path | str | None = None,
    tables: Tables | None = None,
) -> MonitorReport:
    """Read the score history, join the outcomes that have arrived in ``data_dir`` since, and
    write the monitoring page (``out``) with its PNGs; see :mod:`propensity.monitor`. Nothing is
    written when the history cannot be read."""
    from propensity.history import history_path, read_history
    from propensity.monitor import MonitorConfig, monitor
    from propensity.outputs.monitor_page import write_monitor_page

    config = MonitorConfig.from_yaml(config_path)
    scores = read_history(history_path(history))
    tables = tables if tables is not None else load_tables(data_dir)
    result = monitor(scores, tables, config)
    written = write_monitor_page(result, out) if out is not None else []
    return MonitorReport(result, Path(out) if out is not None else None, written)


def write_account_explorer(
    data_dir: Path | str,
    out: Path | str,
    model: AccountModel,
    *,
    as_of=None,
    history: Path | str | None = None,
    tables: Tables | None = None,
) -> Path:
    """The account explorer (:mod:`propensity.outputs.explorer`) of the prospects at ``as_of``
    (refused outside the data's span), with score trends from the score history when there is
    one."""
    from propensity.history import history_path, read_history
    from propensity.outputs.explorer import explorer_data, write_explorer

    tables = tables if tables is not None else load_tables(data_dir)
    if as_of is not None:
        as_of = check_as_of(tables, as_of, model.spine.horizon_days)
    path = history_path(history)
    scores = read_history(path) if path.is_file() else None
    return write_explorer(explorer_data(tables, model, as_of, scores), out)


@dataclass
class CampaignDesign:
    design: dict
    assignment: pd.DataFrame
    strata: pd.DataFrame
    written: list[Path]


LIST_COLUMNS = (
    "account_id", "priority", "fit_tier", "conversion_tier", "conversion_probability",
    "model_version", "as_of",
)  # fmt: skip


def _single(listing: pd.DataFrame, column: str, path: Path) -> str:
    values = listing[column].dropna().astype(str).unique()
    if len(values) != 1:
        raise ValueError(
            f"{path}: column {column!r} must hold one value (one scoring), found {list(values[:3])}"
        )
    return values[0]


def design_campaign(
    list_path: Path | str,
    out: Path | str,
    plan,
    *,
    history: Path | str | None = None,
) -> CampaignDesign:
    """Design a test/control campaign on an exported target list
    (:func:`propensity.experiment.design_experiment`): the design as JSON at ``out`` and the
    assignment (the list's picked accounts with ``stratum``, ``picked_by``, ``arm``) as CSV next
    to it (``<out stem>.assignment.csv``), written together. The scorecard's points come from
    the score history's record of the same scoring."""
    from propensity.experiment import design_experiment
    from propensity.history import history_path, read_history
    from propensity.io import atomic_paths, read_frame

    list_path, out = Path(list_path), Path(out)
    listing = read_frame(list_path, dtype={"account_id": str})
    missing = [c for c in LIST_COLUMNS if c not in listing.columns]
    if missing:
        raise ValueError(f"{list_path} is not a target list from `propensity export`: no {missing}")
    as_of, version = (
        _single(listing, "as_of", list_path),
        _single(listing, "model_version", list_path),
    )
    points, horizon_days = None, 90
    if plan.compare_scorecard:
        stored = read_history(history_path(history))
        batch_id = f"{as_of}|{version}"
        batch = stored.batches[stored.batches["batch_id"] == batch_id]
        if batch.empty:
            raise LookupError(
                f"the score history {history_path(history)} has no scoring on {as_of} by "
                f"{version}: export the list with the history on, or pass --no-scorecard"
            )
        horizon_days = int(batch["horizon_days"].iloc[0])
        scores = stored.scores[stored.scores["batch_id"] == batch_id]
        points = scores.set_index("account_id")["scorecard_points"]
    assignment, strata = design_experiment(listing, points, plan)
    # the list's own columns next to the arm, so the file loads into the CRM as it is
    extra = [c for c in listing.columns if c not in assignment.columns and c != "change"]
    rows = listing[listing["change"] != "dropped"] if "change" in listing else listing
    rows = rows.drop_duplicates("account_id")
    assignment = assignment.merge(rows[["account_id", *extra]], on="account_id", how="left")
    assignment_path = out.with_name(f"{out.stem}.assignment.csv")
    design = {
        "list": str(list_path),
        "as_of": as_of,
        "model_version": version,
        "horizon_days": horizon_days,
        "plan": plan.model_dump(mode="json"),
        "assignment": assignment_path.name,
        "strata": json.loads(strata.to_json(orient="records")),
    }
    with atomic_paths(out, assignment_path) as (design_tmp, assignment_tmp):
        design_tmp.write_text(json.dumps(design, indent=2) + "\n", encoding="utf-8")
        neutralise_formulas(assignment).to_csv(assignment_tmp, index=False)
    return CampaignDesign(design, assignment, strata, [out, assignment_path])


@dataclass
class CampaignReadout:
    design: dict
    readout: pd.DataFrame
    written: list[Path]


def read_out_campaign(
    design_path: Path | str,
    *,
    data_dir: Path | str | None = None,
    outcomes: Path | str | None = None,
    start=None,
    out: Path | str | None = None,
    tables: Tables | None = None,
) -> CampaignReadout:
    """The readout of a designed campaign (:func:`propensity.experiment.read_out`). What
    happened comes from ``outcomes`` (a CSV or Parquet with account_id and converted), else from
    the data: a new-business opportunity created within the design's horizon after ``start``
    (default: the list's as_of), refused until that horizon has passed."""
    from propensity.experiment import read_out
    from propensity.io import read_frame
    from propensity.spine import SpineConfig

    design_path = Path(design_path)
    try:
        design = json.loads(design_path.read_text(encoding="utf-8"))
        assignment_path = design_path.with_name(design["assignment"])
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{design_path} is not a campaign design ({exc})") from None
    assignment = read_frame(assignment_path, dtype={"account_id": str})
    if outcomes is not None:
        frame = read_frame(outcomes, dtype={"account_id": str})
        if not {"account_id", "converted"} <= set(frame.columns):
            raise ValueError(f"{outcomes} needs columns account_id and converted")
        truthy = frame["converted"].astype(str).str.lower().isin(("true", "1", "yes", "won"))
        converted = pd.Series(truthy.to_numpy(), index=frame["account_id"])
    else:
        tables = tables if tables is not None else load_tables(data_dir)
        begin = pd.Timestamp(start or design["as_of"]).normalize()
        spine = pd.DataFrame({"account_id": assignment["account_id"], "as_of": begin})
        labels = build_labels(tables, spine, SpineConfig(horizon_days=design["horizon_days"]))
        if not labels["label_complete"].all():
            end = begin + pd.Timedelta(days=design["horizon_days"])
            raise ValueError(
                f"the campaign's {design['horizon_days']}-day horizon after {begin.date()} ends "
                f"{end.date()}, after the data ({data_end(tables).date()}): read out later"
            )
        converted = pd.Series(
            labels["conversion_label"].astype(bool).to_numpy(), index=labels["account_id"]
        )
    readout = read_out(assignment, converted, alpha=design["plan"]["alpha"])
    written = []
    if out is not None:
        written.append(write_frame(readout, out))
    return CampaignReadout(design, readout, written)
