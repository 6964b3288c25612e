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


@pytest.mark.skipif(not E.HAVE_OPENTSNE, reason="openTSNE not installed")
@pytest.mark.parametrize("every", [50, 7, 1000])
def test_tsne_steps_computes_the_library_one_call_result(digits, every, monkeypatch):
    """The live path is openTSNE's own TSNE.fit cut into chunks: however it is chunked, its snapshots come in order
    (the end of early exaggeration among them) and its last embedding and KL are the one call's, bit for bit."""
    monkeypatch.setenv("DLVIZ_TSNE_THREADS", "1")  # one thread: Barnes-Hut sums in a fixed order
    x = digits[0][:300]
    ref, ref_kl = E.opentsne_fit(x, perplexity=20, seed=3, max_iter=300)
    steps = list(E.tsne_steps(x, perplexity=20, seed=3, max_iter=300, every=every))
    its = [it for it, _, _ in steps]
    assert its[0] == 0 and its[-1] == 300 and 250 in its and its == sorted(set(its))
    assert all(b - a <= every for a, b in zip(its, its[1:]))
    assert all(np.isfinite(kl) for _, _, kl in steps[1:]) and all(c.dtype == np.float32 for _, c, _ in steps)
    assert np.array_equal(steps[-1][1], ref) and steps[-1][2] == ref_kl


@pytest.mark.skipif(not E.HAVE_OPENTSNE, reason="openTSNE not installed")
def test_tsne_steps_reports_the_true_kl_during_exaggeration_and_reuses_gradients(digits, monkeypatch):
    from openTSNE import affinity
    from openTSNE.tsne import kl_divergence_bh

    monkeypatch.setenv("DLVIZ_TSNE_THREADS", "1")
    x = digits[0][:300]
    made = []
    real = E._ReusedGradient

    class Counted(real):
        def __init__(self):
            super().__init__()
            made.append(self)

    monkeypatch.setattr(E, "_ReusedGradient", Counted)
    steps = list(E.tsne_steps(x, perplexity=20, max_iter=300, every=25))
    # 12 chunks: each but the first of each phase starts from the gradient the one before ended with.
    assert made[0].reused == len(steps) - 1 - 2
    # The KL of an exaggerated snapshot is that of the true affinities (openTSNE's own correction), not P x 12's.
    P = affinity.PerplexityBasedNN(x, perplexity=20, n_jobs=1, random_state=0).P
    for it, coords, kl in (steps[2], steps[-1]):
        true, grad = kl_divergence_bh(coords.astype(np.float64), P, 1, {"theta": 0.5}, should_eval_error=True)
        assert kl == pytest.approx(true, rel=1e-3)
        # The gradient a chunk reuses does not depend on whether the KL was evaluated with it.
        assert np.array_equal(grad, kl_divergence_bh(coords.astype(np.float64), P, 1, {"theta": 0.5})[1])
    assert steps[2][2] > steps[-1][2]  # and it falls


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


@pytest.mark.skipif(not E.HAVE_OPENTSNE, reason="openTSNE not installed")
def test_tsne_demo_live_run_in_slices_ends_at_the_library_result(monkeypatch):
    """Driven as the scheduler drives it (0.1 s slices), the demo shows embeddings in order, a new one every 25
    iterations, and its final embedding is openTSNE's one-call result for the same subset and settings."""
    from dlviz.demos import get_demo
    from dlviz.runner import Runner

    monkeypatch.setenv("DLVIZ_TSNE_THREADS", "1")
    demo = get_demo("tsne")
    cfg = replace(demo.default_config(), n_points=300, iterations=300, seed=4)
    r = Runner(demo, cfg, "cpu")
    r.play()
    while not r.finished:
        r.advance(0.1)
    assert r.status == "done"
    steps = [h["step"] for h in r.history]
    assert steps == list(range(0, 301, cfg.every)) + [300]  # the last row: the final faithfulness metrics
    seconds = [h["seconds"] for h in r.history]
    assert seconds == sorted(seconds)
    fs = subsample(load_builtin("pixels"), 300, 4)
    ref, kl = E.opentsne_fit(fs.features, seed=4, max_iter=300)
    assert r.latest.arrays["final"] and np.array_equal(r.latest.arrays["coords"], ref)
    assert r.summary()["kl_divergence"] == kl and r.summary()["trustworthiness"] > 0.9
