// Summaries: see the issue that builds it.
