"""Shared test set-up: Keras runs on its torch backend in this suite."""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
# the mutation suite (tests/mutants.py) is imported by name
sys.path.insert(0, os.path.dirname(__file__))
