"""fedpath.strategies"""
