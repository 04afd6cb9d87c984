"""fedpath.simulations"""
