"""Fault table (part of ``make bench``): what a user reads and what is left when a scheduled job
meets a fault, through the real CLI; written to ``benchmarks/faults.md`` and ``.json``.

On a generated world (2,000 accounts, seed 5) trained once into a store, each case runs the
installed ``propensity`` command in a fresh process and records the exit code, the seconds, the
first line on stderr and what was left on disk (checked, not assumed). The kill -9 cases need a
signal at a stage boundary and are asserted in ``make test`` (``tests/test_faults_store.py`` and
``tests/test_faults_input.py``); the table lists them with what those tests assert.

Usage: ``python benchmarks/faults.py [--out-dir benchmarks]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "propensity"
KILL_CASES = (
    (
        "kill -9 at each tracking stage (started, logged, registered)",
        "the run is marked KILLED by the next command that opens the store, its model versions "
        "deleted, the aliases left on the previous challenger; $TMPDIR empty; a rerun registers",
    ),
    (
        "kill -9 after the commit",
        "the run is FINISHED; the next command completes its registration",
    ),
    (
        "kill -9 while the run folder is written",
        "no run folder under the name, one staging folder that the rerun completes and removes",
    ),
    (
        "kill -9 during registration, then two trains on one store at once",
        "one KILLED and two FINISHED runs, one consistent challenger, no orphan versions",
    ),
    ("four exports to one path at once", "one complete list and its meta file, no temp files"),
)


def _run(*args: str, cwd: Path, limit_bytes: int | None = None) -> dict:
    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    started = time.perf_counter()
    child = subprocess.run(
        [str(BIN), *args], cwd=cwd, capture_output=True, text=True, preexec_fn=limit
    )
    lines = [line.strip() for line in child.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error", "warning"))]
    return {
        "exit": child.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "reads": (errors or lines or [""])[0][:300],
        "stderr_lines": len(lines),
        "traceback": "Traceback" in child.stderr,
    }


def _left(folder: Path, *names: str) -> str:
    """What of ``names`` exists in ``folder``, and any temporary file beside them."""
    present = [n for n in names if (folder / n).exists()]
    temporary = [p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.startswith(".")]
    parts = [f"{', '.join(present)} present" if present else "none of them written"]
    if temporary:
        parts.append(f"temporary files: {', '.join(temporary)}")
    return "; ".join(parts)


def fault_cases(work: Path) -> list[dict]:
    """Every case of the table, run in ``work``."""
    world, store = work / "world", work / "models" / "mlflow.db"
    uri = f"sqlite:///{store}"
    _run("generate", "--out", str(world), "--accounts", "2000", "--seed", "5", cwd=work)
    trained = _run(
        "train", "--data", str(world), "--out", str(work / "run"), "--tracking-uri", uri, cwd=work
    )
    if trained["exit"] != 0:
        raise RuntimeError(f"training the fault world failed: {trained['reads']}")
    cases = []

    def case(name: str, result: dict, left: str) -> None:
        result["reads"] = result["reads"].replace(str(work), "WORK")  # the temporary folder
        cases.append({"case": name, **result, "left": left})
        print(f"  {name}: exit {result['exit']}, {result['seconds']} s", flush=True)

    out = work / "out"
    out.mkdir()
    result = _run(
        "train",
        "--data",
        str(world),
        "--out",
        str(out / "dead"),
        "--tracking-uri",
        "http://127.0.0.1:9",
        cwd=work,
    )
    case("train, dead tracking server http://127.0.0.1:9", result, _left(out, "dead"))
    result = _run("runs", "--tracking-uri", "ftp://host/x", cwd=work)
    case("runs, unsupported scheme ftp://", result, "-")
    typo = work / "models" / "mlflw.db"
    result = _run(
        "export",
        "--data",
        str(world),
        "--out",
        str(out / "typo.csv"),
        "--tracking-uri",
        f"sqlite:///{typo}",
        cwd=work,
    )
    case(
        "export, mistyped SQLite path",
        result,
        f"store created: {typo.exists()}; " + _left(out, "typo.csv"),
    )
    for as_of in ("2035-01-01", "1990-01-01"):
        result = _run(
            "export",
            "--data",
            str(world),
            "--run",
            str(work / "run"),
            "--as-of",
            as_of,
            "--out",
            str(out / f"{as_of}.csv"),
            cwd=work,
        )
        case(f"export --as-of {as_of}", result, _left(out, f"{as_of}.csv"))
    before = sorted(p.name for p in (work / "run").iterdir())
    result = _run(
        "train", "--data", str(world), "--out", str(work / "run"), "--tracking-uri", uri, cwd=work
    )
    after = sorted(p.name for p in (work / "run").iterdir())
    case(
        "train --out onto an existing run folder",
        result,
        f"run folder unchanged: {before == after}",
    )
    partial = work / "partial"
    shutil.copytree(work / "run", partial)
    for name in ("evaluation.csv", "scoring_model.joblib"):
        (partial / name).unlink(missing_ok=True)
    result = _run("report", "--run", str(partial), "--out", str(out / "report.html"), cwd=work)
    case("report --run on a partial run folder", result, _left(out, "report.html"))
    export = ("export", "--data", str(world), "--run", str(work / "run"), "--out")
    first = _run(*export, str(out / "list.csv"), cwd=work)
    kept = (out / "list.csv").read_bytes() if first["exit"] == 0 else b""
    result = _run(*export, str(out / "list.csv"), cwd=work, limit_bytes=64 * 1024)
    intact = (out / "list.csv").read_bytes() == kept and bool(kept)
    case(
        "export on a full disk (file-size limit 64 KB)",
        result,
        f"previous list byte-identical: {intact}; " + _left(out, "list.csv"),
    )
    bad = work / "bad"
    shutil.copytree(world, bad)
    import pandas as pd

    accounts = pd.read_parquet(bad / "accounts.parquet")
    (bad / "accounts.parquet").unlink()
    accounts.loc[accounts.index[:3], "name"] = "Société Générale Müller"
    accounts.to_csv(bad / "accounts.csv", index=False, encoding="latin-1")
    case("validate, Latin-1 CSV", _run("validate", str(bad), cwd=work), "-")
    accounts.to_csv(bad / "accounts.csv", index=False, sep=";")
    case("validate, ';'-separated CSV", _run("validate", str(bad), cwd=work), "-")
    (bad / "accounts.csv").unlink()
    accounts.to_parquet(bad / "accounts.parquet")
    events = (bad / "events.parquet").read_bytes()
    (bad / "events.parquet").write_bytes(events[: len(events) // 2])
    case("validate, truncated Parquet", _run("validate", str(bad), cwd=work), "-")
    return cases


def faults_markdown(report: dict) -> str:
    lines = [
        "# Fault table: what a scheduled job's user reads, and what is left",
        "",
        f"Written by `make bench` (`benchmarks/faults.py`) on {report['date']}; machine: "
        f"{report['machine']}; {report['seconds']:.0f} s in all.",
        "Each case runs the installed `propensity` command in a fresh process on a generated "
        "world (2,000 accounts, seed 5) trained once into a SQLite store; *reads* is the first "
        "error or warning line on stderr (WORK: the temporary folder), *left* is checked on disk "
        "after the command.",
        "",
        "| case | exit | s | stderr lines | traceback | what the user reads | what was left |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for c in report["cases"]:
        reads = c["reads"].replace("|", "\\|")
        lines.append(
            f"| {c['case']} | {c['exit']} | {c['seconds']} | {c['stderr_lines']} "
            f"| {'yes' if c['traceback'] else 'no'} | {reads} | {c['left']} |"
        )
    lines += [
        "",
        "Kill -9 at a stage boundary (a signal at a marker, asserted in `make test`):",
        "",
        "| case | what is left, as asserted |",
        "|---|---|",
        *(f"| {name} | {left} |" for name, left in KILL_CASES),
        "",
    ]
    return "\n".join(lines)


def faults_benchmark(out_dir: Path) -> dict:
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="faults-"))
    try:
        cases = fault_cases(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "seconds": round(time.perf_counter() - started, 1),
        "cases": cases,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "faults.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "faults.md").write_text(faults_markdown(report))
    print(f"wrote {out_dir / 'faults.md'} ({report['seconds']} s)")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks"))
    faults_benchmark(parser.parse_args(argv).out_dir)


if __name__ == "__main__":
    main()
