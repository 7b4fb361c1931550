"""Checks that a cluster is ready for the mesh."""
