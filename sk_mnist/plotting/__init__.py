"""Display objects for training curves, digit grids and search results.

They follow scikit-learn's Display API (``from_estimator``/``from_predictions``,
``plot``, ``figure_``/``axes_``). matplotlib is imported only when drawing.
For the confusion matrix and the classification report, use scikit-learn's
:class:`~sklearn.metrics.ConfusionMatrixDisplay` and
:func:`~sklearn.metrics.classification_report`.
"""

from ._digits import DigitGridDisplay
from ._history import TrainingHistoryDisplay
from ._search import SearchResultsDisplay

__all__ = ["DigitGridDisplay", "SearchResultsDisplay", "TrainingHistoryDisplay"]
