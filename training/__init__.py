"""The HeatFormer lab: synthetic data, training, the synthetic benchmark and its baseline.

It may import the product (``core``, ``engine``); nothing in the product imports it. Run its
commands as modules: ``python -m training.train``, ``python -m training.evaluate``.
"""
