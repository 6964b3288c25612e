"""2-D/3-D embeddings of features (PCA, t-SNE) and how faithful they are (kNN accuracy, trustworthiness).

t-SNE comes from a library, never hand-rolled: scikit-learn's Barnes-Hut t-SNE in one call (:func:`tsne`), or
openTSNE (optional) optimized in chunks so a page can show the embedding as it forms (:func:`tsne_steps`).
On the 1,797 digits both cost about the same CPU time per iteration; openTSNE is preferred for the live view
because its optimizer state survives between chunks: chunked, it computes exactly the embedding of openTSNE's own
one call (:func:`opentsne_fit`) at about the same cost (``python -m dlviz bench --only tsne-live`` measures both
side by side). Without openTSNE, :func:`tsne_steps` falls back to one scikit-learn call, so nothing breaks.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Iterator

import numpy as np
from threadpoolctl import threadpool_limits

HAVE_OPENTSNE = importlib.util.find_spec("openTSNE") is not None
ENGINES = ("openTSNE", "scikit-learn")


def _threads() -> int:
    """Threads for t-SNE: 1 unless $DLVIZ_TSNE_THREADS says otherwise. On the 1,797 digits a second thread gains
    little, and on a busy machine openTSNE's per-chunk thread synchronization made it ~10x slower (measured)."""
    try:
        return max(1, int(os.environ.get("DLVIZ_TSNE_THREADS", "1")))
    except ValueError:
        return 1


def _limited(fn):
    """Run ``fn`` with BLAS/OpenMP limited to :func:`_threads`: on a shared 2-core machine a 1,797 x 64 SVD took
    5 s with OpenBLAS's 2 spinning threads and 0.04 s with one (measured)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(_threads()):
            return fn(*args, **kwargs)
    return wrapper


@_limited
def pca(x: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, D) features on their top principal components.

    Returns (coords (N, k), explained variance ratio (k,)). Uses an SVD of the centered data.
    """
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(n_components, vt.shape[0])
    var = s**2
    ratio = var[:k] / var.sum() if var.sum() > 0 else np.zeros(k)
    coords = xc @ vt[:k].T
    if coords.shape[1] < n_components:  # degenerate (e.g. collapsed) features: pad so plots still draw
        coords = np.pad(coords, ((0, 0), (0, n_components - coords.shape[1])))
        ratio = np.pad(ratio, (0, n_components - len(ratio)))
    return coords.astype(np.float32), ratio


@_limited
def explained_variance(x: np.ndarray, n_components: int = 20) -> np.ndarray:
    """Explained variance ratio of the first ``n_components`` principal components, (k,) (zeros if constant)."""
    x = np.asarray(x, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(0, keepdims=True), compute_uv=False)
    var = s**2
    return (var / var.sum() if var.sum() > 0 else np.zeros_like(var))[:n_components]


def _perplexity(perplexity: float, n: int) -> float:
    """Perplexity must stay below N/3 (the neighbour lists hold 3 x perplexity points)."""
    return float(min(perplexity, max(2.0, (n - 1) / 3 - 1)))


@_limited
def tsne(x: np.ndarray, n_components: int = 2, perplexity: float = 30.0, seed: int = 0,
         learning_rate: float | str = "auto", max_iter: int = 1000, early_exaggeration: float = 12.0,
         init: str | np.ndarray = "pca") -> np.ndarray:
    """scikit-learn's Barnes-Hut t-SNE of (N, D) features -> (N, n_components); perplexity is clipped below N/3
    so small sets work; ``init`` is "pca", "random" or an (N, n_components) start."""
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float32)
    model = TSNE(n_components=n_components, perplexity=_perplexity(perplexity, len(x)), learning_rate=learning_rate,
                 max_iter=max(250, int(max_iter)), early_exaggeration=early_exaggeration, init=init,
                 random_state=seed, n_jobs=_threads())
    return model.fit_transform(x).astype(np.float32)  # its Barnes-Hut gradient is an OpenMP loop: limited


class _ReusedGradient:
    """openTSNE's Barnes-Hut objective that hands the next chunk the gradient the last one already computed.

    Every ``TSNEEmbedding.optimize`` call ends with one more evaluation of the objective (gradient and KL) at the
    final embedding, and the next call begins with the same evaluation at the same embedding: run in chunks of 25
    iterations, t-SNE would compute ~4% more gradients than in one call. Here the end-of-chunk evaluation is kept
    and returned (a copy) when the next chunk asks for the same embedding with the same affinities; anything else
    is computed. The gradient does not depend on whether the KL is evaluated alongside (checked in the tests).
    """

    def __init__(self):
        from openTSNE.tsne import kl_divergence_bh

        self._fn = kl_divergence_bh
        self._kept: tuple | None = None  # (embedding copy, P, P.data, error, gradient)
        self.reused = 0  # evaluations saved (for tests and the benchmark)

    def forget(self) -> None:
        """Call after changing the affinities in place (the end of early exaggeration)."""
        self._kept = None

    def __call__(self, embedding, P, *args, reference_embedding=None, should_eval_error=False, **kwargs):
        kept, self._kept = self._kept, None
        if (kept is not None and reference_embedding is None and kept[1] is P and kept[2] is P.data
                and np.array_equal(kept[0], embedding)):
            self.reused += 1
            return kept[3], kept[4].copy()
        error, grad = self._fn(embedding, P, *args, reference_embedding=reference_embedding,
                               should_eval_error=should_eval_error, **kwargs)
        if should_eval_error and reference_embedding is None:  # the end of a chunk (openTSNE evaluates the KL)
            self._kept = (np.array(embedding), P, P.data, error, grad.copy())
        return error, grad


def _start(x: np.ndarray, n_components: int, seed: int, init: str) -> np.ndarray:
    """The initialization, (N, k) float32: the PCA start scaled to std 1e-4 on PC1, or N(0, 1e-4) noise."""
    if init == "pca":
        coords, _ = pca(x, n_components)
        std = coords[:, 0].std()
        return (coords / (std if std > 0 else 1.0) * 1e-4).astype(np.float32)  # the usual small-scale PCA start
    return np.random.default_rng(seed).normal(scale=1e-4, size=(len(x), n_components)).astype(np.float32)


def _learning_rate(learning_rate: float | str, n: int, early_exaggeration: float, opentsne: bool) -> float:
    """The step size; "auto" is each library's rule (Belkina et al. 2019): N / exaggeration (openTSNE),
    max(N / (4 exaggeration), 50) (scikit-learn)."""
    if learning_rate != "auto":
        return float(learning_rate)
    return max(n / early_exaggeration, 1.0) if opentsne else max(n / early_exaggeration / 4, 50.0)


@_limited
def opentsne_fit(x: np.ndarray, n_components: int = 2, perplexity: float = 30.0, seed: int = 0,
                 learning_rate: float | str = "auto", max_iter: int = 750, early_exaggeration: float = 12.0,
                 init: str = "pca", exaggeration_iter: int = 250) -> tuple[np.ndarray, float]:
    """openTSNE's own one call (``TSNE.fit``) with exactly the affinities, initialization, schedule, learning rate
    and threads of :func:`tsne_steps`' openTSNE path: (coords (N, k) float32, final KL divergence).

    The reference the live view is measured against (``python -m dlviz bench --only tsne-live``) and must
    reproduce (the tests). Needs openTSNE.
    """
    from openTSNE import TSNE, affinity

    x = np.asarray(x, dtype=np.float32)
    init_coords = _start(x, n_components, seed, init)
    lr = _learning_rate(learning_rate, len(x), early_exaggeration, True)
    aff = affinity.PerplexityBasedNN(x, perplexity=_perplexity(perplexity, len(x)), n_jobs=_threads(),
                                     random_state=seed)
    ee_iter = min(exaggeration_iter, max_iter)
    emb = TSNE(n_components=n_components, learning_rate=lr, early_exaggeration_iter=ee_iter,
               early_exaggeration=early_exaggeration, n_iter=max_iter - ee_iter, initial_momentum=0.5,
               final_momentum=0.8, negative_gradient_method="bh", n_jobs=_threads(), random_state=seed,
               ).fit(affinities=aff, initialization=init_coords.astype(np.float64))
    return np.array(emb, dtype=np.float32), float(emb.kl_divergence)


def tsne_steps(x: np.ndarray, n_components: int = 2, perplexity: float = 30.0, seed: int = 0,
               learning_rate: float | str = "auto", max_iter: int = 750, early_exaggeration: float = 12.0,
               init: str = "pca", every: int = 25, engine: str = "openTSNE",
               exaggeration_iter: int = 250) -> Iterator[tuple[int, np.ndarray, float]]:
    """t-SNE as it optimizes: yields (iteration, coords (N, k) float32, KL divergence or NaN).

    The first yield is the initialization (iteration 0). With openTSNE (``engine="openTSNE"`` and installed)
    the first ``exaggeration_iter`` iterations use ``early_exaggeration`` (momentum 0.5), the rest none
    (momentum 0.8), and a snapshot follows every ``every`` iterations. With scikit-learn the whole fit is one
    call, so the second yield is the final embedding.

    The openTSNE path computes exactly what :func:`opentsne_fit` (the library's one call) computes, for about
    the same time: the affinities are exaggerated once for the whole early phase, as ``TSNE.fit`` does (not
    scaled up and back per chunk, which would round them differently), the optimizer's gains and momentum carry
    over between chunks, and each chunk starts from the gradient the previous one ended with
    (:class:`_ReusedGradient`). The KL of each snapshot is the one openTSNE evaluates at the end of a chunk.
    """
    x = np.asarray(x, dtype=np.float32)
    openpath = engine == "openTSNE" and HAVE_OPENTSNE
    perp, lr = _perplexity(perplexity, len(x)), _learning_rate(learning_rate, len(x), early_exaggeration, openpath)
    init_coords = _start(x, n_components, seed, init)
    yield 0, init_coords, float("nan")
    if not openpath:
        coords = tsne(x, n_components, perp, seed, lr, max_iter, early_exaggeration, init_coords)
        yield max(250, int(max_iter)), coords, float("nan")
        return
    from openTSNE import TSNEEmbedding, affinity

    with threadpool_limits(_threads()):
        aff = affinity.PerplexityBasedNN(x, perplexity=perp, n_jobs=_threads(), random_state=seed)
    objective = _ReusedGradient()
    emb = TSNEEmbedding(init_coords.astype(np.float64), aff, negative_gradient_method=objective,
                        n_jobs=_threads(), random_state=seed)
    ee_iter = min(exaggeration_iter, max_iter)
    exaggerated = ee_iter > 0 and early_exaggeration != 1
    if exaggerated:
        aff.P *= early_exaggeration  # what TSNE.fit's first optimize call does, once for all its iterations
    done, every = 0, max(1, int(every))
    while done < max_iter:
        ee = done < ee_iter
        if not ee and exaggerated:
            aff.P /= early_exaggeration  # ... and what it undoes after them
            exaggerated = False
            objective.forget()
        chunk = min(every, (ee_iter if ee else max_iter) - done)
        emb.optimize(n_iter=chunk, momentum=0.5 if ee else 0.8, learning_rate=lr, inplace=True)
        done += chunk
        kl = float(emb.kl_divergence)
        if exaggerated:  # the KL of the exaggerated P: openTSNE's own correction gives the true P's
            kl = kl / early_exaggeration - float(np.log(early_exaggeration))
        yield done, np.array(emb, dtype=np.float32), kl


@_limited
def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean) of test points among train points."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_x)))
    clf.fit(np.asarray(train_x), np.asarray(train_y))
    return float((clf.predict(np.asarray(test_x)) == np.asarray(test_y)).mean())


@_limited
def nearest_neighbours(x: np.ndarray, k: int = 8, query: np.ndarray | int | None = None) -> np.ndarray:
    """Indices of the ``k`` nearest neighbours (Euclidean, self excluded) in the original space.

    ``query`` None: all points, (N, k). An int or index array: those points only, (k,) or (len(query), k).
    """
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, dtype=np.float32)
    k = min(k, len(x) - 1)
    q = np.arange(len(x)) if query is None else np.atleast_1d(np.asarray(query))
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x[q])
    out = np.stack([row[row != i][:k] for row, i in zip(idx, q)])  # drop the point itself (wherever ties put it)
    return out[0] if np.ndim(query) == 0 and query is not None else out


@_limited
def knn_accuracy_loo(x: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy: each point is classified by a vote of its k nearest others (ties: lowest label)."""
    y = np.asarray(y)
    nbrs = nearest_neighbours(x, k)
    votes = np.zeros((len(y), int(y.max()) + 1))
    np.add.at(votes, (np.repeat(np.arange(len(y)), nbrs.shape[1]), y[nbrs].ravel()), 1)
    return float((votes.argmax(1) == y).mean())


@_limited
def trustworthiness(x: np.ndarray, coords: np.ndarray, k: int = 5) -> float:
    """scikit-learn's trustworthiness in [0, 1]: 1 when no embedding neighbour is a stranger in the original space.

    T(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_i^k} (r(i, j) - k), where U_i^k are the embedding's
    k nearest neighbours of i that are not among its k nearest in the original space and r their original rank.
    """
    from sklearn.manifold import trustworthiness as _trust

    return float(_trust(np.asarray(x, dtype=np.float32), np.asarray(coords, dtype=np.float32),
                        n_neighbors=max(1, min(k, len(x) // 2 - 1))))
