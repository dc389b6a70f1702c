"""The judge: each dump tree compared with pyannote's, stage by stage (`compare`), and drawn (`report`).

Torch-free, and free of the port's pipeline: a porter's CI installs and runs it on any
port's dumps. It reads the dump vocabulary (`port.dumps`, `port.vocabulary`) and nothing else
of the port; a test holds it to that.
"""
