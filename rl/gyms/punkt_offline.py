"""An English Punkt sentence model for NLTK, built offline.

Google's IFEval checkers (our fidelity reference) count sentences with NLTK's Punkt model,
which NLTK fetches from its data hub; nothing may be downloaded here. So the model is
trained on English text every Python installation carries (the language reference in
``pydoc_data.topics``), the common abbreviations that text lacks are seeded, and the result
is written in the ``punkt_tab`` layout NLTK loads, under the Summit cache.

Not here: a model as good as NLTK's own on news text; it is only as good as the reference
needs to be on the responses the fidelity benchmark generates.
"""

from __future__ import annotations

import os
from pathlib import Path

from rl.gyms.text_units import ABBREVIATIONS, TITLES

_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")
# NLTK's own English model knows these from news text; the Python reference does not.
_SEEDED = TITLES | ABBREVIATIONS | {"capt", "lt", "col", "gen", "gov", "sen", "rep", "mt"}


def data_root() -> Path:
    """``$SUMMIT_CACHE_DIR/nltk_data`` (default ``~/.cache/summit``), the NLTK data root."""
    cache = os.environ.get("SUMMIT_CACHE_DIR", str(Path.home() / ".cache" / "summit"))
    return Path(cache) / "nltk_data"


def build(root: Path) -> Path:
    """Train the model and write it under ``root``; return the model directory."""
    import pydoc_data.topics

    from nltk.tabdata import TabEncoder
    from nltk.tokenize.punkt import PunktTrainer

    trainer = PunktTrainer()
    trainer.train("\n\n".join(pydoc_data.topics.topics.values()), finalize=False)
    trainer.finalize_training()
    params = trainer.get_params()
    params.abbrev_types |= _SEEDED
    encode = TabEncoder()
    texts = (
        encode.tups2tab(params.collocations),
        encode.set2txt(params.sent_starters),
        encode.set2txt(params.abbrev_types),
        encode.ivdict2tab(params.ortho_context),
    )
    target = root / "tokenizers" / "punkt_tab" / "english"
    target.mkdir(parents=True, exist_ok=True)
    for name, text in zip(_FILES, texts, strict=True):
        partial = target / f"{name}.partial"
        partial.write_text(text, encoding="utf-8", newline="")
        partial.replace(target / name)  # a reader never sees half a file
    return target


def install(root: Path | None = None) -> Path:
    """Build the model under ``root`` unless it is there, and put ``root`` on NLTK's path.

    Without ``root``, an English Punkt model NLTK already finds (its own, installed by
    hand) is used as it is; else the one under :func:`data_root`.

    >>> import nltk; install(); nltk.sent_tokenize("Dr. Smith left. He ran.")
    ['Dr. Smith left.', 'He ran.']
    """
    import nltk

    if root is None:
        try:
            return Path(nltk.data.find("tokenizers/punkt_tab/english/"))
        except LookupError:
            root = data_root()
    model = root / "tokenizers" / "punkt_tab" / "english"
    if not all((model / name).is_file() for name in _FILES):
        build(root)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return model
