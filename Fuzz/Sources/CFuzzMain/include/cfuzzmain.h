/* (no public API: the C target only provides the entry point) */
