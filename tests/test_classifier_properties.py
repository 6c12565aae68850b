"""set_params, clone, fit, partial_fit and warm_start in any order."""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)
from sklearn.base import clone
from strategies import budget

from sk_mnist import KerasMLPClassifier

_RNG = np.random.default_rng(0)
X = _RNG.random((48, 6), dtype=np.float32)
Y = np.arange(48) % 3
_CHANGES = {
    "hidden_layer_sizes": st.sampled_from([(4,), (3, 2)]),
    "epochs": st.integers(1, 2),
    "dropout": st.sampled_from([0.0, 0.2]),
    "activation": st.sampled_from(["relu", "tanh"]),
    "warm_start": st.booleans(),
    "batch_size": st.sampled_from([8, 64]),
}


class Lifecycle(RuleBasedStateMachine):
    """One estimator through a random sequence of scikit-learn calls.

    Whatever the order: a call either succeeds, or raises a ValueError naming
    the problem and leaves the fitted state (classes, weights, history) as it
    was; ``clone`` gives an unfitted copy with equal parameters.
    """

    def __init__(self):
        super().__init__()
        self.clf = KerasMLPClassifier(
            hidden_layer_sizes=(4,), epochs=1, batch_size=16, random_state=0
        )

    def _state(self):
        if not hasattr(self.clf, "model_"):
            return None
        return (
            self.clf.classes_.tolist(),
            [w.copy() for w in self.clf.model_.get_weights()],
            len(self.clf.history_["loss"]),
        )

    def _refused_unchanged(self, call):
        before = self._state()
        try:
            call()
        except ValueError as exc:
            assert "changed since the network was built" in str(exc)
            after = self._state()
            assert (before is None) == (after is None)
            if before is not None:
                assert before[0] == after[0]
                assert before[2] == after[2]
                for a, b in zip(before[1], after[1], strict=True):
                    np.testing.assert_array_equal(a, b)
            return False
        return True

    @rule()
    def fit(self):
        warm = self.clf.warm_start and hasattr(self.clf, "model_")
        epochs = len(self.clf.history_["loss"]) if warm else 0
        if self._refused_unchanged(lambda: self.clf.fit(X, Y)):
            assert self.clf.n_iter_ == epochs + self.clf.epochs

    @rule()
    def partial_fit(self):
        epochs = len(self.clf.history_["loss"]) if hasattr(self.clf, "model_") else 0
        if self._refused_unchanged(
            lambda: self.clf.partial_fit(X, Y, classes=np.arange(3))
        ):
            assert self.clf.n_iter_ == epochs + 1

    @rule(data=st.data(), name=st.sampled_from(sorted(_CHANGES)))
    def set_params(self, data, name):
        value = data.draw(_CHANGES[name])
        self.clf.set_params(**{name: value})
        assert self.clf.get_params()[name] == value

    @rule()
    def cloned(self):
        copy = clone(self.clf)
        assert copy.get_params() == self.clf.get_params()
        assert not hasattr(copy, "model_")
        self.clf = copy

    @precondition(lambda self: hasattr(self.clf, "model_"))
    @invariant()
    def predicts_its_own_classes(self):
        proba = self.clf.predict_proba(X[:5])
        np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
        assert set(self.clf.predict(X[:5])) <= set(self.clf.classes_)


Lifecycle.TestCase.settings = settings(
    max_examples=budget(6), stateful_step_count=6, deadline=None
)
test_any_sequence_of_calls_succeeds_or_changes_nothing = Lifecycle.TestCase
