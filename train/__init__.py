"""Training of learned allocators (PPO / MaskablePPO) and of the nano code models.

Installed as ``occ_gym.train``. Nothing is here yet: the PPO issue builds it.
"""
