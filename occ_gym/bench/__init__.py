"""Benchmarking: the runner and its entries (``runner``), the statistics (``stats``), the
findings (``findings``) and the report (``report``)."""
