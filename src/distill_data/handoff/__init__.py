"""Handoffs: the built datasets in the forms trainers read unchanged.

- `disk`: a `save_to_disk` DatasetDict (DistillKit's `disk_path`, `datasets.load_from_disk`);
- `packed`: fixed-length rows of whole examples (parquet), with the segment layout of
  DistillKit's `prepacked` mode and TRL's padding-free collator; `packed_disk`: the same rows as
  a DatasetDict;
- `megatron`: megatron-core IndexedDataset files per split and input.

Every form reads the published parquet (never re-tokenizes), streams it, and writes a
manifest; `check.py` validates a form against its source.
"""
