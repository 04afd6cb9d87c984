"""fedpath.server"""
