"""t-SNE as it optimizes, on a feature set: the embedding every few iterations, then its faithfulness.

Not a training demo: the generator yields the t-SNE embedding as openTSNE optimizes it (scikit-learn when
openTSNE is missing: initialization, then the final embedding). The page runs the same generator on features a
page published in the session (see :func:`run_on`); the CLI and benchmark on the built-in sets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from ..analysis.embedding import (ENGINES, _threads, HAVE_OPENTSNE, knn_accuracy_loo, opentsne_fit, pca,
                                  trustworthiness, tsne_steps)
from ..analysis.feature_sets import BUILTIN, FeatureSet, load_builtin, subsample
from ..config import param
from .base import Claim, Demo, Pacer, Preset, Snapshot

LEARNING_RATES = ("auto", "10", "50", "100", "200", "500", "1000")
PERPLEXITY_GRID = (5, 30, 50, 100)  # the small multiples (Wattenberg et al., "How to use t-SNE effectively")


@dataclass(frozen=True)
class Config:
    source: str = param("pixels", "features to embed: raw pixels, a random LeNet, or a LeNet trained for 3 epochs",
                        choices=tuple(BUILTIN), widget=False)
    n_components: int = param(2, "dimensions of the embedding", choices=(2, 3), label="dimensions")
    perplexity: float = param(30.0, "effective number of neighbours each point keeps (clipped below N/3)",
                              lo=2.0, hi=100.0, step=1.0)
    learning_rate: str = param("auto", "gradient step; auto = N / exaggeration (openTSNE) or max(N/48, 50) "
                                        "(scikit-learn)", choices=LEARNING_RATES, label="learning rate")
    iterations: int = param(750, "optimizer iterations in all (scikit-learn needs at least 250)", lo=250, hi=2000,
                            step=50)
    early_exaggeration: float = param(12.0, "attraction multiplier for the first 250 iterations: clusters form "
                                            "and separate early", choices=(1.0, 4.0, 12.0, 24.0, 48.0),
                                      label="early exaggeration")
    init: str = param("pca", "start from the top principal components (stable) or random noise",
                      choices=("pca", "random"), label="initialization")
    engine: str = param("openTSNE" if HAVE_OPENTSNE else "scikit-learn",
                        "openTSNE shows the optimization as it runs; scikit-learn fits in one call",
                        choices=ENGINES)
    n_points: int = param(1797, "embed this many examples (a seeded subset) of the source", lo=100, hi=1797,
                          step=1, widget=False)
    every: int = param(25, "iterations between snapshots (openTSNE)", lo=5, hi=250, widget=False)
    seed: int = param(0, "seed for the initialization and the random network", lo=0, hi=2**31 - 1, widget=False)


PRESETS = {
    "default": Preset("Standard t-SNE (perplexity 30, PCA start)", Config(),
                      "Ten digit clusters appear within the first 250 exaggerated iterations, then spread out.",
                      Claim("after 750 iterations the 2-D map keeps the neighbours: 5-NN accuracy in it >= 98% (the "
                            "64-D pixels': 98.8%) and trustworthiness >= 0.99",
                            lambda s: s["knn_acc_embedding"] >= 0.98 and s["trustworthiness"] >= 0.99,
                            ("knn_acc_embedding", "trustworthiness", "fragments_per_class", "kl_divergence"))),
    "no-exaggeration": Preset("No early exaggeration", Config(early_exaggeration=1.0, init="random"),
                              "From random noise and without exaggeration the digits still separate. Measured on seeds "
                              "300-314, the final KL divergence is 0.769-0.803 against the standard run's 0.772-0.778: "
                              "on 1,797 points exaggeration barely changes the optimum; it matters on large data sets, "
                              "where clusters split apart early.",
                              Claim("without exaggeration, from a random start, 5-NN accuracy in the final map is still "
                                    ">= 98%",
                                    lambda s: s["knn_acc_embedding"] >= 0.98,
                                    ("kl_divergence", "knn_acc_embedding", "fragments_per_class"))),
    "tiny-perplexity": Preset("Perplexity 5", Config(perplexity=5.0),
                              "Each point keeps only ~5 neighbours: many small clumps that are not real classes.",
                              Claim("the classes break into clumps: at least 2.5 pieces per class on average (the "
                                    "standard run: 1.6-1.8; pieces = components of 10+ points of a class's 5-NN graph)",
                                    lambda s: s["fragments_per_class"] >= 2.5,
                                    ("fragments_per_class", "knn_acc_embedding", "kl_divergence"))),
}


def run_on(fs: FeatureSet, config: Config) -> Iterator[Snapshot]:
    """Embed ``fs`` (subsampled to ``config.n_points``) with t-SNE; snapshots as the optimization runs.

    Metrics: ``iteration``, ``kl_divergence`` (openTSNE), ``seconds`` (t-SNE time so far), ``knn_acc_original``
    (leave-one-out 5-NN in the original space), and at the end ``trustworthiness`` and ``knn_acc_embedding``.
    Arrays: ``coords`` (N, k), ``labels`` (N,).
    """
    fs = subsample(fs, config.n_points, config.seed)
    x = np.asarray(fs.features, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("the features contain NaN or infinite values (did that model diverge?): retrain it")
    base = {"knn_acc_original": knn_accuracy_loo(x, fs.labels), "n_points": float(len(x)),
            "dims_original": float(x.shape[1])}
    lr = config.learning_rate if config.learning_rate == "auto" else float(config.learning_rate)
    # Pause/Reset within a fraction of a second: the affinities, 250 openTSNE iterations or a whole
    # scikit-learn fit are single calls of seconds, so they run through the pacer (see Pacer.call).
    pacer = Pacer()
    t0, seconds = pacer.clock(), 0.0
    steps = tsne_steps(x, config.n_components, config.perplexity, config.seed, lr, config.iterations,
                       config.early_exaggeration, config.init, config.every, config.engine)
    item = next(steps)  # the initialization: the first snapshot
    while item is not None:
        it, coords, kl = item
        seconds = pacer.clock() - t0
        yield Snapshot(it, {**base, "iteration": float(it), "kl_divergence": kl, "seconds": seconds},
                       {"coords": coords, "labels": fs.labels})
        pacer.reset()
        t0 = pacer.clock() - seconds  # time spent drawing between snapshots (or paused) does not count
        item = yield from pacer.call(it, next, steps, None)
    final = yield from pacer.call(it, _faithfulness, x, coords, fs.labels)
    yield Snapshot(it, {**base, "iteration": float(it), "kl_divergence": kl, "seconds": seconds, **final},
                   {"coords": coords, "labels": fs.labels, "final": True})


def _faithfulness(x: np.ndarray, coords: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"trustworthiness": trustworthiness(x, coords), "knn_acc_embedding": knn_accuracy_loo(coords, labels)}


def run(config: Config, device: torch.device) -> Iterator[Snapshot]:
    """The demo contract: embed the built-in feature set ``config.source`` (features computed on ``device``)."""
    yield from run_on(load_builtin(config.source, config.seed, device), config)


def class_fragments(coords: np.ndarray, labels: np.ndarray, k: int = 5, min_size: int = 10) -> float:
    """Mean number of pieces per class in an embedding: the connected components (of at least ``min_size`` points)
    of each class's own k-nearest-neighbour graph. One compact cluster per class gives 1.0; clusters that split
    into separate clumps give more."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    pieces = []
    for c in np.unique(labels):
        x = coords[labels == c]
        if len(x) <= k:
            continue
        idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
        rows = np.repeat(np.arange(len(x)), k)
        graph = csr_matrix((np.ones(rows.size), (rows, idx.ravel())), shape=(len(x), len(x)))
        _, comp = connected_components(graph, directed=False)
        pieces.append(int((np.bincount(comp) >= min_size).sum()))
    return float(np.mean(pieces)) if pieces else float("nan")


def _summarize(snap: Snapshot, runner) -> dict:
    m = snap.metrics
    frag = class_fragments(np.asarray(snap.arrays["coords"]), np.asarray(snap.arrays["labels"])) \
        if "coords" in snap.arrays else None
    return {"fragments_per_class": frag, "source": runner.config.source, "engine": runner.config.engine if HAVE_OPENTSNE else "scikit-learn",
            "seconds": round(m["seconds"], 3), "knn_acc_original": m["knn_acc_original"],
            "trustworthiness": m.get("trustworthiness"), "knn_acc_embedding": m.get("knn_acc_embedding"),
            "kl_divergence": m.get("kl_divergence"), "n_points": int(m["n_points"]), "steps": snap.step}


def _bench_tsne_digits(device: torch.device) -> dict:
    """Seconds for a t-SNE of all 1,797 digits (raw pixels, 2-D, 750 iterations), both engines, median of 3;
    wall clock and process CPU time (CPU time is the fairer figure on a shared machine)."""
    fs = load_builtin("pixels")
    out = {"tsne_threads": _threads()}
    engines = ("scikit-learn", "openTSNE") if HAVE_OPENTSNE else ("scikit-learn",)
    for engine in engines:
        walls, cpus = [], []
        for seed in range(3):
            c, t = time.process_time(), time.perf_counter()
            for _ in tsne_steps(fs.features, seed=seed, engine=engine, every=750 if engine == "openTSNE" else 25):
                pass
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        key = engine.lower().replace("-", "")
        out[f"tsne_1797_{key}_seconds"] = round(float(np.median(walls)), 3)
        out[f"tsne_1797_{key}_cpu_seconds"] = round(float(np.median(cpus)), 3)
    pca_times = []
    for _ in range(6):  # the first call loads BLAS: not counted
        t = time.perf_counter()
        pca(fs.features, 2)
        pca_times.append(time.perf_counter() - t)
    out["pca_1797_seconds"] = round(float(np.median(pca_times[1:])), 4)
    out["target_tsne_seconds"] = 5.0
    return out


def _bench_tsne_live(device: torch.device) -> dict:
    """The live t-SNE against the library it wraps, side by side in this process: all 1,797 digits (raw pixels,
    the default config: 2-D, perplexity 30, PCA start, 750 iterations of which 250 exaggerated).

    ``live``: the demo as the Features page runs it (:func:`run_on` on features already loaded) driven by a
    :class:`~dlviz.runner.Runner` in 0.1 s slices, as the scheduler does, from its first snapshot to its last
    (affinities, every snapshot, the final trustworthiness and k-NN accuracies included). ``library``: openTSNE's
    own one call with the same affinities, initialization, schedule, learning rate and threads
    (:func:`~dlviz.analysis.embedding.opentsne_fit`). ``sklearn``: scikit-learn's TSNE from the same start, for
    reference. Medians over $DLVIZ_BENCH_REPS repetitions (default 4), live and library first in turn; wall clock
    and process CPU time (all threads; the steadier figure on a shared machine). ``gap``: t-SNE compute seconds
    between two embeddings the page receives once the optimization runs."""
    import os

    from threadpoolctl import threadpool_limits

    from ..runner import Runner

    if not HAVE_OPENTSNE:
        return {"skipped": "openTSNE is not installed: the live view is one scikit-learn call"}
    reps = max(1, int(os.environ.get("DLVIZ_BENCH_REPS", "4")))
    fs = load_builtin("pixels")
    config = Config()
    x, n = fs.features, len(fs.labels)
    live_demo = replace(DEMOS[0], run=lambda cfg, dev: run_on(fs, cfg))
    out: dict = {"tsne_threads": _threads(), "n_points": n, "iterations": config.iterations, "repetitions": reps}

    def live() -> dict:
        r = Runner(live_demo, config, "cpu")
        r.play()
        t0, final_at = time.perf_counter(), None
        while not r.finished:
            r.advance(0.1)
            if final_at is None and r.latest is not None and r.latest.step >= config.iterations:
                final_at = time.perf_counter() - t0
        if r.status != "done":
            raise RuntimeError(f"the live run ended {r.status}: {r.message}")
        secs = [h["seconds"] for h in r.history if h["step"] > 0]
        return {"kl": r.latest.metrics["kl_divergence"], "coords": np.asarray(r.latest.arrays["coords"]),
                "to_final_embedding": final_at, "snapshots": len(r.history), "first_gap": secs[0],
                "gaps": np.diff(secs[:-1]) if len(secs) > 2 else np.zeros(1),  # the last: the final metrics
                "trustworthiness": r.latest.metrics["trustworthiness"]}

    def library() -> dict:
        coords, kl = opentsne_fit(x, config.n_components, config.perplexity, config.seed, config.learning_rate,
                                  config.iterations, config.early_exaggeration, config.init)
        return {"kl": kl, "coords": coords}

    def sklearn() -> dict:
        from sklearn.manifold import TSNE

        start = next(tsne_steps(x, config.n_components, config.perplexity, config.seed, init=config.init))[1]
        with threadpool_limits(_threads()):
            model = TSNE(config.n_components, perplexity=config.perplexity, learning_rate="auto",
                         max_iter=config.iterations, early_exaggeration=config.early_exaggeration, init=start,
                         random_state=config.seed, n_jobs=_threads())
            model.fit_transform(x)
        return {"kl": float(model.kl_divergence_)}

    fns = {"live": live, "library": library, "sklearn": sklearn}
    walls: dict = {k: [] for k in fns}
    cpus: dict = {k: [] for k in fns}
    last: dict = {}
    for rep in range(reps):
        for name in ("live", "sklearn", "library") if rep % 2 == 0 else ("library", "sklearn", "live"):
            c, t = time.process_time(), time.perf_counter()
            last[name] = fns[name]()
            walls[name].append(time.perf_counter() - t)
            cpus[name].append(time.process_time() - c)
            if name == "live":
                last.setdefault("live_to_final", []).append(last[name]["to_final_embedding"])
    med = {k: float(np.median(v)) for k, v in walls.items()}
    cpu = {k: float(np.median(v)) for k, v in cpus.items()}
    lv = last["live"]
    out.update({
        "live_seconds": round(med["live"], 2), "library_seconds": round(med["library"], 2),
        "sklearn_seconds": round(med["sklearn"], 2),
        "ratio_live_to_library": round(med["live"] / med["library"], 3),
        "ratio_cpu_live_to_library": round(cpu["live"] / cpu["library"], 3),
        "ratio_paired_median": round(float(np.median(np.array(walls["live"]) / np.array(walls["library"]))), 3),
        "live_to_final_embedding_seconds": round(float(np.median(last["live_to_final"])), 2),
        "live_cpu_seconds": round(cpu["live"], 2), "library_cpu_seconds": round(cpu["library"], 2),
        "sklearn_cpu_seconds": round(cpu["sklearn"], 2),
        "live_seconds_each": [round(v, 2) for v in walls["live"]],
        "library_seconds_each": [round(v, 2) for v in walls["library"]],
        "kl_live": round(lv["kl"], 4), "kl_library": round(last["library"]["kl"], 4),
        "kl_sklearn": round(last["sklearn"]["kl"], 4),
        "identical_embedding": bool(np.array_equal(lv["coords"], last["library"]["coords"])),
        "trustworthiness_live": round(lv["trustworthiness"], 4), "snapshots": lv["snapshots"],
        "first_embedding_after_s": round(lv["first_gap"], 2),
        "gap_median_s": round(float(np.median(lv["gaps"])), 3), "gap_max_s": round(float(np.max(lv["gaps"])), 3),
        "target_ratio": 1.2,
    })
    return out


DEMOS = [Demo(
    name="tsne", title="t-SNE of learned features",
    summary="t-SNE of raw pixels, a random network or a trained LeNet: the embedding forms as it optimizes.",
    config_cls=Config, presets=PRESETS, run=run, summarize=_summarize,
    benchmarks={"tsne 1797 digits": _bench_tsne_digits, "tsne-live": _bench_tsne_live},
)]

__all__ = ["Config", "PRESETS", "PERPLEXITY_GRID", "run", "run_on", "DEMOS"]
