"""The configurations of the two recipes, validated: everything a run depends on, saved with it.

* :class:`ModelConfig`: the account recipe (spine, features, split, both heads' LightGBM
  parameters, calibration, tuning, leakage screen); read from ``model.yaml`` (see
  :mod:`propensity.settings` for where that is looked up).
* :class:`TableConfig`: table mode (the table's schema from :class:`propensity.data.table.TableSchema`
  plus the protocol and model settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from propensity import settings
from propensity.data.table import TableSchema
from propensity.features.registry import FeatureConfig
from propensity.model.head import LightGBMParams
from propensity.model.learned_scorecard import PointsSettings
from propensity.model.screen import ScreenConfig
from propensity.model.splits import SplitConfig
from propensity.spine import SpineConfig

# shared by both recipes (the shipped-scorer rule of propensity.runs.selection)
MinCalibrationPositives = Annotated[
    int,
    Field(
        ge=2,
        description="a validation window with fewer positives cannot pick trees or calibrate: "
        "the model is cross-fitted on train + validation instead",
    ),
]
SelectionLevel = Annotated[
    float,
    Field(
        ge=0.5,
        lt=1,
        description="one-sided confidence that a challenger's ROC-AUC on the selection rows is "
        "higher before it replaces the incumbent (0.5: it is higher; 0.84: better by more than "
        "one bootstrap standard error)",
    ),
]

StackLogistic = Annotated[
    bool,
    Field(
        description="the learned candidate is the LightGBM model and the logistic baseline "
        "stacked (a logistic regression on their log-odds, fitted on the selection rows) "
        "instead of whichever of the two ranks better there; it still replaces an incumbent "
        "scorecard only with confidence"
    ),
]

SelectionMetric = Annotated[
    Literal["roc_auc", "pr_auc"],
    Field(
        description="what the shipped scorer is chosen on, on the selection rows: ROC-AUC, or "
        "PR-AUC (average precision) where only the top of the list is worked. Both are read "
        "from the order alone: log-loss would favour the LightGBM model, calibrated on those "
        "very rows"
    ),
]


class TuningConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    n_trials: int = Field(25, ge=1, le=10_000)
    n_splits: int = Field(3, ge=1, le=20)
    gap_days: int = Field(
        30, ge=0, le=730, description="gap between a fold's training and validation dates"
    )
    timeout_s: float | None = Field(None, gt=0)


class ModelConfig(BaseModel):
    """Everything a training run depends on; saved with every run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(7, ge=0)
    n_jobs: int = Field(2, ge=1, description="LightGBM threads (fixed, so reruns are identical)")
    spine: SpineConfig = Field(default_factory=SpineConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    # 7 leaves at 0.06: 15 leaves at 0.03 ranked no better, with 3.5-6x slower exact TreeSHAP
    conversion: LightGBMParams = Field(
        default_factory=lambda: LightGBMParams(learning_rate=0.06, num_leaves=7)
    )
    fit: LightGBMParams = Field(
        default_factory=lambda: LightGBMParams(
            learning_rate=0.05, num_leaves=7, min_child_samples=300, n_estimators=600
        )
    )
    calibration_methods: tuple[Literal["isotonic", "sigmoid"], ...] = ("isotonic", "sigmoid")
    min_positives: int = Field(50, ge=1, description="refuse to train a head with fewer positives")
    min_calibration_positives: MinCalibrationPositives = 50
    selection_level: SelectionLevel = 0.5
    selection_metric: SelectionMetric = "roc_auc"
    # the fit head is boosted from the scorecard and selected out of fold on static rows; on the
    # size benchmark stacking it lost up to 0.011 ROC-AUC on the test window (10,000 accounts,
    # seed 5), while the conversion stack was within 0.005 of the best on every world
    stack_logistic: dict[Literal["fit", "conversion"], StackLogistic] = Field(
        default_factory=lambda: {"fit": False, "conversion": True}
    )
    # the fit-label ablation (benchmarks/fit_labels.md): "opened or won" beat "won" on every
    # world (default world: ROC-AUC 0.822 vs 0.811, Spearman with the true fit 0.852 vs 0.835)
    fit_label: Literal["won", "opened_or_won"] = Field(
        "opened_or_won",
        description="what the fit head learns: a new-business win, or an opportunity opened "
        "or won (censored at the test window); it is judged on wins either way",
    )
    learned_scorecard: PointsSettings | None = Field(
        default_factory=PointsSettings,
        description="learn integer points per binned field for each head (`propensity scorecard "
        "export`); null: do not",
    )
    negative_sample_rate: float = Field(1.0, gt=0, le=1, description="keep this share of negatives")
    capacity_k: int = Field(500, ge=1, description="accounts sales can work per snapshot date")
    n_bootstrap: int = Field(200, ge=0, le=10_000)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    screen: ScreenConfig = Field(
        default_factory=lambda: ScreenConfig(name_check=False, max_rows=60_000),
        description="leakage screen of the feature matrix (training rows) before training",
    )
    keep_suspects: bool = Field(False, description="train on features the leakage screen flags")

    @classmethod
    def from_yaml(cls, path: Path | str | None = None) -> ModelConfig:
        """An explicit file, else the project's configs/model.yaml, else the packaged default."""
        text, _ = settings.config_text("model", path)
        return cls.model_validate(yaml.safe_load(text) or {})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class TableConfig(TableSchema):
    """What the table is (:class:`TableSchema`) and how to evaluate a model on it (saved with every run)."""

    keep_suspects: bool = Field(False, description="train on columns the leakage screen flags")
    valid_share: float = Field(0.2, gt=0, lt=0.5)
    test_share: float = Field(0.2, gt=0, lt=0.5)
    folds: int = Field(5, ge=2, le=20)
    repeats: int = Field(2, ge=1, le=20)
    origins: int = Field(
        3,
        ge=1,
        le=10,
        description="out of time: successive out-of-time folds (rolling origin), each cut half "
        "a test window earlier; the comparison table is the latest's, the spread is over all",
    )
    recalibrate: Literal["latest", "validation"] = Field(
        "latest",
        description="out of time: the shipped scorer's probabilities are refitted on the most "
        "recent labelled window (the test window, once it has been reported) or kept from the "
        "validation window",
    )
    min_positives: int = Field(30, ge=1, description="refuse to train with fewer positives")
    min_calibration_positives: MinCalibrationPositives = 50
    selection_level: SelectionLevel = 0.5
    selection_metric: SelectionMetric = "roc_auc"
    stack_logistic: StackLogistic = True
    capacity_k: int = Field(100, ge=1, description="rows sales can work (precision/recall@k)")
    seed: int = Field(7, ge=0)
    n_jobs: int = Field(
        1,
        ge=1,
        description="LightGBM threads: 1 for export-sized tables (more threads gain nothing there "
        "and OpenMP spinning makes them far slower when the machine is busy)",
    )
    n_bootstrap: int = Field(
        200, ge=20, le=10_000, description="bootstrap draws (the verdict rests on the intervals)"
    )
    lightgbm: LightGBMParams = Field(
        default_factory=lambda: LightGBMParams(
            learning_rate=0.03, num_leaves=15, min_child_samples=20, n_estimators=2000
        )
    )
    calibration_methods: tuple[Literal["isotonic", "sigmoid"], ...] = ("isotonic", "sigmoid")
    screen: ScreenConfig = Field(default_factory=ScreenConfig)
    model_name: str | None = Field(
        None, description="registered model name (default propensity-table-<table name>)"
    )

    @model_validator(mode="after")
    def _shares_leave_training_rows(self) -> TableConfig:
        if self.valid_share + self.test_share >= 0.8:
            raise ValueError("valid_share + test_share must leave at least 20 % for training")
        return self

    @classmethod
    def from_yaml(cls, path: Path | str, **overrides) -> TableConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate({**data, **overrides})

    @classmethod
    def layered(cls, path: Path | str | None, *layers: dict) -> TableConfig:
        """A YAML file (optional), then each layer on top: keys whose value is None are left
        alone, ``exclude`` lists are added to, every other key replaces the value below."""
        data = (yaml.safe_load(Path(path).read_text()) or {}) if path else {}
        for layer in layers:
            for key, value in layer.items():
                if value is None:
                    continue
                if key == "exclude":
                    data["exclude"] = [*(data.get("exclude") or []), *value]
                else:
                    data[key] = value
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
