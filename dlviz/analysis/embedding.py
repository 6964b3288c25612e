"""2-D/3-D embeddings of features (PCA, t-SNE) and how faithful they are (kNN accuracy, trustworthiness)."""

from __future__ import annotations

import numpy as np


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


def tsne(x: np.ndarray, n_components: int = 2, perplexity: float = 30.0, seed: int = 0,
         learning_rate: float | str = "auto", max_iter: int = 1000, early_exaggeration: float = 12.0,
         init: str = "pca") -> np.ndarray:
    """scikit-learn's Barnes-Hut t-SNE of (N, D) features; perplexity is clipped below N/3 so small sets work."""
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float32)
    perplexity = float(min(perplexity, max(2.0, (len(x) - 1) / 3)))
    model = TSNE(n_components=n_components, perplexity=perplexity, learning_rate=learning_rate,
                 max_iter=max_iter, early_exaggeration=early_exaggeration, init=init, random_state=seed)
    return model.fit_transform(x).astype(np.float32)


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean) of test points among train points."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_x)))
    clf.fit(np.asarray(train_x), np.asarray(train_y))
    return float((clf.predict(np.asarray(test_x)) == np.asarray(test_y)).mean())
