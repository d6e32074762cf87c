"""Learned allocators behind the baselines' ``predict`` interface (``learned``; imports SB3 and
torch, so it is never imported by the light paths). The rule baselines are ``occ_gym.baselines``."""
