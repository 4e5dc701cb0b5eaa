"""Generated protobuf stubs for orgauthz.v1. Do not edit: run `make generate`."""
