"""Live copy-mode migration: knowing what each client command writes, so it can be copied again."""
