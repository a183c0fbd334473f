"""BENCHMARKS.md sections 1-5 (ingest): cost per stage, selection first vs
every frame, stag vs the naive loop, the cached rerun and 1 vs 2 workers;
rendered by `benchmarks/report.py`."""
from __future__ import annotations

from benchmarks._report_common import (
    TARGETS,
    f,
    load,
    md_table,
    pct,
    scaling_bound,
    speedup,
    two_core_ceiling,
    two_core_ceilings,
)


def _scaling_verdict(command: float, flow: float) -> str:
    """meets / misses for the whole command and inside the flow."""
    return " / ".join(("meets" if x >= TARGETS["scaling"] else "misses") for x in (command, flow)) + " (command / flow)"


def section_stages(doc: dict) -> list[str]:
    fig = doc["figures"]
    stages = ["decode", "face", "align", "motion", "tvl1", "strain", "rois", "aus", "graph", "write"]
    rows = [[r["set"], r["clip"], r["T"], r["K"], r["crop"], *[f(r[s]) for s in stages], f(r["total"]),
             pct(r["tvl1_share"])] for r in fig["rows"]]
    out = md_table(["set", "clip", "T", "K", "crop", *stages, "total s", "TV-L1 share"], rows)
    out.append("")
    for name, s in fig.get("summary", {}).items():
        shares = ", ".join(f"{k} {pct(v)}" for k, v in s["share_by_stage"].items() if v >= 0.005)
        out.append(f"- **{name}**: {f(s['seconds_per_clip'])} s per clip; {shares}; TV-L1 "
                   f"{f(s['tvl1_seconds_per_pair'], '{:.3f}')} s per pair.")
    parts = [[r["clip"], *[f(r["align_parts"].get(k), "{:.3f}") for k in ("onset_detect", "per_frame_detect", "warp",
                                                                          "head_motion")]] for r in fig["rows"]]
    out += ["", "The align stage re-run in pieces (seconds; a second measurement, not part of the totals): face "
            "detection on the onset, windowed re-detection on every other frame, the warp to the crop, head motion.", ""]
    out += md_table(["clip", "onset detect", "per-frame detect", "warp", "head motion"], parts)
    out += ["", f"Peak RSS of this serial in-process ingest: {f(fig.get('peak_rss_mb_process'), '{:.0f}')} MB "
            f"(landmark model loaded once: {f(fig.get('backend_load_s'))} s)."]
    return out


def section_selection(doc: dict) -> list[str]:
    fig = doc["figures"]
    rows = [[r["set"], r["clip"], r["T"], f"{r['pairs_stag']} / {r['pairs_all']}", f(r["stag_s"]), f(r["stag_tvl1_s"]),
             pct(r["overhead"]), f(r["all_tvl1_s"]), f(r["all_over_stag"], "{:.1f}x"), f(r["overlap_exact"]),
             f(r["overlap_pm1"]), f"{r['apex_stag']} / {r['apex_tvl1']}", f(r["spearman_curves"]),
             f(r["tvl1_motion_captured"])] for r in fig["rows"]]
    out = md_table(["set", "clip", "T", "TV-L1 pairs stag / every frame", "stag s", "of which TV-L1 s",
                    "overhead above TV-L1", "every-frame TV-L1 s", "every frame / stag", "overlap exact",
                    "overlap +-1", "apex cheap / TV-L1", "Spearman curves", "TV-L1 motion captured"], rows)
    out.append("")
    for name, s in fig.get("summary", {}).items():
        verdict = "meets" if s["overhead_pooled"] <= TARGETS["overhead"] else "misses"
        out.append(f"- **{name}**: {s['pairs_stag']} TV-L1 pairs instead of {s['pairs_all']}; TV-L1 on every frame "
                   f"alone takes {f(s['all_over_stag'], '{:.1f}')}x stag's whole per-clip time; stag's overhead above "
                   f"the TV-L1 it must run is {pct(s['overhead_pooled'])} (target <= 15%: {verdict}); selected "
                   f"sets agree {f(s['overlap_exact_mean'])} exactly and {f(s['overlap_pm1_mean'])} within one frame; "
                   f"stag's frames carry {f(s['tvl1_motion_captured_mean'])} of the TV-L1 motion of the every-frame "
                   "choice.")
    return out


def _fixed_cost_note(demo: dict | None) -> str:
    """The fixed seconds of the demo's 2-worker run (its timeline) and the speed-up they leave room for."""
    ceiling = two_core_ceiling("demo")
    bound = demo and scaling_bound(demo, ceiling)
    if not bound:
        return ""
    sped_up = f"sped up as far as the two cores allow it ({ceiling:.2f}x, below)" if ceiling else "halved"
    return (f": {bound[0]:.1f} s in all (before the first task and after the last, 2 workers), which would hold "
            f"2 workers to {bound[1]:.2f}x even with the work itself {sped_up}")


def _pairs_note(res: dict) -> str:
    """The speed-up of each 1-then-2-worker pair, when there were several (the figure is their median)."""
    pairs = res.get("scaling_pairs", [])
    if len(pairs) < 2:
        return ""
    each = ", ".join(f"{p['speedup_wall']:.2f}x / {p['speedup_flow']:.2f}x ({f(p['workers_1_wall_s'], '{:.1f}')} s -> "
                     f"{f(p['workers_2_wall_s'], '{:.1f}')} s)" for p in pairs)
    return f"; median of {len(pairs)} pairs of runs, 1 worker then 2, command / flow: {each}"


def section_runs(doc: dict) -> dict[str, list[str]]:
    fig = doc["figures"]["datasets"]
    naive, cache, scaling, memory = [], [], [], []
    for dataset, res in fig.items():
        runs = res["runs"]
        if "naive" in res:
            nv = res["naive"]
            row = [dataset, res["clips"], nv["pairs"], f(nv["wall_s"])]
            for label in ("workers_1", "workers_2", "threads"):
                run = runs.get(label)
                row += [f(run["first"]["wall_s"]), f(run.get("ratio_to_naive_wall"))] if run else ["-", "-"]
            naive.append(row)
        for label, run in runs.items():
            fast = run["rerun"].get("fast_path")
            cache.append([dataset, label, f(run["first"]["wall_s"]), f(run["rerun"]["wall_s"]),
                          pct(run["rerun_fraction_wall"]), f(run["first"].get("flow_s")), f(run["rerun"].get("flow_s")),
                          pct(run["rerun_fraction_flow"]), f"{run['rerun'].get('skipped')} of {res['clips']}",
                          "-" if fast is None else ("yes" if fast else "no")])
            memory.append([dataset, label, f(run["first"]["peak_tree_rss_mb"], "{:.0f}"),
                           f(run["first"]["peak_single_rss_mb"], "{:.0f}")])
        if "naive" in res:
            memory.append([dataset, "naive", f(res["naive"]["peak_tree_rss_mb"], "{:.0f}"), "-"])
        if "speedup_2_vs_1_wall" in res:
            w1, w2 = runs["workers_1"]["first"], runs["workers_2"]["first"]
            scaling.append([dataset, res["clips"], f(w1["wall_s"]), f(w2["wall_s"]), f(res["speedup_2_vs_1_wall"], "{:.2f}x"),
                            f(w1.get("flow_s")), f(w2.get("flow_s")), f(res["speedup_2_vs_1_flow"], "{:.2f}x")])
    out = {}
    notes_cache, notes_scaling = [""], [""]
    for dataset, res in fig.items():
        for label, run in res["runs"].items():
            fw, ff = run["rerun_fraction_wall"], run["rerun_fraction_flow"]
            notes_cache.append(f"- {dataset}, {label}: the rerun costs {pct(fw)} of the first run as a whole command "
                               f"(target <= 5%: {'meets' if fw <= TARGETS['rerun'] else 'misses'}) and {pct(ff)} "
                               f"inside the flow ({'meets' if ff <= TARGETS['rerun'] else 'misses'}).")
        if "speedup_2_vs_1_wall" in res:
            sw, sf = res["speedup_2_vs_1_wall"], res["speedup_2_vs_1_flow"]
            notes_scaling.append(f"- {dataset}: 2 workers are {speedup(sw)} faster than 1 for the whole command, {speedup(sf)} "
                                 f"inside the flow (target >= {TARGETS['scaling']}x on a quiet machine: "
                                 f"{_scaling_verdict(sw, sf)})" + _pairs_note(res) + ".")
    for rep in doc.get("scaling_repeats", []):
        notes_scaling.append(f"- {rep['dataset']}, a repeat with the same code (`{rep['command']}`, {rep['date_utc']}, "
                             f"mean 1-min load {rep['load_average'].get('during_1min_mean')}): "
                             f"{rep['speedup_2_vs_1_wall']:.2f}x for the whole command, {rep['speedup_2_vs_1_flow']:.2f}x "
                             f"inside the flow ({_scaling_verdict(rep['speedup_2_vs_1_wall'], rep['speedup_2_vs_1_flow'])}).")
    stages, _ = load("ingest_stages")
    if stages and "real" in fig:
        real = [r["total"] for r in stages["figures"]["rows"] if r["set"] == "real"]
        if real and len(real) == fig["real"]["clips"]:
            bound = min(2.0, sum(real) / max(real))
            notes_scaling.append(f"- The real set is four clips of unequal cost: in section 1 they take {sum(real):.1f} s in "
                                 f"all, the longest {max(real):.1f} s, so with one task per clip 2 workers could be at "
                                 f"most {bound:.2f}x faster; with 2 workers such clips are now split into a prepare task, "
                                 "tasks of a few TV-L1 pairs and a finish task (`PipelineConfig.execution`), which lifts "
                                 "that bound. The demo clips are each a small share of the work and stay whole; there "
                                 "the fixed costs of a run (Python and Prefect start, flow-run set-up and planning before "
                                 "the first task; the summary, flow-run completion, Prefect's heartbeat thread, which "
                                 "stops on a 1 s tick, and the cluster's tear-down after the last) weigh against a job of "
                                 f"{fig.get('demo', {}).get('runs', {}).get('workers_1', {}).get('first', {}).get('flow_s', float('nan')):.0f}"
                                 " s inside the flow" + _fixed_cost_note(fig.get("demo")) + ".")
    notes_cache += _startup_notes(doc["figures"])
    notes_naive = [""]
    for dataset, res in fig.items():
        nv = res.get("naive")
        if nv:
            w1 = res["runs"].get("workers_1", {}).get("first", {})
            notes_naive.append(
                f"- {dataset}: the naive loop computes {nv['pairs']} TV-L1 pairs (onset to every frame) in "
                f"{nv['tvl1']:.1f} s of its {nv['wall_s']:.1f} s, with OpenCV's default {nv['opencv_threads']} threads, "
                f"crop {nv['crop_size']} px, and writes {nv['bytes'] / 2**20:.1f} MiB of .npy; stag computes K frames per "
                f"clip (its summed TV-L1 stage: {w1.get('stage_s_summed', {}).get('tvl1', float('nan')):.1f} s).")
    notes_naive.append("- Ratio = stag's whole command / the naive script's whole run (both include Python start-up; "
                       "stag's also includes Prefect and the Dask cluster).")
    out["naive"] = md_table(["dataset", "clips", "naive TV-L1 pairs", "naive s", "stag 1 worker s", "ratio",
                             "stag 2 workers s", "ratio", "stag threads s", "ratio"], naive) + notes_naive
    out["cache"] = md_table(["dataset", "runner", "first s", "rerun s", "rerun / first", "first flow s",
                             "rerun flow s", "flow rerun / first", "skipped", "fast path"], cache) + notes_cache
    bigger, _ = load("ingest_scaling_demo100")
    if bigger:
        for dataset, res in bigger["figures"]["datasets"].items():
            if "speedup_2_vs_1_wall" in res:
                w1, w2 = res["runs"]["workers_1"]["first"], res["runs"]["workers_2"]["first"]
                scaling.append([f"{dataset} (larger set)", res["clips"], f(w1["wall_s"]), f(w2["wall_s"]),
                                f(res["speedup_2_vs_1_wall"], "{:.2f}x"), f(w1.get("flow_s")), f(w2.get("flow_s")),
                                f(res["speedup_2_vs_1_flow"], "{:.2f}x")])
                sw, sf = res["speedup_2_vs_1_wall"], res["speedup_2_vs_1_flow"]
                la = bigger.get("load_average") or {}
                notes_scaling.append(f"- {dataset} with {res['clips']} clips (`{bigger['command']}`, {bigger['date_utc']}, "
                                     f"mean 1-min load {la.get('during_1min_mean')}): {sw:.2f}x for the whole command, "
                                     f"{sf:.2f}x inside the flow (target: {_scaling_verdict(sw, sf)})"
                                     + _pairs_note(res) + ".")
    for name, d in (("ingest_runs", doc), ("ingest_scaling_demo100", bigger)):
        if not d:
            continue
        for dataset, res in d["figures"]["datasets"].items():
            runs = res["runs"]
            if "workers_1" not in runs or "workers_2" not in runs:
                continue
            notes_scaling += _timeline_notes(dataset, res) + _cpu_notes(dataset, res)
    notes_scaling += _ceiling_notes() + _task_overhead_notes()
    notes_scaling.append("- How the runs are scheduled: clips that are a large share of one worker's work are split "
                         "(`stag_features.ingest.plan.split_costliest`) and submitted first; the other samples go to the "
                         "workers in batches, longest clips first, "
                         "large batches first and single clips last (`stag_features.ingest.plan.guided_batches`), so "
                         "that a run has few Prefect tasks (each costs ~0.1 s of CPU in the command process, a worker "
                         "and the server) and the workers finish together; each worker opens one Prefect client as it starts "
                         "and all its task runs take it (`flows.worker_preload`); `stag-ingest --workers N` starts its Dask "
                         "cluster in the background before it imports Prefect, and forks its workers from one server "
                         "process that imported the pipeline and loaded the landmark model once (`flows/cluster.py`, "
                         "`flows/worker_image.py`; before, each worker spawned a fresh interpreter and paid ~2.5 s of "
                         "CPU for that itself: demo 2-worker CPU 25.3 s, now about 20 s); the workers run without "
                         "Dask's statistical profiler (`flows.cluster.LOCAL_CLUSTER_CONFIG`: it sampled each task's "
                         "stack every 10 ms, ~1.4% of a worker's CPU, for a dashboard that is not installed); OpenCV "
                         "runs one thread per process (`tvl1.opencv_threads`). CPU of the fork server and of the workers forked from it "
                         "(which no process of the tree reaps) is the sum of each process's last 0.2 s sample.")
    out["scaling"] = md_table(["dataset", "clips", "1 worker s", "2 workers s", "speed-up", "1 worker flow s",
                               "2 workers flow s", "flow speed-up"], scaling) + [
        "", "Times are those of the main runs; a speed-up is the median over the pairs of runs listed below when "
        "there were several."] + notes_scaling
    out["memory"] = md_table(["dataset", "run", "peak RSS of the process tree MB", "largest single process MB"],
                             memory) + ["", "- The tree's RSS is summed over its processes: pages the Dask workers share "
                                        "with the fork server they came from (the pipeline's code and the landmark "
                                        "model) count once per process, so it overstates what the run holds."]
    return out


def _startup_notes(fig: dict) -> list[str]:
    """What a rerun cannot go below: Python, the fast path's imports, and what the flow would import."""
    st = fig.get("startup")
    if not st:
        return []
    return [f"- Reruns with nothing to compute take stag-ingest's fast path: it plans read-only (catalog, sheet, store "
            "slots, input hashes) and prints the summary without importing Prefect or starting a flow run, a Dask "
            f"cluster or a server. Fixed costs measured in this run: Python alone {st['python_s']:.2f} s; Python with "
            f"the fast path's imports {st['fast_path_imports_s']:.2f} s; with Prefect and the flow as well "
            f"{st['flow_imports_s']:.2f} s (the floor of every rerun before the fast path). For the fast path the "
            "'rerun flow s' column is the planning time its summary reports (0.1 s resolution)."]


def _ceiling_notes() -> list[str]:
    """What the machine's two cores give perfectly parallel work (benchmarks/parallel_ceiling.py)."""
    doc, smoke = load("parallel_ceiling")
    if not doc:
        return ["- The machine's own ceiling for 2 vs 1 (`python benchmarks/parallel_ceiling.py`) is not recorded yet."]
    by_job = two_core_ceilings(doc)
    la = doc.get("load_average") or {}
    spread = lambda v: f"{min(v):.2f}-{max(v):.2f}x over {len(v)} repeats"  # noqa: E731
    each = "; ".join(f"{name} settings {spread(v)}" for (kind, name), v in by_job.items() if kind == "tvl1")
    whole = [f"{name}'s whole per-sample work (what a Dask worker does for a sample, stages and write, without "
             f"Prefect or Dask) {spread(v)}" for (kind, name), v in by_job.items() if kind == "pipeline"]
    return [f"- What the two cores give work with no fixed cost and nothing shared (`{doc['command']}`, "
            f"{doc['date_utc']}, mean 1-min load {la.get('during_1min_mean')}{', smoke run' if smoke else ''}): two "
            f"jobs at once against one alone: TV-L1, {each}" + "".join(f"; the {w}" for w in whole) + ". The gap "
            "between that and the speed-ups above is stag's own: the fixed start and stop of a run, and the CPU of "
            "the command process (Prefect's engine, the Dask scheduler), of the Prefect server and of each "
            "worker's Dask and Prefect machinery (its event loop, the task engine), which with 2 workers share the cores "
            "with the work."]


def _task_overhead_notes() -> list[str]:
    """What one Prefect task run costs beyond its own work (benchmarks/task_overhead.py)."""
    doc, smoke = load("task_overhead")
    if not doc:
        return ["- What one task run costs (`python benchmarks/task_overhead.py`) is not recorded yet."]
    fig, la = doc["figures"], doc.get("load_average") or {}
    rows = {row["setting"]: row for row in fig["median"]}

    def cost(row: dict) -> str:
        return (f"{row['wall_ms_per_task']:.0f} ms of wall time each, and CPU: command process "
                f"{row['flow_process_cpu_ms_per_task']:.0f} ms, worker {row['worker_cpu_ms_per_task']:.0f} ms, "
                f"Prefect server {row['server_cpu_ms_per_task']:.0f} ms")

    return [f"- What one task run costs beyond its own work (`{doc['command']}`, {doc['date_utc']}, mean 1-min load "
            f"{la.get('during_1min_mean')}{', smoke run' if smoke else ''}; median of {fig['repeats']} runs of "
            f"{fig['tasks']} tasks that do nothing, shaped like ingest-batch, on a 1-worker local cluster): with the "
            f"worker's one shared Prefect client (stag's default, `flows.worker_preload`) {cost(rows['shared'])}; "
            f"with clients built by every task run (Prefect's default) {cost(rows['per_run'])}. What remains is "
            "Prefect's: the command process serialises its settings for every submission, the worker rebuilds them "
            "for every run, and the server records each run's states."]


def _timeline_notes(dataset: str, res: dict) -> list[str]:
    """Where the first runs' time went: before the first task, the work (first task start to last task
    end), after the last task (task runs' times on the Prefect server: ``flow_run_timeline``)."""
    runs = res["runs"]
    t1, t2 = (runs[k]["first"].get("timeline") for k in ("workers_1", "workers_2"))
    if not t1 or not t2:
        return []
    span = res.get("speedup_2_vs_1_work_span", t1["work_span_s"] / t2["work_span_s"])
    spans = [p["speedup_work_span"] for p in res.get("scaling_pairs", []) if "speedup_work_span" in p]
    each = f" (median of {len(spans)} pairs: {', '.join(f'{x:.2f}x' for x in spans)})" if len(spans) > 1 else ""
    text = (f"- {dataset}, {res['clips']} clips, where the first runs' time went (1 worker / 2 workers; the task runs' "
            f"start and end times on the Prefect server): before the first task {t1['before_work_s']:.1f} / "
            f"{t2['before_work_s']:.1f} s (Python, imports, the flow run's creation, planning, the cluster's start); "
            f"the work, first task start to last task end, {t1['work_span_s']:.1f} / {t2['work_span_s']:.1f} s; after "
            f"the last task {t1['after_work_s']:.1f} / {t2['after_work_s']:.1f} s (the summary, the flow run's end with "
            "Prefect's heartbeat thread, the cluster's close, the interpreter's exit). The work alone is "
            f"{span:.2f}x faster with 2 workers{each}")
    ceiling = two_core_ceiling(dataset)
    if ceiling:
        best = scaling_bound(res, ceiling)[1]
        text += (f"; with these fixed seconds, work sped up as much as the two cores allow ({ceiling:.2f}x, the "
                 f"median below) would make the whole command at most {best:.2f}x faster")
    return [text + "."]


def _cpu_notes(dataset: str, res: dict) -> list[str]:
    """Where the CPU of the 1- and 2-worker first runs went (command process, Dask workers, Prefect server)."""
    runs = res["runs"]
    w1, w2 = runs["workers_1"]["first"], runs["workers_2"]["first"]
    if "cpu_s" not in w1 or "cpu_s" not in w2:
        return []
    parts = []
    for label, run in (("1 worker", w1), ("2 workers", w2)):
        c = run["cpu_s"]
        total = c["flow_process_s"] + c["workers_s"] + c["server_s"]
        stages = sum(run.get("stage_s_summed", {}).values())
        parts.append(f"{label}: {total:.1f} s = command process {c['flow_process_s']:.1f} + Dask workers "
                     f"{c['workers_s']:.1f} + Prefect server {c['server_s']:.1f} (the timed stages sum to {stages:.1f} s of "
                     "wall time inside the workers)")
    extra = (w2["cpu_s"]["workers_s"] - w1["cpu_s"]["workers_s"])
    total2 = sum(w2["cpu_s"][k] for k in ("flow_process_s", "workers_s", "server_s"))
    return [f"- {dataset}, {res['clips']} clips, CPU seconds of the first run: {'; '.join(parts)}. The second worker "
            f"costs {extra:+.1f} s of worker CPU (two processes sharing two cores with the command process and the "
            "server; its start-up is a fork). With 2 workers the two cores were "
            f"{100 * total2 / (2 * w2['wall_s']):.0f}% busy over the command; even fully busy they could not finish "
            f"that CPU in less than {total2 / 2:.1f} s, i.e. at most {w1['wall_s'] / (total2 / 2):.2f}x faster than "
            "1 worker."]
