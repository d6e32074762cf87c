"""Recorded attempts: the Parquet trace table (``table``) and recording it (``record``)."""
