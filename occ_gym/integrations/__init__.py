"""Adapters to other libraries; never imported by the light paths (env, replay, bench)."""
