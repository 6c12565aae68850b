"""Small helpers shared by more than one sk-mnist module."""
