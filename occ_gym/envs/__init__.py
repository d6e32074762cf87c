"""The environments: the single env (``code_env``), the native vector env (``vector_env``), the
episode rules both follow (``rules``), their action and observation layouts (``layout``), and
the per-episode attempt memo (``executor``)."""
