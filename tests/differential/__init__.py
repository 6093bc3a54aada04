"""Differential testing of DAL against an unsharded reference database."""
