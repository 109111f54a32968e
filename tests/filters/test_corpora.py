"""Training text sources that need more than reading a file: gensim's pickled newsgroup sample."""

from __future__ import annotations

import io
import os
import pickle

import pytest

from filters.corpora import _BunchUnpickler, newsgroup_posts


def test_newsgroup_posts_are_bodies_without_usenet_headers() -> None:
    posts = list(newsgroup_posts())
    assert len(posts) == 200 and len({source for source, _ in posts}) == 200
    assert not any(text.startswith(("Path:", "From:", "Newsgroups:")) for _, text in posts)
    assert sum(len(text.split()) for _, text in posts) > 30_000


def test_the_newsgroup_unpickler_refuses_anything_but_the_bunch() -> None:
    payload = pickle.dumps(os.system, protocol=0)
    with pytest.raises(pickle.UnpicklingError, match="not expected"):
        _BunchUnpickler(io.BytesIO(payload)).load()
