"""The install pipeline: profiles.py (values) → render.py (objects) → apply.py (cluster)."""
