"""tfew: reproduce and analyse T-Few (Liu et al., NeurIPS 2022) with a tested, modern stack."""

__version__ = "0.1.0"
