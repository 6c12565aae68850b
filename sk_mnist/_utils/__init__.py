"""Helpers shared by sk-mnist's modules (private: not part of the API)."""
