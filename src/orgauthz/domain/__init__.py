"""The access rules of SPEC §1 as plain Python: no gRPC, no SQL."""
