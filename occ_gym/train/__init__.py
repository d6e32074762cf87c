"""Training of learned allocators (PPO / MaskablePPO) and of the nano code models.

Installed as ``occ_gym.train``: ``ppo`` (``occ-gym train``, run folders with ``run.json``,
TensorBoard logs and checkpoints), ``policy`` (``load_policy`` and the shipped policies), and
``nano`` / ``nano_data`` (``make models``: the corpus and the three nano code models).
"""
