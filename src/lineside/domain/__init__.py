"""Pure business rules: entities, lifecycle, events and errors. No frameworks here."""
