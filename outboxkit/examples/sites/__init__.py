"""Site metadata (seed §1): a "sites" service publishes site events; a projector keeps `site_summary`,
a read model other services query with one indexed lookup instead of calling the sites service."""
