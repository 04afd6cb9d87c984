"""fedpath.privacy"""
