"""bertfeat: BERT-family encoders as scikit-learn features, with an on-disk feature store.

>>> from bertfeat import BertFeaturizer, FeatureStore
"""

from .featurizer import BertFeaturizer
from .finetune import BertClassifier, BertRegressor
from .store import FeatureStore
from .union import TextUnion

__all__ = ["BertClassifier", "BertFeaturizer", "BertRegressor", "FeatureStore", "TextUnion",
           "__version__"]
__version__ = "0.1.0"
