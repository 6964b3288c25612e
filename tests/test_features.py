"""Feature explorer: embeddings and their faithfulness against references, feature sets, and the t-SNE demo."""

import itertools
from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import load_digits

from dlviz.analysis import embedding as E
from dlviz.analysis.feature_sets import from_published, load_builtin, problem, subsample
from dlviz.demos.base import snapshots


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32) / 16, y


def test_pca_matches_sklearn(digits):
    from sklearn.decomposition import PCA

    x, _ = digits
    coords, ratio = E.pca(x, 3)
    ref = PCA(3).fit(x)
    assert np.allclose(ratio, ref.explained_variance_ratio_, atol=1e-6)
    # Same subspace up to the sign of each axis.
    assert np.allclose(np.abs(coords), np.abs(ref.transform(x)), atol=1e-3)
    full = E.explained_variance(x, 100)
    assert full.sum() == pytest.approx(1.0) and np.all(np.diff(full) <= 1e-12)


def test_nearest_neighbours_and_loo_knn_against_brute_force(digits):
    x, y = digits[0][:300], digits[1][:300]
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    ref = np.argsort(d, 1, kind="stable")[:, :5]
    nn = E.nearest_neighbours(x, 5)
    assert nn.shape == (300, 5) and not (nn == np.arange(300)[:, None]).any()
    assert np.mean(np.sort(nn, 1) == np.sort(ref, 1)) > 0.99  # ties may order differently
    assert E.nearest_neighbours(x, 5, 7).shape == (5,)
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    loo = E.knn_accuracy_loo(x, y, 5)
    assert 0.9 < loo <= 1.0
    cv = (cross_val_predict(KNeighborsClassifier(5), x, y, cv=10) == y).mean()
    assert abs(loo - cv) < 0.05


def test_trustworthiness_orders_embeddings(digits):
    x = digits[0][:400]
    good, _ = E.pca(x, 10)
    rng = np.random.default_rng(0)
    assert E.trustworthiness(x, x) == pytest.approx(1.0, abs=1e-4)  # ties in pixel distances
    noise = rng.normal(size=(400, 2))
    assert E.trustworthiness(x, good) > E.trustworthiness(x, good[:, :2]) > E.trustworthiness(x, noise)


@pytest.mark.parametrize("engine", E.ENGINES)
def test_tsne_steps_beats_pca_and_kl_falls(digits, engine):
    x, y = digits[0][:300], digits[1][:300]
    if engine == "openTSNE" and not E.HAVE_OPENTSNE:
        pytest.skip("openTSNE not installed")
    steps = list(E.tsne_steps(x, perplexity=20, max_iter=300, every=50, engine=engine))
    assert steps[0][0] == 0 and steps[-1][0] == 300
    coords = steps[-1][1]
    assert coords.shape == (300, 2) and np.isfinite(coords).all()
    pca2, _ = E.pca(x, 2)
    assert E.trustworthiness(x, coords) > E.trustworthiness(x, pca2) + 0.05
    assert E.knn_accuracy_loo(coords, y) > E.knn_accuracy_loo(pca2, y)
    if engine == "openTSNE":
        kls = [kl for it, _, kl in steps[1:] if it > 250]  # after early exaggeration
        assert kls[-1] <= kls[0]


def test_tsne_keeps_its_signature_and_small_sets_work(digits):
    coords = E.tsne(digits[0][:40], perplexity=100, seed=1, max_iter=250)
    assert coords.shape == (40, 2)
    coords3 = E.tsne(digits[0][:60], n_components=3, max_iter=250)
    assert coords3.shape == (60, 3)


def test_feature_sets_random_network_is_worse_than_pixels_is_worse_than_nothing():
    pix, rnd = load_builtin("pixels"), load_builtin("random", seed=0)
    assert pix.features.shape == (1797, 64) and rnd.features.shape == (1797, 84)
    assert pix.images.shape == (1797, 8, 8) and (pix.labels == rnd.labels).all()
    # Raw pixels are already a strong baseline; a random LeNet keeps some but less of it, still far above chance.
    acc_pix = E.knn_accuracy_loo(pix.features, pix.labels)
    acc_rnd = E.knn_accuracy_loo(rnd.features, rnd.labels)
    assert acc_pix > 0.95 and 0.3 < acc_rnd < acc_pix
    small = subsample(pix, 100, seed=3)
    assert len(small.labels) == 100 and small.images.shape == (100, 8, 8)
    with pytest.raises(KeyError, match="pixels"):
        load_builtin("nope")


def test_from_published_and_problems():
    class Source:  # the fields of dlviz.ui.feature_sources.FeatureSource
        name, page, step, config = "fake", "cnn", 7, {"lr": 0.01}
        features = np.ones((20, 3, 2))
        labels = np.arange(20) % 2
        images = np.zeros((20, 1, 4, 4))
        class_names = ()

    fs = from_published(Source)
    assert fs.features.shape == (20, 6) and fs.images.shape == (20, 4, 4) and fs.class_names == ("0", "1")
    assert "step 7" in fs.description and problem(fs) is None
    nan = replace(fs, features=np.full((20, 6), np.nan, dtype=np.float32))
    assert "NaN" in problem(nan)
    assert "labels" in problem(replace(fs, labels=fs.labels[:5]))


def test_tsne_demo_snapshots_and_summary():
    from dlviz.demos import get_demo
    from dlviz.runner import Runner

    demo = get_demo("tsne")
    cfg = replace(demo.default_config(), n_points=250, iterations=300, every=100)
    snaps = list(itertools.islice(snapshots(demo.run(cfg, "cpu")), 20))
    assert snaps[0].step == 0 and snaps[-1].arrays.get("final")
    last = snaps[-1].metrics
    assert last["trustworthiness"] > 0.9 and last["knn_acc_original"] > 0.9 and last["n_points"] == 250
    r = Runner(demo, replace(cfg, source="random", engine="scikit-learn"), "cpu")
    r.run_to_end()
    out = r.summary()
    assert r.status == "done" and {"seconds", "knn_acc_original", "trustworthiness"} <= set(out)
    assert out["knn_acc_original"] < last["knn_acc_original"]  # random features lose to raw pixels
