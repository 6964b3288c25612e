"""Session registry of learned features: pages publish them, the feature explorer lists and embeds them.

Lives in ``st.session_state`` (one per browser session; never shared between users).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

_KEY = "dlviz.feature_sources"


@dataclass(frozen=True)
class FeatureSource:
    """Features of a set of examples from one model at one step.

    features (N, D) float; labels (N,) int; images (N, H, W) in [0, 1] or None; class_names per label.
    """

    name: str  # e.g. "CNN (LeNet): 84-d penultimate layer"
    page: str  # page key that published it
    step: int
    config: dict
    features: np.ndarray
    labels: np.ndarray
    images: np.ndarray | None = None
    class_names: tuple[str, ...] = field(default_factory=tuple)


def publish(source: FeatureSource) -> None:
    """Add or replace (by name) a feature source for this browser session."""
    st.session_state.setdefault(_KEY, {})[source.name] = source


def sources() -> dict[str, FeatureSource]:
    """Every feature source published in this browser session, by name."""
    return dict(st.session_state.get(_KEY, {}))
