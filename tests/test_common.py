"""scikit-learn's estimator checks over both sk-mnist estimators."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_mnist import KerasMLPClassifier, MNISTFlattener

# Small, fast parameters: the checks fit a few hundred times on tiny data.
FAST_CLASSIFIER = KerasMLPClassifier(
    hidden_layer_sizes=(32,),
    dropout=0.0,
    optimizer="adam",
    learning_rate=0.01,
    batch_size=32,
    epochs=30,
    random_state=0,
)

EXPECTED_FAILURES = {
    "KerasMLPClassifier": {
        # Minibatch training with shuffling: a sample of weight 2 lands in one
        # batch, its two copies in two batches, so the gradient steps differ
        # (scikit-learn lists the same failure for its MLPClassifier).
        "check_sample_weight_equivalence_on_dense_data": (
            "stochastic minibatch training: a weight of 2 is not two copies"
        ),
    },
}


@parametrize_with_checks(
    # image_shape=(1, -1): the checks use feature counts that are not square
    # numbers, so the transformer is told to treat each row as a 1-row image.
    [MNISTFlattener(image_shape=(1, -1)), FAST_CLASSIFIER],
    expected_failed_checks=lambda est: EXPECTED_FAILURES.get(type(est).__name__, {}),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
