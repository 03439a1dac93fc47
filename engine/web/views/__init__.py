"""Page views, one module per concern: home, lists, records (detail/forms/delete), parts (htmx)."""
