"""Training of learned allocators (PPO / MaskablePPO) and of the nano code models.

``config`` (``TrainConfig``, light), ``ppo`` (``occ-gym train``: run folders with
``run.json``, TensorBoard logs and checkpoints), and ``nano`` / ``nano_data`` (``make models``:
the corpus and the three nano code models). Loading a trained policy is
``occ_gym.policies.learned``.
"""
