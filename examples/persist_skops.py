"""Save a fitted pipeline with skops.io instead of pickle, and load it back safely.

``joblib``/``pickle`` files run whatever code they hold when loaded. A ``.skops`` file does
not: ``skops.io.load`` rebuilds only types it trusts (scikit-learn's own, numpy, ...) and
refuses the rest unless you name them. ``BertFeaturizer`` is not on skops' default list, so
loading asks for it: look at ``skops.io.get_untrusted_types(file=...)`` and pass the types
you expect as ``trusted=``. The file holds no model weights (a fitted ``BertFeaturizer``
keeps its parameters and fitted attributes; the weights reload from ``model=``): about
200 KiB here, against 87 MiB of weights. Install skops with ``pip install 'bertfeat[skops]'``.

Run:  python examples/persist_skops.py            (1,000 SMS messages)
      python examples/persist_skops.py --quick    (a smoke run: 200 messages)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bertfeat import BertFeaturizer
from bertfeat.datasets import load_dataset

#: the types of this project that a .skops file of a bertfeat pipeline may name
EXPECTED = {"bertfeat.estimators.featurizer.BertFeaturizer"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1000, help="messages (default 1000)")
    parser.add_argument("--quick", action="store_true", help="200 messages")
    parser.add_argument("--out", default=None, help="where to write the .skops file "
                        "(default: a temporary directory)")
    args = parser.parse_args()
    data = load_dataset("sms_spam").sample(200 if args.quick else args.limit, random_state=0)

    pipe = make_pipeline(BertFeaturizer(), StandardScaler(), LogisticRegression(C=0.1))
    pipe.fit(data["text"], data["label"])
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.out or Path(scratch) / "spam.skops")
        sio.dump(pipe, path)
        print(f"wrote {path.name}: {path.stat().st_size / 1024:.0f} KiB (no weights inside)")

        untrusted = sio.get_untrusted_types(file=path)
        print(f"types skops does not trust by default: {untrusted}")
        try:
            sio.load(path)
        except Exception as exc:  # skops refuses until told: UntrustedTypesFoundException
            print(f"load without trusted=: refused ({type(exc).__name__})")
        unexpected = set(untrusted) - EXPECTED
        if unexpected:  # never trust a type you did not expect to find in the file
            raise SystemExit(f"refusing to load: unexpected types {sorted(unexpected)}")
        loaded = sio.load(path, trusted=untrusted)

    same = np.array_equal(loaded.predict(data["text"]), pipe.predict(data["text"]))
    print(f"loaded with trusted={untrusted}: predictions identical: {same}")
    print(f"loaded pipeline: {' -> '.join(type(step).__name__ for _, step in loaded.steps)}")


if __name__ == "__main__":
    main()
