"""The federation contract both sides share.

Wire keys, the model spec, run settings, the provisioned kit's layout, the model registry: what
the coordinator and every partner must read the same way, below both of them.
"""
