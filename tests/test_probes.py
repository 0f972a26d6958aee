"""The baselines against a direct scikit-learn computation, and manifold convergence as numbers."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tfae import data
from tfae.measurements.manifold import convergence
from tfae.probes import baselines, knn_probe, linear_probe


@pytest.fixture(scope="module")
def digits():
    """300 MNIST training and 200 test images, as flat arrays, with their labels."""
    splits = data.load("mnist", limit=300)

    def arrays(split, count):
        images, labels = zip(*split.take(count).as_numpy_iterator())
        return np.stack(images).astype(np.float32) / 255, np.array(labels)

    return (*arrays(splits.train, 300), *arrays(splits.test, 200))


def _direct_scores(train, train_labels, test, test_labels):
    """The probes as scikit-learn's users fit them: a logistic regression on standardised
    features, and plain 5-NN on the features as they are."""
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    knn = KNeighborsClassifier(5)
    return [model.fit(train, train_labels).score(test, test_labels) for model in (linear, knn)]


def test_pixel_and_pca_rows_equal_a_direct_scikit_learn_computation(digits):
    # The same models and objective, solved otherwise: the linear probe within two of the 200
    # test images (docs/performance.md compares them on full MNIST), kNN exactly.
    train_images, train_labels, test_images, test_labels = digits
    rows, pixel_classifier = baselines(train_images, train_labels, test_images, test_labels, 16)
    train, test = train_images.reshape(300, -1), test_images.reshape(200, -1)
    pca = PCA(16, random_state=0).fit(train)
    direct = {"pixels": _direct_scores(train, train_labels, test, test_labels),
              "pca": _direct_scores(pca.transform(train), train_labels, pca.transform(test),
                                    test_labels)}
    for name, (linear, knn) in direct.items():
        assert rows[name]["linear"] == pytest.approx(linear, abs=0.011)
        assert rows[name]["knn"] == knn
    reconstructions = np.clip(pca.inverse_transform(pca.transform(test)), 0, 1)
    errors = np.mean((test - reconstructions) ** 2, axis=1)
    assert rows["pca"]["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / errors)), rel=1e-5)
    assert rows["pca"]["components"] == 16
    assert pixel_classifier.score(test, test_labels) == pytest.approx(rows["pixels"]["linear"])


def test_a_code_as_wide_as_the_image_has_no_pca_row_and_unlabelled_data_no_probes(digits):
    train_images, _, test_images, _ = digits
    unlabelled_train, unlabelled_test = np.full(300, -1), np.full(200, -1)
    for code_size in (25, 2048):  # 5x5 images: PCA-25 would keep every pixel
        rows, pixel_classifier = baselines(train_images[:, :5, :5], unlabelled_train,
                                           test_images[:, :5, :5], unlabelled_test, code_size)
        assert rows == {"pixels": {"linear": None, "knn": None}} and pixel_classifier is None
    rows, _ = baselines(train_images[:, :5, :5], unlabelled_train, test_images[:, :5, :5],
                        unlabelled_test, 24)
    assert rows["pca"]["components"] == 24 and rows["pca"]["psnr"] > 30
    # Fewer training images than pixels cap PCA below the pixels: a compression again.
    rows, _ = baselines(train_images[:20, :5, :5], unlabelled_train[:20], test_images[:, :5, :5],
                        unlabelled_test, 2048)
    assert rows["pca"]["components"] == 20


def test_convergence_counts_what_iterating_keeps_and_where_it_ends(digits):
    train_images, train_labels, test_images, test_labels = digits
    classifier = linear_probe(train_images.reshape(300, -1), train_labels)
    starts, labels = test_images[:50], test_labels[:50]
    unchanged = convergence(lambda images: images, starts, labels, classifier, steps=3)
    assert unchanged["label_kept"] == pytest.approx(
        classifier.score(starts.reshape(50, -1), labels))
    assert unchanged["attractors"] == 50 and unchanged["starts"] == 50
    assert unchanged["label_kept_by_step"] == [unchanged["label_kept"]] * 4
    everything_to_one = convergence(lambda images: np.zeros_like(images) + train_images[0],
                                    starts, labels, classifier)
    assert everything_to_one["attractors"] == 1
    assert everything_to_one["label_kept"] == pytest.approx(np.mean(labels == train_labels[0]))
    # The starts are scored as they are, every step after them as the autoencoder leaves them.
    by_step = everything_to_one["label_kept_by_step"]
    assert len(by_step) == 21 and by_step[0] == unchanged["label_kept"]
    assert by_step[1:] == [everything_to_one["label_kept"]] * 20


def test_baselines_of_the_same_images_are_measured_once_and_kept_on_disk(digits, monkeypatch,
                                                                          tmp_path):
    import tfae.probes

    monkeypatch.setenv("TFAE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tfae.probes, "_MEASURED", {})
    train_images, train_labels, test_images, test_labels = digits
    first = baselines(train_images, train_labels, test_images, test_labels, 8)
    fit_probes = tfae.probes.fit_probes
    monkeypatch.setattr(tfae.probes, "fit_probes", None)  # a second fit would fail
    again = baselines(train_images, train_labels, test_images, test_labels, 8)
    assert again[0] == first[0] and again[1] is first[1]
    # Another process: read from the cache folder, the pixel classifier whole.
    monkeypatch.setattr(tfae.probes, "_MEASURED", {})
    stored = baselines(train_images, train_labels, test_images, test_labels, 8)
    assert stored[0] == first[0]
    assert np.array_equal(stored[1].predict(test_images), first[1].predict(test_images))
    # Other images, other labels or another PCA size are measured anew.
    monkeypatch.setattr(tfae.probes, "fit_probes", fit_probes)
    measured = []
    monkeypatch.setattr(tfae.probes, "fit_probes",
                        lambda *arguments: measured.append(arguments[-1]) or fit_probes(*arguments))
    baselines(train_images, train_labels, test_images, test_labels, 9)
    assert measured == ["PCA-9 codes"]
    baselines(train_images, (train_labels + 1) % 10, test_images, test_labels, 9)
    assert measured[1:] == ["raw pixels", "PCA-9 codes"]
    # A damaged cached file is measured again and written anew; no temporary file is left.
    monkeypatch.setattr(tfae.probes, "_MEASURED", {})
    digest = tfae.probes.images_digest(train_images.reshape(300, -1), train_labels,
                                       test_images.reshape(200, -1), test_labels)
    (tmp_path / "baselines" / digest / "pixels.npz").write_bytes(b"not an archive")
    assert baselines(train_images, train_labels, test_images, test_labels, 8)[0] == first[0]
    assert measured[3:] == ["raw pixels"]
    assert not list(tmp_path.rglob("*.tmp*"))


def test_pca_of_nearly_every_pixel_is_their_rotation_and_scores_as_they_do():
    # With all but one component, PCA rotates and centres MNIST's pixels and drops a direction
    # of next to no variance: plain 5-NN, which depends on distances alone, must score the same
    # (standardising the codes first gave 46% against 94%).
    splits = data.load("mnist", limit=1000)
    train, train_labels = (np.stack(part) for part in zip(*splits.train.as_numpy_iterator()))
    test, test_labels = (np.stack(part) for part in zip(*splits.test.take(500).as_numpy_iterator()))
    train, test = train.astype(np.float32) / 255, test.astype(np.float32) / 255
    rows, _ = baselines(train, train_labels, test, test_labels, code_size=783)
    assert rows["pca"]["components"] == 783
    assert abs(rows["pca"]["knn"] - rows["pixels"]["knn"]) <= 0.01
    direct = KNeighborsClassifier(5).fit(train.reshape(len(train), -1), train_labels)
    assert rows["pixels"]["knn"] == pytest.approx(direct.score(test.reshape(len(test), -1),
                                                               test_labels))


def test_a_wide_input_is_standardised_not_whitened_and_agrees_with_scikit_learn(digits):
    # Wider than WHITENED_WIDTH, the probe solves the same objective in standardised
    # coordinates (no d x d matrix): MNIST's digits drawn at 72x72, 5,184 pixels, with noise.
    from tfae.probes import WHITENED_WIDTH, LinearProbe

    train_images, train_labels, test_images, test_labels = digits
    rng = np.random.default_rng(0)

    def wide(images):
        large = images.repeat(3, axis=1).repeat(3, axis=2)[:, :72, :72]
        large = np.pad(large, ((0, 0), (0, 72 - large.shape[1]), (0, 72 - large.shape[2]),
                               (0, 0)))
        return (large + rng.normal(0, 0.05, large.shape)).astype(np.float32).reshape(
            len(images), -1)

    train, test = wide(train_images), wide(test_images)
    assert train.shape[1] > WHITENED_WIDTH
    probe = LinearProbe().fit(train, train_labels)
    assert not probe.whitened
    direct = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        train, train_labels).score(test, test_labels)
    assert probe.score(test, test_labels) == pytest.approx(direct, abs=0.011)
    neighbours = KNeighborsClassifier(5).fit(train, train_labels).score(test, test_labels)
    assert knn_probe(train, train_labels).score(test, test_labels) == pytest.approx(
        neighbours, abs=0.003)


def test_fitted_probes_free_their_training_codes_without_a_garbage_collection():
    import gc
    import weakref

    from tfae.probes import aligned_empty, knn_probe, linear_probe

    codes = aligned_empty((200, 16), np.float32)
    codes[:] = np.random.default_rng(0).random((200, 16))
    labels = np.arange(200) % 4
    memory = codes
    while memory.base is not None:  # the array that owns the memory, not a view of it
        memory = memory.base
    owner = weakref.ref(memory)
    del memory
    gc.disable()
    try:
        probes = [linear_probe(codes, labels), knn_probe(codes, labels)]
        assert all(probe.score(codes[:20], labels[:20]) >= 0 for probe in probes)
        del codes, probes
        # a traced function capturing the codes sits in reference cycles, freed only by gc
        assert owner() is None
    finally:
        gc.enable()
