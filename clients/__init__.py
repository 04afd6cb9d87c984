"""fedpath.clients"""
