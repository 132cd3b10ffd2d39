"""Lava processes (``process.py``) and their floating / fixed-point models (``models.py``).

Imported only by :func:`spikemfm.export_lava`; the Lava compiler loads every module of this folder.
"""
