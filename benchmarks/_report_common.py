"""Shared pieces of the BENCHMARKS.md renderer (`benchmarks/report.py`): the
targets of issue 8, reading a results file (or its smoke stand-in), number
formats, Markdown tables and each section's provenance line."""
from __future__ import annotations

import json

from benchmarks._common import RESULTS_DIR

TARGETS = {
    "overhead": 0.15,  # pipeline time above the TV-L1 it must spend, as a fraction of it
    "rerun": 0.05,  # cached rerun as a fraction of the first run
    "scaling": 1.7,  # 2 workers vs 1 on 2 cores, quiet machine
    "data_wait": 0.05,  # trainer's data-wait fraction per step
}


def load(name: str) -> tuple[dict | None, bool]:
    for file, smoke in ((RESULTS_DIR / f"{name}.json", False), (RESULTS_DIR / f"smoke_{name}.json", True)):
        if file.is_file():
            return json.loads(file.read_text()), smoke
    return None, False


def training_path_label(run: dict) -> str:
    """A LOSO run's training path: none, processes, or vmap:N (N folds' models at a time, 0 = all)."""
    members = run.get("parallel_members")
    return f"vmap:{members}" if run["path"] == "vmap" and members is not None else run["path"]


def speedup(x: float) -> str:
    """A speed-up with 2 decimals, or 3 where 2 would round it across the scaling target."""
    crosses = (x < TARGETS["scaling"]) != (round(x, 2) < TARGETS["scaling"])
    return f"{x:.3f}x" if crosses else f"{x:.2f}x"


def f(x, fmt="{:.2f}") -> str:
    if x is None or x == "":
        return "-"
    if isinstance(x, float):
        return fmt.format(x)
    return str(x)


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def md_table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def provenance(doc: dict, smoke: bool) -> list[str]:
    la = doc.get("load_average") or {}
    lines = [f"Command: `{doc['command']}` ({doc['date_utc']}, commit {doc.get('git_commit', '?')}). "
             f"Load average (1 min) before {la.get('before_1_5_15', ['?'])[0]}, during mean "
             f"{la.get('during_1min_mean', '?')} / max {la.get('during_1min_max', '?')}, after "
             f"{(la.get('after_1_5_15') or ['?'])[0]}."]
    if smoke:
        lines.append("**Smoke run on reduced inputs while the machine was busy: indicative only; the full run has "
                     "not been recorded yet.**")
    if (la.get("during_1min_mean") or 0) > 2.5:
        lines.append(f"The machine was loaded during this run (2 cores, mean 1-min load {la.get('during_1min_mean')}): "
                     "absolute times are inflated; ratios measured within the run are the more reliable figures.")
    return lines


def ms(x) -> str:
    return "-" if x is None else f"{1e3 * x:.1f}"


def two_core_ceilings(doc: dict) -> dict[tuple[str, str], list[float]]:
    """The 2-vs-1 ceilings in a parallel_ceiling results file by (job kind, dataset); rows of files
    written before pipeline jobs existed are TV-L1 jobs."""
    by_job: dict[tuple[str, str], list[float]] = {}
    for row in doc["figures"]["rows"]:
        by_job.setdefault((row.get("kind", "tvl1"), row["dataset"]), []).append(row["ceiling"])
    return by_job


def two_core_ceiling(dataset: str) -> float | None:
    """The median 2-vs-1 ceiling of ``dataset``'s work (benchmarks/parallel_ceiling.py), if recorded: of its
    whole per-sample work where measured, else of TV-L1 at its settings."""
    doc, _ = load("parallel_ceiling")
    by_job = two_core_ceilings(doc) if doc else {}
    values = sorted(by_job.get(("pipeline", dataset)) or by_job.get(("tvl1", dataset)) or [])
    return values[len(values) // 2] if values else None


def scaling_bound(res: dict, ceiling: float | None = None) -> tuple[float, float] | None:
    """(fixed seconds, best possible 2-vs-1 speed-up of the whole command) of a dataset's first runs: the
    1-worker run's time against the 2-worker run's fixed start and stop (its timeline, the task runs on the
    Prefect server: before its first task and after its last) plus the 1-worker run's work span sped up by
    ``ceiling`` (the machine's measured one, ``two_core_ceiling``; 2 when not given). None without both
    timelines."""
    one, two = (res["runs"].get(k, {}).get("first", {}) for k in ("workers_1", "workers_2"))
    t1, t2 = one.get("timeline"), two.get("timeline")
    if not t1 or not t2:
        return None
    fixed = t2["before_work_s"] + t2["after_work_s"]
    return fixed, one["wall_s"] / (fixed + t1["work_span_s"] / (ceiling or 2.0))
