"""bertfeat: BERT-family encoders as scikit-learn features, with an on-disk feature store.

>>> from bertfeat import BertFeaturizer, FeatureStore
"""

from .featurizer import BertFeaturizer
from .store import FeatureStore
from .union import TextUnion
from .words import BertWordFeaturizer, WordTagger

__all__ = ["BertFeaturizer", "BertWordFeaturizer", "FeatureStore", "TextUnion", "WordTagger",
           "__version__"]
__version__ = "0.1.0"
