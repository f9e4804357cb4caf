"""DuckDB against Spark in local mode: the feature build and scoring with reasons on one world.

* **Features**: the feature matrix and labels of the generated 20,000-account world (seed 3, as
  the scoring benchmark's) built by the code of ``propensity features``: DuckDB (both cores),
  then Spark ``local[1]`` and ``local[2]`` (:mod:`propensity.spark_features`).
* **Scoring with reasons**: the packaged defaults trained on that world (the scoring
  benchmark's model), its prospects tiled to 100,000 rows, scored with reasons by the one
  scorer: locally (both cores, as ``propensity score``) and on Spark ``local[1]`` and
  ``local[2]`` (:func:`propensity.spark.score_parts`, one LightGBM thread per task).

A Spark ``local[N]`` run is pinned to N cores (CPU affinity of the process, inherited by the JVM
and the Python workers): an executor with N cores. DuckDB runs on both cores.

Each measurement runs in a fresh process, ``REPEATS`` times, the engines interleaved (run 1 of
each, then run 2): this VM's speed drifts between processes. The session's start is timed
apart (a cluster pays it once per job; for scoring it includes starting the executors' Python
workers with a 100-row scoring). The table gives the median run and every run.

Writes ``benchmarks/spark.md`` / ``.json``. Usage: ``python benchmarks/bench.py --spark``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCORE_ROWS = 100_000
REPEATS = 3
ENGINES = (("duckdb", None), ("spark", "local[1]"), ("spark", "local[2]"))
PARTS = ("features", "scoring", "executors")
PART_NAMES = {"executors": "scoring, executors only"}


def features_run(workdir: Path, engine: str, master: str | None) -> dict:
    """The feature matrix and labels of the world, as ``propensity features`` builds them."""
    from model import packaged_model_config
    from scoring import STUDY_SEEDS, _world

    from propensity.data.contract import open_tables
    from propensity.duck import connect
    from propensity.features.matrix import build_features
    from propensity.spine import build_labels, build_spine

    folder = _world(workdir, STUDY_SEEDS[0])
    config = packaged_model_config()
    events = _events(folder)
    if engine == "duckdb":
        session_s = 0.0
        started = time.perf_counter()
        with connect() as con:
            tables = open_tables(folder, con)
            spine = build_spine(tables, config.spine)
            rows = len(build_features(tables, spine, config.features).matrix)
            build_labels(tables, spine, config.spine)
        seconds = time.perf_counter() - started
    else:
        from propensity.spark import spark_session
        from propensity.spark_features import feature_matrix_on_spark

        opened = time.perf_counter()
        with spark_session(master) as spark:
            spark.range(1).count()  # the JVM and a first job: the session's start
            session_s = time.perf_counter() - opened
            started = time.perf_counter()
            built = feature_matrix_on_spark(spark, folder, config.spine, config.features)
            seconds = time.perf_counter() - started
            rows = len(built.feature_set.matrix)
    return {
        "part": "features",
        "engine": engine if master is None else f"spark {master}",
        "rows": rows,
        "events": events,
        "seconds": round(seconds, 2),
        "session_s": round(session_s, 1),
    }


def score_run(workdir: Path, engine: str, master: str | None) -> dict:
    """The tiled prospects scored with reasons by the one scorer, locally or on Spark."""
    import pickle

    import pandas as pd
    from scoring import prepare_scale, tiled

    if not (workdir / "model.pkl").exists():
        prepare_scale(workdir)
    model = pickle.loads((workdir / "model.pkl").read_bytes())
    matrix, _ = tiled(workdir, SCORE_ROWS)
    if engine == "duckdb":
        session_s = 0.0
        started = time.perf_counter()
        scored = pd.concat(model.score_parts(matrix), ignore_index=True)
        seconds = time.perf_counter() - started
    else:
        from propensity.spark import score_parts, spark_session

        opened = time.perf_counter()
        with spark_session(master) as spark:
            # the session's start: the JVM, and the executors' Python workers (started and
            # their imports done by a first small scoring, as a cluster's are after its first)
            list(score_parts(spark, model, matrix.head(100)))
            session_s = time.perf_counter() - opened
            started = time.perf_counter()
            scored = pd.concat(score_parts(spark, model, matrix), ignore_index=True)
            seconds = time.perf_counter() - started
    assert len(scored) == SCORE_ROWS and scored["conversion_reasons"].notna().all()
    return {
        "part": "scoring",
        "engine": engine if master is None else f"spark {master}",
        "rows": SCORE_ROWS,
        "seconds": round(seconds, 2),
        "session_s": round(session_s, 1),
    }


def executors_run(workdir: Path, engine: str, master: str | None) -> dict:
    """Scoring with reasons on the executors alone: the matrix already in Spark (kept), the
    scored rows written nowhere (Spark's ``noop`` sink) instead of collected by the driver, as
    a cluster job that writes to object storage would: the per-core scaling a cluster
    multiplies, without the driver's work, which on this machine shares its two cores."""
    import pickle

    from scoring import tiled

    from propensity.spark import matrix_frame, scored_frame, spark_session

    model = pickle.loads((workdir / "model.pkl").read_bytes())
    matrix, _ = tiled(workdir, SCORE_ROWS)
    opened = time.perf_counter()
    with spark_session(master) as spark:
        frame = matrix_frame(spark, matrix).persist()
        frame.count()
        scored_frame(model, frame.limit(100)).write.format("noop").mode("overwrite").save()
        session_s = time.perf_counter() - opened
        started = time.perf_counter()
        scored_frame(model, frame).write.format("noop").mode("overwrite").save()
        seconds = time.perf_counter() - started
    return {
        "part": "scoring, executors only",
        "engine": f"spark {master}",
        "rows": SCORE_ROWS,
        "seconds": round(seconds, 2),
        "session_s": round(session_s, 1),
    }


def _cores_for(master: str | None) -> None:
    """Pin this process (and the JVM and Python workers it starts) to the first N cores of
    ``local[N]``: a local[1] session is then an executor with one core, JVM included, as on a
    cluster, not one task slot with the machine's second core free for the JVM's threads."""
    match = re.fullmatch(r"local\[(\d+)\]", master or "")
    if match and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[: int(match.group(1))]
        os.sched_setaffinity(0, cores)


def _events(folder: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(folder / "events.parquet").num_rows


# ---------------------------------------------------------------------------------------------
# the parent


def _child(workdir: Path, *arguments: str) -> dict:
    from scoring import _child as run_child  # one way to run a measurement in a fresh process

    return run_child(workdir, *arguments, script=Path(__file__).resolve())


def spark_benchmark(out_dir: Path, workdir: Path, parts: tuple[str, ...] = PARTS) -> dict:
    """Run ``parts`` (of ``PARTS``); the runs of a part not run are kept from the last
    report."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs: list[dict] = []
    previous = out_dir / "spark.json"
    names = {PART_NAMES.get(part, part) for part in parts}
    if previous.exists():
        runs = [r for r in json.loads(previous.read_text())["runs"] if r.get("part") not in names]
    for part in parts:
        for _ in range(REPEATS):
            for engine, master in ENGINES:
                if part == "executors" and engine == "duckdb":
                    continue
                result = _child(workdir, f"--{part}", f"{engine}:{master or ''}")
                print(json.dumps(result), flush=True)
                runs.append(result)
    report = {
        "written": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count() or 1} cores, "
        f"Python {platform.python_version()}",
        "versions": _versions(),
        "runs": runs,
        "summary": _summary(runs),
        "seconds": round(time.perf_counter() - started),
    }
    (out_dir / "spark.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "spark.md").write_text(spark_markdown(report))
    return report


def _versions() -> dict:
    import duckdb
    import pyspark

    from propensity.spark import java_home

    java = subprocess.run(
        [str(Path(java_home()) / "bin" / "java"), "-version"], capture_output=True, text=True
    )
    return {
        "pyspark": pyspark.__version__,
        "java": java.stderr.splitlines()[0] if java.stderr else "unknown",
        "duckdb": duckdb.__version__,
    }


def _summary(runs: list[dict]) -> list[dict]:
    """Per part and engine: the median run, every run's seconds, rows/s of the median."""
    rows = []
    for part in (PART_NAMES.get(p, p) for p in PARTS):
        for engine, master in ENGINES:
            name = engine if master is None else f"spark {master}"
            mine = [r for r in runs if r.get("part") == part and r.get("engine") == name]
            if not mine:
                continue
            median = sorted(mine, key=lambda r: r["seconds"])[len(mine) // 2]
            rows.append(
                {
                    "part": part,
                    "engine": name,
                    "rows": median["rows"],
                    "seconds": median["seconds"],
                    "runs": [r["seconds"] for r in mine],
                    "rows_s": round(median["rows"] / median["seconds"]),
                    "session_s": statistics.median(r["session_s"] for r in mine),
                    **({"events": median["events"]} if "events" in median else {}),
                }
            )
    for part in (PART_NAMES.get(p, p) for p in PARTS):
        by_engine = {r["engine"]: r for r in rows if r["part"] == part}
        if "spark local[1]" in by_engine and "spark local[2]" in by_engine:
            one, two = by_engine["spark local[1]"], by_engine["spark local[2]"]
            two["speed_up_over_local1"] = round(one["seconds"] / two["seconds"], 2)
    return rows


def spark_markdown(report: dict) -> str:
    versions = report["versions"]
    lines = [
        "# DuckDB and Spark (local mode) on one world",
        "",
        f"Written by `benchmarks/spark.py` (`python benchmarks/bench.py --spark`) on "
        f"{report['written']}; machine: {report['machine']}; PySpark {versions['pyspark']}, "
        f"{versions['java']}, DuckDB {versions['duckdb']}; {report['seconds']} s in all. Each "
        f"run in a fresh process, {REPEATS} runs per engine, the engines interleaved; the "
        "table gives the median run (seconds without the session's start, timed apart). A "
        "Spark `local[N]` run is pinned to N cores (the process's CPU affinity, inherited by "
        "the JVM and the Python workers): an executor with N cores, JVM included; DuckDB runs "
        "on both cores.",
        "",
        "*features*: the feature matrix and labels of the generated 20,000-account world "
        "(seed 3), as `propensity features` builds them. *scoring*: the packaged defaults' "
        f"prospects tiled to {SCORE_ROWS:,} rows, scored with reasons by the one scorer "
        "(locally on both cores; on Spark one LightGBM thread per task), as `propensity score` "
        "does: the matrix sent from the driver and the scored rows collected by it. *scoring, "
        "executors only*: the same scoring with the matrix already in Spark and the scored rows "
        "written nowhere (Spark's `noop` sink), as a cluster job writing to object storage "
        "would: the executors' per-core scaling, without the driver's work, which in local mode "
        "shares the machine's two cores with the executors.",
        "",
        "| part | engine | rows | seconds (median) | runs | rows/s | local[1] -> local[2] | "
        "session start s |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["summary"]:
        speed_up = f"{r['speed_up_over_local1']:.2f}x" if "speed_up_over_local1" in r else ""
        lines.append(
            f"| {r['part']} | {r['engine']} | {r['rows']:,} | {r['seconds']} | "
            f"{', '.join(map(str, r['runs']))} | {r['rows_s']:,} | {speed_up} | "
            f"{r['session_s']} |"
        )
    failed = [r for r in report["runs"] if "failed" in r]
    lines += [f"- failed: {r['arguments']}: {' / '.join(r['failed'])}" for r in failed]
    lines += [
        "",
        "On one machine Spark is slower than DuckDB, and that is expected: local mode pays for "
        "a JVM, a shuffle of every table through Spark's own memory, and Arrow copies between "
        "the JVM and Python, work DuckDB never does; and each task runs DuckDB on one thread "
        "while the local path gives DuckDB both cores. The Spark engine is there for what one "
        "machine cannot do: tables larger than one machine's disk, and reasons for millions of "
        "accounts in minutes. Its cost grows with the data and its speed with the executors: "
        "the local[1] -> local[2] column is the per-core scaling a cluster multiplies.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("data/bench/scoring"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--features")  # engine:master, in this process
    parser.add_argument("--scoring")  # engine:master, in this process
    parser.add_argument("--executors")  # engine:master, in this process
    parser.add_argument("--parts", default=",".join(PARTS))
    args = parser.parse_args(argv)
    chosen = [
        (run, value)
        for run, value in (
            (features_run, args.features),
            (score_run, args.scoring),
            (executors_run, args.executors),
        )
        if value
    ]
    if chosen:
        run, value = chosen[0]
        engine, master = value.split(":", 1)
        _cores_for(master or None)
        print(json.dumps(run(args.workdir, engine, master or None)))
    else:
        spark_benchmark(args.out, args.workdir, tuple(args.parts.split(",")))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
