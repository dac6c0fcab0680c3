"""bertfeat.lru.LRU: the per-process cache of loaded models and worker featurizers."""

from bertfeat.lru import LRU


def test_least_recently_used_goes_first():
    cache = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.get("b", "missing") == "missing" and len(cache) == 2
    cache.put("a", 10)  # replacing keeps the size
    assert len(cache) == 2 and cache.get("a") == 10
    cache.clear()
    assert len(cache) == 0
