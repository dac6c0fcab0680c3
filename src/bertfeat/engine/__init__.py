"""The torch side and the one cached pass: batching (no torch), encoding, word encoding,
int8 linear layers, the per-process model LRU, progress."""
